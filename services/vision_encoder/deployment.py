"""The vision encoder as a Ray Serve deployment: dynamic batching on its own (GPU) replicas."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from ray import serve

from services.autoscaling import PendingImages
from services.common.deadline import DeadlineExceededError
from services.common.device import resolve_device, set_torch_threads
from services.common.dtype_name import DTypeName
from services.common.image_embedding import ImageEmbedding
from services.messages import EncodeRequest
from services.models.checkpoint import model_dtype
from services.models.vision_half import VisionHalf
from services.telemetry.replica import set_up_replica_telemetry
from services.vision_encoder.embedding_cache import DEFAULT_CACHE_BYTES, EmbeddingCache
from services.vision_encoder.encoder import BatchedEmbedding, VisionEncoder, encode_in_time


class EncoderBatching(BaseModel):
    """Batch knobs, live-tunable through the deployment's `user_config`."""

    max_batch_size: int = Field(8, ge=1, description="images encoded in one forward of the vision tower")
    batch_wait_timeout_s: float = Field(
        0.0, ge=0, description="how long a batch waits for more images; 0 batches what queued while the tower ran"
    )


class EncoderStats(BaseModel):
    cache_hits: int
    cache_misses: int
    cache_entries: int
    batches: int
    images_encoded: int
    largest_batch: int


@serve.deployment(name="vision_encoder")
class VisionEncoderDeployment:
    def __init__(
        self,
        model_dir: str,
        device: str | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        torch_threads: int | None = None,
        dtype: DTypeName = "auto",
    ) -> None:
        set_up_replica_telemetry("flashvqa-vision-encoder")
        set_torch_threads(torch_threads)
        torch_device = resolve_device(device)
        model = Path(model_dir)
        self._vision = VisionHalf(model, torch_device, model_dtype(model, torch_device, dtype))
        self._encoder = VisionEncoder(self._encode_one, EmbeddingCache(cache_bytes))
        # Counters, not a list of every batch's size: a replica encodes for weeks.
        self._batches = 0
        self._images_encoded = 0
        self._largest_batch = 0
        self._pending = PendingImages()

    def reconfigure(self, user_config: dict) -> None:
        batching = EncoderBatching.model_validate(user_config)
        batch_method: Any = self._encode_batch  # serve.batch adds the setters at run time
        batch_method.set_max_batch_size(batching.max_batch_size)
        batch_method.set_batch_wait_timeout_s(batching.batch_wait_timeout_s)

    async def encode(self, request: EncodeRequest) -> ImageEmbedding:
        return await self._encoder.encode(request)

    def stats(self) -> EncoderStats:
        cache = self._encoder.stats()
        return EncoderStats(
            cache_hits=cache.hits,
            cache_misses=cache.misses,
            cache_entries=cache.entries,
            batches=self._batches,
            images_encoded=self._images_encoded,
            largest_batch=self._largest_batch,
        )

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's hook: this replica's load, for the pool's autoscaling policy."""
        return self._pending.autoscaling_stats()

    async def _encode_one(self, request: EncodeRequest) -> BatchedEmbedding:
        with self._pending.holding(request.image.width * request.image.height):
            result = await self._encode_batch(request)
        if isinstance(result, DeadlineExceededError):
            raise result
        return result

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.0)
    async def _encode_batch(self, requests: list[EncodeRequest]) -> list[BatchedEmbedding | DeadlineExceededError]:
        self._batches += 1
        self._images_encoded += len(requests)
        self._largest_batch = max(self._largest_batch, len(requests))
        # The tower runs in a worker thread so the replica keeps collecting the next batch meanwhile.
        return await asyncio.to_thread(encode_in_time, requests, self._vision.encode)
