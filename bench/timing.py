"""Timing helpers shared by the micro-benchmarks (run them as modules: `python -m bench.<name>`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def timed_seconds(run: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per call of `run`, after one warm-up call, sorted."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile, rounded up (P99 of 200 samples is the 199th smallest)."""
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
