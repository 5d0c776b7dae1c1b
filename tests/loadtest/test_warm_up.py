"""The warm-up answer every load run waits for before its clock starts."""

from __future__ import annotations

import pytest

from loadtest.warm_up import WarmUpFailed, warm_up
from tests.loadtest.fake_flashvqa import Reply, fake_flashvqa


def test_refusals_of_a_stack_still_starting_are_retried_until_it_answers() -> None:
    with fake_flashvqa([Reply.ANSWER], refused_streams=3) as url:
        warm_up(url, timeout_s=30)


def test_a_stack_that_keeps_refusing_fails_the_warm_up_in_time() -> None:
    with fake_flashvqa([Reply.ANSWER], refused_streams=10**6) as url, pytest.raises(WarmUpFailed, match="503"):
        warm_up(url, timeout_s=2)
