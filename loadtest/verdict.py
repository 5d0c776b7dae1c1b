"""Each measured figure against its target: which were met, which were missed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from loadtest.results import ScenarioResult
from loadtest.scenarios import Scenario
from loadtest.targets import OverloadTargets, ScenarioTargets


class Metric(Enum):
    """(label, unit, whether more is better)"""

    P99_TTFT = ("P99 time to first text", "ms", False)
    P99_E2E = ("P99 end to end", "ms", False)
    ERROR_RATE = ("error rate", "%", False)
    ANSWERS_PER_S = ("answers/s", "/s", True)
    P99_REFUSAL = ("P99 refusal", "ms", False)
    REFUSAL_RATE = ("refusal rate", "%", True)

    @property
    def label(self) -> str:
        return self.value[0]

    def format(self, value: float) -> str:
        unit = self.value[1]
        if unit == "%":
            return f"{value * 100:.1f}%"
        return f"{value:.0f} {unit}" if unit == "ms" else f"{value:.2f}{unit}"


@dataclass(frozen=True)
class Check:
    scenario: Scenario
    metric: Metric
    measured: float | None  # None: nothing to measure (no request, no answer)
    target: float

    @property
    def passed(self) -> bool:
        if self.measured is None:
            return False
        more_is_better = self.metric.value[2]
        return self.measured >= self.target if more_is_better else self.measured <= self.target

    @property
    def bound(self) -> str:
        return ("≥ " if self.metric.value[2] else "≤ ") + self.metric.format(self.target)

    def describe(self) -> str:
        measured = "nothing measured" if self.measured is None else self.metric.format(self.measured)
        return f"{self.scenario.value}: {self.metric.label} {measured} (target {self.bound})"


def checks(result: ScenarioResult, targets: ScenarioTargets) -> list[Check]:
    """One check per target the scenario has."""
    wanted: list[tuple[Metric, float | None, float | None]] = [
        (Metric.P99_TTFT, result.p99_ttft_ms, targets.p99_ttft_ms),
        (Metric.P99_E2E, result.p99_e2e_ms, targets.p99_e2e_ms),
        (Metric.ERROR_RATE, result.error_rate, targets.max_error_rate),
        (Metric.ANSWERS_PER_S, result.answered_per_s, targets.min_rps),
    ]
    if isinstance(targets, OverloadTargets):
        wanted += [
            (Metric.P99_REFUSAL, result.p99_refusal_ms, targets.p99_refusal_ms),
            (Metric.REFUSAL_RATE, result.refusal_rate, targets.min_refusal_rate),
        ]
    return [
        Check(result.scenario, metric, measured, target) for metric, measured, target in wanted if target is not None
    ]
