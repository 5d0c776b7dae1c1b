from __future__ import annotations

from dataclasses import replace

from loadtest.results import ScenarioResult
from loadtest.scenarios import Scenario
from loadtest.summary import summary_table
from loadtest.targets import OverloadTargets, ScenarioTargets
from loadtest.verdict import Metric, checks

STREAMING = ScenarioResult(
    Scenario.STREAMING,
    users=2,
    requests=100,
    errors=0,
    refused=0,
    answered_per_s=4.0,
    p99_e2e_ms=900,
    p99_ttft_ms=180,
    p99_refusal_ms=None,
)
STREAMING_TARGETS = ScenarioTargets(users=2, p99_ttft_ms=200, p99_e2e_ms=1000, max_error_rate=0.01, min_rps=3)
OVERLOAD = ScenarioResult(
    Scenario.OVERLOAD,
    users=40,
    requests=200,
    errors=0,
    refused=120,
    answered_per_s=8.0,
    p99_e2e_ms=5000,
    p99_ttft_ms=None,
    p99_refusal_ms=300,
)
OVERLOAD_TARGETS = OverloadTargets(users=40, max_error_rate=0, p99_refusal_ms=1000, min_refusal_rate=0.1)


class TestChecks:
    """A target is met on its side of the bound, missed beyond it, and missed when nothing was measured."""

    def test_every_target_is_checked_and_met(self) -> None:
        found = checks(STREAMING, STREAMING_TARGETS)
        assert [check.metric for check in found] == [
            Metric.P99_TTFT,
            Metric.P99_E2E,
            Metric.ERROR_RATE,
            Metric.ANSWERS_PER_S,
        ]
        assert all(check.passed for check in found)

    def test_misses_are_named_with_figure_and_bound(self) -> None:
        slow = replace(STREAMING, p99_ttft_ms=250, answered_per_s=2.5, errors=2)
        missed = [check.describe() for check in checks(slow, STREAMING_TARGETS) if not check.passed]
        assert missed == [
            "streaming: P99 time to first text 250 ms (target ≤ 200 ms)",
            "streaming: error rate 2.0% (target ≤ 1.0%)",
            "streaming: answers/s 2.50/s (target ≥ 3.00/s)",
        ]

    def test_the_bound_itself_is_met(self) -> None:
        exact = replace(STREAMING, p99_ttft_ms=200, p99_e2e_ms=1000, answered_per_s=3.0, errors=1)
        assert all(check.passed for check in checks(exact, STREAMING_TARGETS))

    def test_no_answer_at_all_misses_every_target(self) -> None:
        nothing = replace(STREAMING, requests=0, answered_per_s=0, p99_e2e_ms=None, p99_ttft_ms=None)
        assert not any(check.passed for check in checks(nothing, STREAMING_TARGETS))

    def test_overload_needs_fast_refusals_and_no_error(self) -> None:
        assert all(check.passed for check in checks(OVERLOAD, OVERLOAD_TARGETS))
        timeouts = replace(OVERLOAD, errors=1)
        never_refused = replace(OVERLOAD, refused=0, p99_refusal_ms=None)
        slow_refusals = replace(OVERLOAD, p99_refusal_ms=1500)
        for result, metrics in (
            (timeouts, {Metric.ERROR_RATE}),
            (never_refused, {Metric.P99_REFUSAL, Metric.REFUSAL_RATE}),
            (slow_refusals, {Metric.P99_REFUSAL}),
        ):
            assert {check.metric for check in checks(result, OVERLOAD_TARGETS) if not check.passed} == metrics


def test_the_summary_shows_each_figure_beside_its_target_and_misses_in_bold() -> None:
    slow = replace(STREAMING, p99_ttft_ms=250)
    table = summary_table([(slow, checks(slow, STREAMING_TARGETS)), (OVERLOAD, checks(OVERLOAD, OVERLOAD_TARGETS))])
    header, rule, streaming, overload = table.splitlines()
    assert header.count("|") == rule.count("|") == streaming.count("|") == overload.count("|")
    assert "**250 ms** (≤ 200 ms)" in streaming and "900 ms (≤ 1000 ms)" in streaming
    assert streaming.endswith("| missed: P99 time to first text |")
    assert "120, 60.0% (≥ 10.0%)" in overload and "300 ms (≤ 1000 ms)" in overload
    assert overload.endswith("| met |")
