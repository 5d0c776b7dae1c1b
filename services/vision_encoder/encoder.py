"""The vision encoder's logic, without Ray: the embedding cache in front of the vision half, one encode in
flight per image however many requests ask for it at once, and no encoding for requests out of time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.common.deadline import DeadlineExceededError, expired, raise_if_expired
from services.common.image_embedding import ImageEmbedding
from services.common.raw_image import RawImage
from services.vision_encoder.embedding_cache import CacheStats, EmbeddingCache
from services.vision_encoder.encode_request import EncodeRequest

EncodeBatch = Callable[[EncodeRequest], Awaitable[ImageEmbedding]]


class VisionEncoder:
    """`encode_batched` is the batching path (in the deployment, a `@serve.batch` method that runs the
    vision half on a list of images, see `encode_in_time`)."""

    def __init__(self, encode_batched: EncodeBatch, cache: EmbeddingCache) -> None:
        self._encode_batched = encode_batched
        self._cache = cache
        self._in_flight: dict[str, asyncio.Future[ImageEmbedding]] = {}

    async def encode(self, request: EncodeRequest) -> ImageEmbedding:
        key = request.image.content_hash
        while True:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            pending = self._in_flight.get(key)
            if pending is None:
                break
            try:
                return await asyncio.shield(pending)
            except DeadlineExceededError:
                if expired(request.deadline):
                    raise
                # The request that started that encode ran out of time in the queue; this one has time left.
        raise_if_expired(request.deadline, "the image was encoded")
        future: asyncio.Future[ImageEmbedding] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            embedding = await self._encode_batched(request)
            self._cache.put(embedding)
            future.set_result(embedding)
            return embedding
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._in_flight[key]

    def stats(self) -> CacheStats:
        return self._cache.stats()


def encode_in_time(
    requests: list[EncodeRequest], encode: Callable[[list[RawImage]], list[ImageEmbedding]]
) -> list[ImageEmbedding | DeadlineExceededError]:
    """One batch: the images whose deadline has not passed while they queued, encoded together; for the
    others, the error their callers raise (a batch method can only return one result per request)."""
    live = [index for index, request in enumerate(requests) if not expired(request.deadline)]
    encoded = dict(zip(live, encode([requests[index].image for index in live]), strict=True)) if live else {}
    return [encoded[index] if index in encoded else
            DeadlineExceededError("the request's deadline passed while its image waited for the encoder")
            for index in range(len(requests))]
