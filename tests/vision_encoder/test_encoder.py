"""The encoder never encodes an image twice (cached by content, and one encode for concurrent asks), and
never encodes one whose request is out of time."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from services.common.deadline import DeadlineExceededError
from services.common.image_embedding import ImageEmbedding
from services.messages import EncodeRequest, RawImage
from services.vision_encoder.embedding_cache import EmbeddingCache
from services.vision_encoder.encoder import BatchedEmbedding, VisionEncoder, encode_in_time, unbatched
from tests.conftest import noise_image


def embedding(content_hash: str, tokens: int = 4) -> ImageEmbedding:
    return ImageEmbedding(content_hash, (1, 2, 2 * tokens), torch.zeros(tokens, 8))  # 4 bytes * 8 * tokens


def batch_of_one(request: EncodeRequest) -> BatchedEmbedding:
    return BatchedEmbedding(embedding(request.image.content_hash), batch_size=1, started_ns=0, finished_ns=0)


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
        async def encode_batched(request: EncodeRequest) -> BatchedEmbedding:
            calls.append(request.image.content_hash)
            await asyncio.sleep(0.01)
            return batch_of_one(request)

        return VisionEncoder(encode_batched, EmbeddingCache(1 << 20))

    async def test_a_repeated_image_is_served_from_the_cache(self, encoder: VisionEncoder, calls: list[str]) -> None:
        image = RawImage.from_image(noise_image(32, 32))
        first = await encoder.encode(EncodeRequest(image))
        second = await encoder.encode(EncodeRequest(RawImage.from_image(noise_image(32, 32))))
        assert second is first
        assert calls == [image.content_hash]

    async def test_concurrent_requests_for_one_image_share_one_encode(
        self, encoder: VisionEncoder, calls: list[str]
    ) -> None:
        image = RawImage.from_image(noise_image(32, 32, seed=4))
        results = await asyncio.gather(*(encoder.encode(EncodeRequest(image)) for _ in range(5)))
        assert len(calls) == 1
        assert all(result is results[0] for result in results)

    async def test_a_failed_encode_is_not_cached(self, calls: list[str]) -> None:
        attempts = 0

        async def flaky(request: EncodeRequest) -> BatchedEmbedding:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise RuntimeError("device hiccup")
            return batch_of_one(request)

        encoder = VisionEncoder(flaky, EmbeddingCache(1 << 20))
        image = RawImage.from_image(noise_image(16, 16))
        with pytest.raises(RuntimeError):
            await encoder.encode(EncodeRequest(image))
        assert (await encoder.encode(EncodeRequest(image))).content_hash == image.content_hash

    async def test_a_shared_encode_whose_starter_went_away_is_encoded_again_for_the_others(
        self, encoder: VisionEncoder, calls: list[str]
    ) -> None:
        """A refused or abandoned request cancels its encode; another request waiting on that same encode must
        still get its embedding (it was failing with a cancellation, which Serve passed on as a 500)."""
        image = RawImage.from_image(noise_image(32, 32, seed=5))
        starter = asyncio.ensure_future(encoder.encode(EncodeRequest(image)))
        await asyncio.sleep(0)  # the starter's encode is in flight
        sharer = asyncio.ensure_future(encoder.encode(EncodeRequest(image)))
        await asyncio.sleep(0)
        starter.cancel()
        assert (await sharer).content_hash == image.content_hash
        assert starter.cancelled()
        assert calls == [image.content_hash, image.content_hash]

    async def test_a_sharer_that_is_cancelled_itself_stays_cancelled(self, encoder: VisionEncoder) -> None:
        image = RawImage.from_image(noise_image(32, 32, seed=6))
        starter = asyncio.ensure_future(encoder.encode(EncodeRequest(image)))
        await asyncio.sleep(0)
        sharer = asyncio.ensure_future(encoder.encode(EncodeRequest(image)))
        await asyncio.sleep(0)
        sharer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sharer
        assert (await starter).content_hash == image.content_hash


class TestDeadline:
    async def test_an_expired_request_is_not_encoded(self) -> None:
        calls: list[str] = []

        async def encode_batched(request: EncodeRequest) -> BatchedEmbedding:
            calls.append(request.image.content_hash)
            return batch_of_one(request)

        encoder = VisionEncoder(encode_batched, EmbeddingCache(1 << 20))
        with pytest.raises(DeadlineExceededError):
            await encoder.encode(EncodeRequest(RawImage.from_image(noise_image(16, 16)), time.time() - 0.001))
        assert calls == []

    async def test_a_shared_encode_that_ran_out_of_time_is_retried_for_a_request_with_time_left(self) -> None:
        """The first asker's deadline passes while the image queues; the second asker still gets it."""
        release = asyncio.Event()

        async def queued_then_batched(request: EncodeRequest) -> BatchedEmbedding:
            await release.wait()
            return await unbatched(request, lambda images: [embedding(image.content_hash) for image in images])

        encoder = VisionEncoder(queued_then_batched, EmbeddingCache(1 << 20))
        image = RawImage.from_image(noise_image(16, 16, seed=7))
        hurried = asyncio.ensure_future(encoder.encode(EncodeRequest(image, time.time() + 0.05)))
        patient = asyncio.ensure_future(encoder.encode(EncodeRequest(image, time.time() + 30)))
        await asyncio.sleep(0.1)
        release.set()
        with pytest.raises(DeadlineExceededError):
            await hurried
        assert (await patient).content_hash == image.content_hash


def test_a_batch_encodes_only_the_requests_in_time() -> None:
    images = [RawImage.from_image(noise_image(8, 8, seed=seed)) for seed in range(4)]
    now = time.time()
    requests = [
        EncodeRequest(images[0]),
        EncodeRequest(images[1], now - 1),
        EncodeRequest(images[2], now + 60),
        EncodeRequest(images[3], now - 1),
    ]
    encoded: list[str] = []

    def encode(batch: list[RawImage]) -> list[ImageEmbedding]:
        encoded.extend(image.content_hash for image in batch)
        return [embedding(image.content_hash) for image in batch]

    results = encode_in_time(requests, encode)
    assert encoded == [images[0].content_hash, images[2].content_hash]
    assert [isinstance(result, DeadlineExceededError) for result in results] == [False, True, False, True]
    assert [result.embedding.content_hash for result in results if isinstance(result, BatchedEmbedding)] == encoded
    assert {result.batch_size for result in results if isinstance(result, BatchedEmbedding)} == {2}


def test_raw_image_round_trips_pixels() -> None:
    picture = noise_image(17, 9, seed=2)
    raw = RawImage.from_image(picture)
    assert raw.to_image().tobytes() == picture.tobytes()
    assert (raw.width, raw.height, len(raw.rgb)) == (17, 9, 17 * 9 * 3)
