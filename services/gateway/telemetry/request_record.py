"""What the gateway learns about one API request while serving it: for its log line, its span and its
metrics. The record of the request being served is in a context variable, so the stages reach it without
passing it down every call."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from services.telemetry.metrics import metrics
from services.telemetry.tracing import tracer


@dataclass
class RequestRecord:
    route: str
    request_id: str = field(default_factory=lambda: f"req-{uuid.uuid4().hex}")
    started: float = field(default_factory=time.perf_counter)
    trace_id: str | None = None
    status: int | None = None
    tenant: str | None = None
    model: str | None = None  # the model id that answered: the base or a LoRA adapter
    images: int = 0
    cache: str | None = None  # "hit" or "miss" when the response cache was consulted
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    time_to_first_token_s: float | None = None
    stages_s: dict[str, float] = field(default_factory=dict)
    prompt: str | None = None  # kept only when debug logging is on

    def log_fields(self, duration_s: float) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "route": self.route,
            "status": self.status,
            "tenant": self.tenant,
            "model": self.model,
            "duration_ms": _ms(duration_s),
            "images": self.images,
            "cache": self.cache,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "ttft_ms": None if self.time_to_first_token_s is None else _ms(self.time_to_first_token_s),
            "stages_ms": {name: _ms(seconds) for name, seconds in self.stages_s.items()},
        }
        if self.prompt is not None:
            fields["prompt"] = self.prompt
        return fields


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


_current: ContextVar[RequestRecord | None] = ContextVar("flashvqa_request_record", default=None)


def current_record() -> RequestRecord | None:
    return _current.get()


@contextmanager
def recording(record: RequestRecord) -> Iterator[RequestRecord]:
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


@contextmanager
def stage(name: str, **attributes: str | int | float | bool) -> Iterator[None]:
    """One of the gateway's own stages: a span, a sample of `flashvqa_gateway_stage_seconds`, and its time in
    the request's log line (summed when it runs several times, e.g. once per image)."""
    start = time.perf_counter()
    try:
        with tracer.start_as_current_span(name, attributes=attributes):
            yield
    finally:
        elapsed = time.perf_counter() - start
        metrics().gateway_stage.observe(elapsed, stage=name)
        record = _current.get()
        if record is not None:
            record.stages_s[name] = record.stages_s.get(name, 0.0) + elapsed
