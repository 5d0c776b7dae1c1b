"""One function maps every failure to the status and envelope the client sees."""

from __future__ import annotations

import pytest

from services.common.image_input import ImageInputError
from services.gateway.api.errors import ServiceUnavailableError, to_api_error
from services.messages import ContextLengthError, EngineDeadError, PromptError, QueueFullError, StepError


@pytest.mark.parametrize(
    ("error", "status", "param", "retry_after"),
    [
        (ImageInputError("bad", "messages[0].content[0].image_url"), 400, "messages[0].content[0].image_url", None),
        (ContextLengthError("long", "max_tokens"), 400, "max_tokens", None),
        (PromptError("mismatch"), 400, "messages", None),
        (QueueFullError("full"), 429, None, "1"),
        (ServiceUnavailableError("restarting"), 503, None, "1"),
        (EngineDeadError("device lost"), 503, None, "1"),
        (StepError("the decoder failed while generating this answer"), 503, None, "1"),
        (TimeoutError(), 504, None, None),
        (RuntimeError("secret internals"), 500, None, None),
    ],
)
def test_status_and_envelope(error: Exception, status: int, param: str | None, retry_after: str | None) -> None:
    api_error = to_api_error(error)
    assert api_error.status == status
    assert api_error.detail.param == param
    assert api_error.headers.get("Retry-After") == retry_after
    if status == 500:
        assert "secret" not in api_error.detail.message


def test_a_failed_step_has_a_code_of_its_own() -> None:
    assert to_api_error(StepError("the decoder failed")).detail.code == "engine_error"
