"""Times one answer as the client receives it: time to first token, time per output token and token
counts (metrics by model, and the request's log line), and the `stream` span from the first output to the last."""

from __future__ import annotations

import time

from opentelemetry.trace import Span

from services.gateway.telemetry.request_record import RequestRecord
from services.messages import RequestOutput
from services.telemetry.metrics import metrics
from services.telemetry.tracing import tracer


class AnswerObserver:
    def __init__(self, record: RequestRecord | None, model: str) -> None:
        """`model`: the model id answering (the base or a LoRA adapter)."""
        self._record = record
        self._model = model
        if record is not None:
            record.model = model
        self._started = record.started if record is not None else time.perf_counter()
        self._first: float | None = None
        self._span: Span | None = None

    def observe(self, output: RequestOutput) -> None:
        now = time.perf_counter()
        if self._first is None:
            self._first = now
            metrics().time_to_first_token.observe(now - self._started, model=self._model)
            if self._record is not None:
                self._record.time_to_first_token_s = now - self._started
            self._span = tracer.start_span("stream", attributes={"flashvqa.model": self._model})
        if output.finished:
            self._finish(output, now - self._first)

    def _finish(self, output: RequestOutput, streaming_s: float) -> None:
        prompt_tokens, completion_tokens = output.num_prompt_tokens, output.num_output_tokens
        metrics().prompt_tokens.observe(prompt_tokens, model=self._model)
        metrics().completion_tokens.observe(completion_tokens, model=self._model)
        if completion_tokens > 1:
            metrics().time_per_output_token.observe(streaming_s / (completion_tokens - 1), model=self._model)
        if self._record is not None:
            self._record.prompt_tokens, self._record.completion_tokens = prompt_tokens, completion_tokens
            self._record.finish_reason = output.finish_reason
        if self._span is not None:
            self._span.set_attributes(
                {"flashvqa.completion_tokens": completion_tokens, "flashvqa.finish_reason": output.finish_reason or ""}
            )
            self._span.end()
            self._span = None

    def close(self) -> None:
        """The answer ended early (an error, a disconnect): end the span where it stopped."""
        if self._span is not None:
            self._span.end()
            self._span = None
