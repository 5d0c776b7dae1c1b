"""The Markdown summary: one row per scenario, each figure beside its target, misses in bold."""

from __future__ import annotations

from loadtest.results import ScenarioResult
from loadtest.verdict import Check, Metric

COLUMNS = (
    "scenario",
    "users",
    "requests",
    "refused",
    "error rate",
    "answers/s",
    "P99 TTFT",
    "P99 end to end",
    "P99 refusal",
    "verdict",
)
NOTHING = "—"


def summary_table(rows: list[tuple[ScenarioResult, list[Check]]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result, checks in rows:
        by_metric = {check.metric: check for check in checks}

        def cell(metric: Metric, measured: float | None, by_metric: dict[Metric, Check] = by_metric) -> str:
            text = NOTHING if measured is None else metric.format(measured)
            check = by_metric.get(metric)
            if check is None:
                return text
            return f"{text} ({check.bound})" if check.passed else f"**{text}** ({check.bound})"

        missed = [check.metric.label for check in checks if not check.passed]
        cells = [
            result.scenario.value,
            str(result.users),
            str(result.requests),
            f"{result.refused}, {cell(Metric.REFUSAL_RATE, result.refusal_rate)}"
            if Metric.REFUSAL_RATE in by_metric
            else str(result.refused),
            cell(Metric.ERROR_RATE, result.error_rate),
            cell(Metric.ANSWERS_PER_S, result.answered_per_s),
            cell(Metric.P99_TTFT, result.p99_ttft_ms),
            cell(Metric.P99_E2E, result.p99_e2e_ms),
            cell(Metric.P99_REFUSAL, result.p99_refusal_ms),
            "missed: " + ", ".join(missed) if missed else "met",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
