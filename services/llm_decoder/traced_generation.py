"""The decoder's side of one request, however it is deployed (a Serve replica or in process): its
`llm_decoder` span under the gateway's, fetching the image embeddings from the encoder, the deadline, and
the queue, prefill and decode spans and metrics from the engine's timings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Sequence

from opentelemetry.trace import Span, Status, StatusCode

from services.common.deadline import raise_if_expired
from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.decode_timings import DecodeTimings
from services.messages import DecodeRequest, RequestOutput
from services.telemetry.metrics import metrics
from services.telemetry.tracing import context_from, record_span, tracer


async def generate_traced(
    engine: AsyncLLMEngine, request: DecodeRequest, images: Sequence[Awaitable[ImageEmbedding]]
) -> AsyncIterator[RequestOutput]:
    # Started, not made current: the context must not stay attached across this generator's yields.
    span = tracer.start_span(
        "llm_decoder",
        context=context_from(request.trace_context),
        attributes={
            "flashvqa.request_id": request.request_id,
            "flashvqa.adapter": "" if request.adapter is None else request.adapter.key,
        },
    )
    try:
        raise_if_expired(request.deadline, "the decoder took the request")
        fetch_started_ns = time.time_ns()
        embeddings = list(await asyncio.gather(*images))
        record_span("decoder.image_transfer", fetch_started_ns, time.time_ns(), parent=span, images=len(embeddings))
        raise_if_expired(request.deadline, "the images were encoded")
        timings = DecodeTimings()
        async for output in engine.generate(request, embeddings, timings):
            if output.finished:
                _record(span, timings, output)
            yield output
    except Exception as error:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    finally:
        span.end()


def _record(span: Span, timings: DecodeTimings, output: RequestOutput) -> None:
    if timings.prefill_started_ns is None or timings.prefill_finished_ns is None or timings.finished_ns is None:
        return
    metrics().decoder_queue.observe((timings.prefill_started_ns - timings.arrived_ns) / 1e9)
    metrics().prefill.observe((timings.prefill_finished_ns - timings.prefill_started_ns) / 1e9)
    record_span("decoder.queue", timings.arrived_ns, timings.prefill_started_ns, parent=span)
    record_span(
        "decoder.prefill",
        timings.prefill_started_ns,
        timings.prefill_finished_ns,
        parent=span,
        prompt_tokens=output.num_prompt_tokens,
    )
    later_tokens = max(output.num_output_tokens - 1, 1)
    decode_ms = (timings.finished_ns - timings.prefill_finished_ns) / 1e6
    record_span(
        "decoder.decode",
        timings.prefill_finished_ns,
        timings.finished_ns,
        parent=span,
        output_tokens=output.num_output_tokens,
        time_per_output_token_ms=round(decode_ms / later_tokens, 3),
    )
