"""When one request went through the decoder engine (wall-clock nanoseconds, for spans across processes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DecodeTimings:
    arrived_ns: int = 0  # handed to the engine
    prefill_started_ns: int | None = None  # the start of the engine step that prefilled it
    prefill_finished_ns: int | None = None  # ... and its end: the first token exists
    finished_ns: int | None = None  # the step that produced its last token ended
