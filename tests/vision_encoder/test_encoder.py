"""The encoder never encodes an image twice: cached by content, and one encode for concurrent asks."""

from __future__ import annotations

import asyncio

import pytest
import torch

from services.common.image_embedding import ImageEmbedding
from services.common.raw_image import RawImage
from services.vision_encoder.embedding_cache import EmbeddingCache
from services.vision_encoder.encoder import VisionEncoder
from tests.conftest import noise_image


def embedding(content_hash: str, tokens: int = 4) -> ImageEmbedding:
    return ImageEmbedding(content_hash, (1, 2, 2 * tokens), torch.zeros(tokens, 8))  # 4 bytes * 8 * tokens


class TestEmbeddingCache:
    def test_least_recently_used_is_evicted_first(self) -> None:
        cache = EmbeddingCache(max_bytes=3 * 128)
        for name in "abc":
            cache.put(embedding(name))
        assert cache.get("a") is not None  # a is now the most recent
        cache.put(embedding("d"))
        assert cache.get("b") is None
        assert all(cache.get(name) is not None for name in "acd")
        assert cache.stats().bytes == 3 * 128

    def test_an_entry_larger_than_the_budget_is_not_kept(self) -> None:
        cache = EmbeddingCache(max_bytes=100)
        cache.put(embedding("big"))
        assert cache.get("big") is None
        assert cache.stats().entries == 0

    def test_counts_hits_and_misses(self) -> None:
        cache = EmbeddingCache(max_bytes=1 << 20)
        cache.put(embedding("a"))
        cache.get("a")
        cache.get("z")
        stats = cache.stats()
        assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)


class TestVisionEncoder:
    @pytest.fixture
    def calls(self) -> list[str]:
        return []

    @pytest.fixture
    def encoder(self, calls: list[str]) -> VisionEncoder:
        async def encode_batched(image: RawImage) -> ImageEmbedding:
            calls.append(image.content_hash)
            await asyncio.sleep(0.01)
            return embedding(image.content_hash)

        return VisionEncoder(encode_batched, EmbeddingCache(1 << 20))

    async def test_a_repeated_image_is_served_from_the_cache(self, encoder: VisionEncoder, calls: list[str]) -> None:
        image = RawImage.from_image(noise_image(32, 32))
        first = await encoder.encode(image)
        second = await encoder.encode(RawImage.from_image(noise_image(32, 32)))
        assert second is first
        assert calls == [image.content_hash]

    async def test_concurrent_requests_for_one_image_share_one_encode(
        self, encoder: VisionEncoder, calls: list[str]
    ) -> None:
        image = RawImage.from_image(noise_image(32, 32, seed=4))
        results = await asyncio.gather(*(encoder.encode(image) for _ in range(5)))
        assert len(calls) == 1
        assert all(result is results[0] for result in results)

    async def test_a_failed_encode_is_not_cached(self, calls: list[str]) -> None:
        attempts = 0

        async def flaky(image: RawImage) -> ImageEmbedding:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise RuntimeError("device hiccup")
            return embedding(image.content_hash)

        encoder = VisionEncoder(flaky, EmbeddingCache(1 << 20))
        image = RawImage.from_image(noise_image(16, 16))
        with pytest.raises(RuntimeError):
            await encoder.encode(image)
        assert (await encoder.encode(image)).content_hash == image.content_hash


def test_raw_image_round_trips_pixels() -> None:
    picture = noise_image(17, 9, seed=2)
    raw = RawImage.from_image(picture)
    assert raw.to_image().tobytes() == picture.tobytes()
    assert (raw.width, raw.height, len(raw.rgb)) == (17, 9, 17 * 9 * 3)
