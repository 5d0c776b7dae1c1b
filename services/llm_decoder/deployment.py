"""The LLM decoder as a Ray Serve deployment: one continuous-batching engine per (GPU) replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ray import serve

from services.autoscaling.signals import KV_CACHE_USAGE, RUNNING_SEQUENCES, WAITING_SEQUENCES
from services.common.device import resolve_device, set_torch_threads
from services.common.dtype_name import DTypeName
from services.llm_decoder.adapter_loader import AdapterLoading
from services.llm_decoder.async_engine import DEFAULT_STREAM_INTERVAL_S, AsyncLLMEngine
from services.llm_decoder.engine import EngineConfig, EngineStats, LLMEngine
from services.llm_decoder.traced_generation import generate_traced
from services.messages import AdapterRef, DecodeRequest, EngineDeadError, RequestOutput
from services.models.checkpoint import model_dtype
from services.models.language_half import LanguageHalf
from services.telemetry.replica import replica_name, set_up_replica_telemetry


@serve.deployment(name="llm_decoder")
class LLMDecoderDeployment:
    def __init__(
        self,
        model_dir: str,
        engine_config: EngineConfig,
        device: str | None = None,
        torch_threads: int | None = None,
        stream_interval_s: float = DEFAULT_STREAM_INTERVAL_S,
        dtype: DTypeName = "auto",
        adapters: AdapterLoading | None = None,
    ) -> None:
        """`adapters`: the LoRA adapters read at start (a bad one fails the replica's start, loudly) and where
        others may be read from."""
        set_up_replica_telemetry("flashvqa-llm-decoder")
        set_torch_threads(torch_threads)
        torch_device = resolve_device(device)
        model = Path(model_dir)
        language = LanguageHalf(model, torch_device, model_dtype(model, torch_device, dtype))
        engine = LLMEngine(language, engine_config)
        self._engine = AsyncLLMEngine(engine, replica_name(), stream_interval_s, adapters)

    async def generate(self, request: DecodeRequest, image_refs: list[Any]) -> AsyncIterator[RequestOutput]:
        """Stream a request's outputs. `image_refs` are object references to the encoder's results, fetched
        here straight from the encoder; cancelling the call (a client that went away) aborts the sequence."""
        async for output in generate_traced(self._engine, request, image_refs):
            yield output

    async def check_adapter(self, ref: AdapterRef) -> None:
        """Read and register an adapter, as a request naming it would: the gateway's check before it serves one
        loaded at run time. Raises AdapterLoadError."""
        await self._engine.check_adapter(ref)

    def stats(self) -> EngineStats:
        return self._engine.stats()

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's hook: this replica's load, for the pool's autoscaling policy."""
        stats = self._engine.stats()
        return {
            RUNNING_SEQUENCES: stats.num_running,
            WAITING_SEQUENCES: stats.num_waiting,
            KV_CACHE_USAGE: stats.kv_cache_usage,
        }

    def check_health(self) -> None:
        if not self._engine.is_healthy:
            raise EngineDeadError("the decoder engine loop has failed")
