"""The scenarios as locust runs them, against a stand-in server whose answers the test chooses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.locust_run import LOCUSTFILE, ROOT, Phase, run_phase
from loadtest.results import scenario_result
from loadtest.scenarios import Scenario
from loadtest.targets import OverloadTargets, Profile, ScenarioTargets
from tests.loadtest.fake_flashvqa import FIRST_TEXT_DELAY_S, Reply, fake_flashvqa

REQUEST_TIMEOUT_S = 1


def test_every_scenario_is_a_user_class_of_the_locustfile() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "locust", "--locustfile", str(LOCUSTFILE), "--list"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert sorted(line.strip() for line in listed.splitlines()[1:]) == sorted(s.user_class for s in Scenario)


def _profile() -> Profile:
    targets = ScenarioTargets(users=1)
    return Profile(
        description="test",
        max_tokens=4,
        think_time_s=0.05,
        request_timeout_s=REQUEST_TIMEOUT_S,
        steady_seconds=3,
        overload_seconds=3,
        steady={Scenario.STREAMING: targets},
        overload=OverloadTargets(users=2, p99_refusal_ms=1, min_refusal_rate=0.1),
    )


@pytest.fixture(scope="module")
def csv_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short locust run: overload users get answers, 429s, 503s and silence in turn; a streaming user
    gets a role-only chunk at once and its first text FIRST_TEXT_DELAY_S later."""
    out = tmp_path_factory.mktemp("locust")
    phase = Phase("mixed", {Scenario.OVERLOAD: 2, Scenario.STREAMING: 1}, seconds=3)
    replies = [Reply.ANSWER, Reply.TOO_MANY, Reply.ANSWER, Reply.UNAVAILABLE, Reply.SILENCE]
    with fake_flashvqa(replies) as url:
        run_phase(phase, url, _profile(), out)  # raises if the locustfile raised
    return phase.csv_prefix(out)


@pytest.mark.slow
class TestScenariosAgainstAStandIn:
    """What a scenario reports is what the server did."""

    def test_refusals_are_counted_apart_and_silence_is_a_timeout_error(self, csv_prefix: Path) -> None:
        result = scenario_result(Scenario.OVERLOAD, 2, csv_prefix)
        assert result.refused > 0 and result.answered_per_s > 0
        assert result.errors > 0 and result.p99_refusal_ms is not None
        assert result.refused + result.errors < result.requests
        (reason,) = result.failure_reasons
        assert "timed out" in reason, reason

    def test_time_to_first_token_is_taken_at_the_first_text_not_the_first_chunk(self, csv_prefix: Path) -> None:
        result = scenario_result(Scenario.STREAMING, 1, csv_prefix)
        assert result.requests > 0 and result.errors == 0, result.failure_reasons
        assert result.p99_ttft_ms is not None and result.p99_e2e_ms is not None
        assert FIRST_TEXT_DELAY_S * 1000 <= result.p99_ttft_ms <= result.p99_e2e_ms
