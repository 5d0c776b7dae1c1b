"""When one request went through the decoder engine (wall-clock nanoseconds, for spans across processes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DecodeTimings:
    arrived_ns: int = 0  # handed to the engine
    prefill_started_ns: int | None = None  # the start of the engine step that computed its prompt's first chunk
    prefill_finished_ns: int | None = None  # the end of the step that computed its last chunk: the first token exists
    finished_ns: int | None = None  # the step that produced its last token ended
