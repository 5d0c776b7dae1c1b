"""The vision encoder's logic, without Ray: the embedding cache in front of the vision half, and one
encode in flight per image however many requests ask for it at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from services.common.image_embedding import ImageEmbedding
from services.common.raw_image import RawImage
from services.vision_encoder.embedding_cache import CacheStats, EmbeddingCache

EncodeBatch = Callable[[RawImage], Awaitable[ImageEmbedding]]


class VisionEncoder:
    """`encode_batched` is the batching path (in the deployment, a `@serve.batch` method that runs the
    vision half on a list of images)."""

    def __init__(self, encode_batched: EncodeBatch, cache: EmbeddingCache) -> None:
        self._encode_batched = encode_batched
        self._cache = cache
        self._in_flight: dict[str, asyncio.Future[ImageEmbedding]] = {}

    async def encode(self, image: RawImage) -> ImageEmbedding:
        cached = self._cache.get(image.content_hash)
        if cached is not None:
            return cached
        pending = self._in_flight.get(image.content_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ImageEmbedding] = asyncio.get_running_loop().create_future()
        self._in_flight[image.content_hash] = future
        try:
            embedding = await self._encode_batched(image)
            self._cache.put(embedding)
            future.set_result(embedding)
            return embedding
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            del self._in_flight[image.content_hash]

    def stats(self) -> CacheStats:
        return self._cache.stats()
