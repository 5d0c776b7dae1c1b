"""autoscaling.png: both pools' replica counts over the run, above the latency percentiles and the answers
per second, on one time axis with the phases shaded."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from loadtest.autoscaling.scenario import Load
from loadtest.autoscaling.timeline import Timeline
from loadtest.autoscaling.verdict import DECODER, ENCODER

WINDOW_S = 5.0  # latency percentiles over the requests that finished in the last WINDOW_S
SHADES = {Load.IMAGE_HEAVY: "tab:blue", Load.DECODE_HEAVY: "tab:orange"}
POOL_COLOURS = {ENCODER: "tab:blue", DECODER: "tab:orange"}


def plot_timeline(timeline: Timeline, out: Path) -> None:
    figure = Figure(figsize=(11, 8), layout="constrained")
    replicas, latency, rate = figure.subplots(3, 1, sharex=True, height_ratios=(1.2, 1.2, 0.8))
    _replicas(replicas, timeline)
    _latency(latency, timeline)
    _rate(rate, timeline)
    for axis in (replicas, latency, rate):
        _shade_phases(axis, timeline, label=axis is replicas)
        axis.grid(alpha=0.3)
    rate.set_xlabel("seconds since the load started")
    figure.suptitle("each pool scales on its own load: encoder on pixels queued, decoder on sequences held")
    figure.savefig(out, dpi=100)


def _replicas(axis: Axes, timeline: Timeline) -> None:
    seconds = [sample.seconds for sample in timeline.replicas]
    for pool, colour in POOL_COLOURS.items():
        axis.step(
            seconds,
            [sample.running[pool] for sample in timeline.replicas],
            where="post",
            color=colour,
            linewidth=2,
            label=f"{pool} serving",
        )
        axis.step(
            seconds,
            [sample.total[pool] for sample in timeline.replicas],
            where="post",
            color=colour,
            linestyle=":",
            label=f"{pool} incl. starting / draining",
        )
    axis.set_ylabel("replicas")
    axis.set_ylim(0, timeline.max_replicas + 0.5)
    axis.set_yticks(range(timeline.max_replicas + 1))
    axis.legend(fontsize="small", loc="lower right", ncol=2)


def _latency(axis: Axes, timeline: Timeline) -> None:
    finished = sorted(
        (record.started_s + record.seconds, record.seconds * 1000) for record in timeline.requests if record.ok
    )
    if not finished:
        return
    ends = np.array([end for end, _ in finished])
    milliseconds = np.array([ms for _, ms in finished])
    grid = np.arange(WINDOW_S, math.ceil(ends.max()) + 1, 1.0)
    windows = [milliseconds[(ends > t - WINDOW_S) & (ends <= t)] for t in grid]
    for percentile, style in ((50, "-"), (95, "--"), (99, ":")):
        values = [np.percentile(window, percentile) if window.size else np.nan for window in windows]
        axis.plot(grid, values, style, color="black", label=f"P{percentile}")
    failed = [record.started_s + record.seconds for record in timeline.requests if not record.ok]
    if failed:
        axis.plot(failed, [0] * len(failed), "x", color="red", label="failed")
    axis.set_ylabel(f"end to end, ms ({WINDOW_S:g} s window)")
    axis.set_yscale("log")
    axis.legend(fontsize="small", loc="upper right")


def _rate(axis: Axes, timeline: Timeline) -> None:
    ends = [record.started_s + record.seconds for record in timeline.requests if record.ok]
    if ends:
        edges = np.arange(0, math.ceil(max(ends)) + 2, 1.0)
        counts, _ = np.histogram(ends, bins=edges)
        axis.step(edges[:-1], counts, where="post", color="black")
    axis.set_ylabel("answers / s")
    axis.set_ylim(bottom=0)


def _shade_phases(axis: Axes, timeline: Timeline, label: bool) -> None:
    for phase in timeline.phases:
        if phase.load in SHADES:
            axis.axvspan(phase.start_s, phase.end_s, color=SHADES[phase.load], alpha=0.08)
        if label:
            axis.text(
                (phase.start_s + phase.end_s) / 2,
                timeline.max_replicas + 0.25,
                f"{phase.load.value}" + (f", {phase.users} users" if phase.users else ""),
                ha="center",
                va="center",
                fontsize="small",
            )
