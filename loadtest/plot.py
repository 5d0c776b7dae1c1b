"""The PNG: each scenario's latency percentiles over the run (locust's `<prefix>_stats_history.csv`,
percentiles over a sliding 10 s window, one row per second), with the users and answers/s."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from loadtest.results import REQUEST_TYPE
from loadtest.scenarios import TTFT, Scenario

AGGREGATED = "Aggregated"
# (type, name suffix, percentile column, line style): what each scenario's panel draws.
LINES = (
    (REQUEST_TYPE, "", "50%", "-"),
    (REQUEST_TYPE, "", "95%", "-"),
    (REQUEST_TYPE, "", "99%", "-"),
    (TTFT, "", "99%", "--"),
    (REQUEST_TYPE, " refused", "99%", ":"),
)


@dataclass
class Series:
    seconds: list[float]
    values: list[float]


def read_history(csv_prefixes: list[Path]) -> tuple[dict[tuple[str, str, str], Series], list[float]]:
    """(type, name, column) -> its values over time, in seconds since the first phase began; and the
    second at which each later phase began."""
    series: dict[tuple[str, str, str], Series] = defaultdict(lambda: Series([], []))
    starts: list[float] = []
    origin: float | None = None
    for prefix in csv_prefixes:
        with Path(f"{prefix}_stats_history.csv").open(newline="") as file:
            rows = list(csv.DictReader(file))
        if not rows:
            continue
        origin = float(rows[0]["Timestamp"]) if origin is None else origin
        starts.append(float(rows[0]["Timestamp"]) - origin)
        for row in rows:
            second = float(row["Timestamp"]) - origin
            for column in ("50%", "95%", "99%", "Requests/s", "Failures/s", "User Count"):
                value = _value(row[column], is_percentile=column.endswith("%"))
                entry = series[(row["Type"], row["Name"], column)]
                entry.seconds.append(second)
                entry.values.append(value)
    return series, starts[1:]


def _value(text: str, is_percentile: bool) -> float:
    """NaN (a gap in the line) where there is nothing to show: locust writes N/A before the first request
    and a percentile of 0 while its window holds no response time yet."""
    if text in ("N/A", "") or (is_percentile and float(text) == 0):
        return math.nan
    return float(text)


def plot_percentiles(csv_prefixes: list[Path], scenarios: list[Scenario], out: Path) -> None:
    series, phase_starts = read_history(csv_prefixes)
    panels = len(scenarios) + 1
    columns = 2
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(7 * columns, 2.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, sharex=True, squeeze=False).flatten()
    for axis, scenario in zip(axes, scenarios, strict=False):
        for request_type, suffix, column, style in LINES:
            found = series.get((request_type, scenario.value + suffix, column))
            if found is not None:
                label = f"{'TTFT' if request_type == TTFT else 'refusal' if suffix else 'end to end'} P{column[:-1]}"
                axis.plot(found.seconds, found.values, style, label=label)
        axis.set_title(scenario.value)
        axis.set_ylabel("ms")
        axis.set_ylim(bottom=0)
        axis.legend(fontsize="small", loc="upper left")
    load_axis = axes[len(scenarios)]
    for column, label in (("User Count", "users"), ("Requests/s", "requests/s"), ("Failures/s", "failures/s")):
        found = series.get(("", AGGREGATED, column))
        if found is not None:
            load_axis.plot(found.seconds, found.values, label=label)
    load_axis.set_title("all scenarios")
    load_axis.set_ylim(bottom=0)
    load_axis.legend(fontsize="small", loc="upper left")
    for axis in axes[panels:]:
        axis.set_visible(False)
    for axis in axes[:panels]:
        axis.grid(alpha=0.3)
        for start in phase_starts:
            axis.axvline(start, color="grey", linestyle="--", linewidth=1)
    for axis in axes[max(panels - columns, 0) : panels]:
        axis.set_xlabel("seconds since the start (dashed line: next phase)")
    figure.suptitle("latency percentiles over time (locust, 10 s window)")
    figure.savefig(out, dpi=100)
