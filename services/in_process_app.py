"""The gateway with encoder and decoder in its own process, no Ray: the baseline the split deployments
are measured against, and a fast way to test the HTTP surface."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.common.device import resolve_device
from services.common.dtype_name import DTypeName
from services.gateway.app import create_app
from services.gateway.gateway import Gateway
from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_backends import InProcessBackends
from services.llm_decoder.adapter_loader import AdapterLoading
from services.llm_decoder.async_engine import DEFAULT_STREAM_INTERVAL_S, AsyncLLMEngine
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.models.checkpoint import model_dtype
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf
from services.telemetry.tracing import configure_tracing
from services.vision_encoder.embedding_cache import DEFAULT_CACHE_BYTES, EmbeddingCache
from services.vision_encoder.encoder import VisionEncoder, unbatched


def build_in_process_app(
    model_dir: Path,
    engine_config: EngineConfig | None = None,
    options: GatewayOptions | None = None,
    device: str | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    redis_url: str | None = None,
    stream_interval_s: float = DEFAULT_STREAM_INTERVAL_S,
    dtype: DTypeName = "auto",
    lora_adapters: dict[str, Path] | None = None,
    adapter_root: Path | None = None,
) -> FastAPI:
    """`lora_adapters`: model id -> PEFT adapter directory, served beside the base; `adapter_root`: where
    `POST /v1/load_lora_adapter` may load others from (the engine config must give adapters slots: `max_loras`)."""
    configure_tracing("flashvqa")  # one process: every span under one service name
    torch_device = resolve_device(device)
    torch_dtype = model_dtype(model_dir, torch_device, dtype)
    vision = VisionHalf(model_dir, torch_device, torch_dtype)

    encoder = VisionEncoder(partial(unbatched, encode=vision.encode), EmbeddingCache(cache_bytes))
    language = LanguageHalf(model_dir, torch_device, torch_dtype)
    llm_engine = LLMEngine(language, engine_config)
    loading = AdapterLoading.serving(lora_adapters or {}, adapter_root)
    engine = AsyncLLMEngine(llm_engine, stream_interval_s=stream_interval_s, adapters=loading)
    options = options or GatewayOptions(model_name=model_dir.name, auth=AuthOptions(allow_anonymous=True))
    options = options.model_copy(
        update={"adapters": tuple(loading.configured), "runtime_lora_loading": adapter_root is not None}
    )
    if options.max_in_flight is None:  # the one engine's capacity, as the Serve app derives it for its pool
        options = options.model_copy(update={"max_in_flight": llm_engine.config.max_requests})
    app = create_app(Gateway.create(InProcessBackends(encoder, engine), options, redis_url))
    app.state.engine = engine
    return app
