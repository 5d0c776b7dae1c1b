"""What a locust run measured, per scenario, read from its CSV files (`<prefix>_stats.csv`,
`<prefix>_failures.csv`)."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.scenarios import TTFT, Scenario

REQUEST_TYPE = "POST"  # every scenario's requests; TTFT entries have their own type


@dataclass(frozen=True)
class StatsRow:
    requests: int
    failures: int
    requests_per_s: float
    failures_per_s: float
    p99_ms: float | None  # None without requests

    @property
    def answered_per_s(self) -> float:
        return self.requests_per_s - self.failures_per_s


@dataclass(frozen=True)
class ScenarioResult:
    scenario: Scenario
    users: int
    requests: int  # all of them: answered, failed and refused
    errors: int
    refused: int
    answered_per_s: float
    p99_e2e_ms: float | None  # of the answered and failed requests, not of the refused ones
    p99_ttft_ms: float | None
    p99_refusal_ms: float | None
    failure_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def refusal_rate(self) -> float | None:
        return self.refused / self.requests if self.requests else None


def read_stats(csv_prefix: Path) -> dict[tuple[str, str], StatsRow]:
    """(type, name) -> its row of `<prefix>_stats.csv`."""
    with Path(f"{csv_prefix}_stats.csv").open(newline="") as file:
        return {(row["Type"], row["Name"]): _stats_row(row) for row in csv.DictReader(file)}


def read_failures(csv_prefix: Path) -> dict[str, Counter[str]]:
    """Stats name -> how often each failure message occurred."""
    reasons: dict[str, Counter[str]] = {}
    with Path(f"{csv_prefix}_failures.csv").open(newline="") as file:
        for row in csv.DictReader(file):
            reasons.setdefault(row["Name"], Counter())[row["Error"]] += int(row["Occurrences"])
    return reasons


def scenario_result(scenario: Scenario, users: int, csv_prefix: Path) -> ScenarioResult:
    stats = read_stats(csv_prefix)
    empty = StatsRow(0, 0, 0.0, 0.0, None)
    own = stats.get((REQUEST_TYPE, scenario.value), empty)
    refused = stats.get((REQUEST_TYPE, scenario.refused_name), empty)
    return ScenarioResult(
        scenario=scenario,
        users=users,
        requests=own.requests + refused.requests,
        errors=own.failures + refused.failures,
        refused=refused.requests - refused.failures,
        answered_per_s=own.answered_per_s,
        p99_e2e_ms=own.p99_ms,
        p99_ttft_ms=stats.get((TTFT, scenario.value), empty).p99_ms,
        p99_refusal_ms=refused.p99_ms,
        failure_reasons=dict(read_failures(csv_prefix).get(scenario.value, Counter())),
    )


def _stats_row(row: dict[str, str]) -> StatsRow:
    requests = int(row["Request Count"])
    return StatsRow(
        requests=requests,
        failures=int(row["Failure Count"]),
        requests_per_s=float(row["Requests/s"]),
        failures_per_s=float(row["Failures/s"]),
        p99_ms=float(row["99%"]) if requests and row["99%"] != "N/A" else None,
    )
