"""The vision encoder's logic, without Ray: the embedding cache in front of the vision half, one encode in
flight per image however many requests ask for it at once, no encoding for requests out of time, and
each request's `vision_encoder` span (cache hit, queue wait, the batch it rode in)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.common.deadline import DeadlineExceededError, expired, raise_if_expired
from services.common.image_embedding import ImageEmbedding
from services.messages import EncodeRequest, RawImage
from services.telemetry.metrics import metrics
from services.telemetry.tracing import continued, record_span, tracer
from services.vision_encoder.embedding_cache import CacheStats, EmbeddingCache


@dataclass(frozen=True)
class BatchedEmbedding:
    """An embedding and the batch that made it (wall-clock nanoseconds, for spans across processes)."""

    embedding: ImageEmbedding
    batch_size: int
    started_ns: int
    finished_ns: int


EncodeBatch = Callable[[EncodeRequest], Awaitable[BatchedEmbedding]]


class VisionEncoder:
    """`encode_batched` is the batching path (in the deployment, a `@serve.batch` method that runs the
    vision half on a list of images, see `encode_in_time`)."""

    def __init__(self, encode_batched: EncodeBatch, cache: EmbeddingCache) -> None:
        self._encode_batched = encode_batched
        self._cache = cache
        self._in_flight: dict[str, asyncio.Future[ImageEmbedding]] = {}

    async def encode(self, request: EncodeRequest) -> ImageEmbedding:
        with continued(request.trace_context), tracer.start_as_current_span("vision_encoder") as span:
            embedding, how = await self._embedding(request)
            span.set_attribute("flashvqa.embedding", how)
            return embedding

    async def _embedding(self, request: EncodeRequest) -> tuple[ImageEmbedding, str]:
        """The embedding, and how it was had: "cached", "shared" (another request's encode) or "encoded"."""
        key = request.image.content_hash
        while True:
            cached = self._cache.get(key)
            if cached is not None:
                metrics().embedding_cache.inc(result="hit")
                return cached, "cached"
            pending = self._in_flight.get(key)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending), "shared"
            except DeadlineExceededError:
                if expired(request.deadline):
                    raise
                # The request that started that encode ran out of time in the queue; this one has time left.
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not pending.cancelled() or (current is not None and current.cancelling()):
                    raise
                # The request that started that encode went away (refused, its client gone); this one has not.
        metrics().embedding_cache.inc(result="miss")
        raise_if_expired(request.deadline, "the image was encoded")
        future: asyncio.Future[ImageEmbedding] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        arrived_ns = time.time_ns()
        try:
            batched = await self._encode_batched(request)
            self._cache.put(batched.embedding)
            future.set_result(batched.embedding)
        except asyncio.CancelledError:
            future.cancel()  # the requests sharing it start their own encode
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._in_flight[key]
        metrics().encoder_queue.observe((batched.started_ns - arrived_ns) / 1e9)
        record_span("encoder.queue", arrived_ns, batched.started_ns)
        record_span(
            "encoder.encode",
            batched.started_ns,
            batched.finished_ns,
            batch_size=batched.batch_size,
            image_tokens=batched.embedding.num_tokens,
        )
        return batched.embedding, "encoded"

    def stats(self) -> CacheStats:
        return self._cache.stats()


def encode_in_time(
    requests: list[EncodeRequest], encode: Callable[[list[RawImage]], list[ImageEmbedding]]
) -> list[BatchedEmbedding | DeadlineExceededError]:
    """One batch: the images whose deadline has not passed while they queued, encoded together; for the
    others, the error their callers raise (a batch method can only return one result per request)."""
    live = [index for index, request in enumerate(requests) if not expired(request.deadline)]
    started_ns = time.time_ns()
    embeddings = encode([requests[index].image for index in live]) if live else []
    finished_ns = time.time_ns()
    if live:
        metrics().encode.observe((finished_ns - started_ns) / 1e9)
        metrics().encoder_batch_size.observe(len(live))
    for embedding in embeddings:
        metrics().image_tokens.observe(embedding.num_tokens)
    encoded = {
        index: BatchedEmbedding(embedding, len(live), started_ns, finished_ns)
        for index, embedding in zip(live, embeddings, strict=True)
    }
    return [
        encoded[index]
        if index in encoded
        else DeadlineExceededError("the request's deadline passed while its image waited for the encoder")
        for index in range(len(requests))
    ]


async def unbatched(
    request: EncodeRequest, encode: Callable[[list[RawImage]], list[ImageEmbedding]]
) -> BatchedEmbedding:
    """A batch of one, in a worker thread: the encode path without a batching queue (the in-process app)."""
    [result] = await asyncio.to_thread(encode_in_time, [request], encode)
    if isinstance(result, DeadlineExceededError):
        raise result
    return result
