"""One builder wires the three deployments into the Serve application (named by `serve_config.yaml`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application, Deployment

from services.autoscaling import DecoderAutoscaling, EncoderAutoscaling
from services.common.dtype_name import AUTO_DTYPE_RULE, DTypeName
from services.gateway.admission.proxy_door import proxy_environment
from services.gateway.deployment import GatewayDeployment
from services.gateway.lora.adapter_registry import AdapterRegistryDeployment
from services.gateway.options import GatewayOptions, GatewaySettings
from services.llm_decoder.adapter_loader import AdapterLoading
from services.llm_decoder.async_engine import DEFAULT_STREAM_INTERVAL_S
from services.llm_decoder.deployment import LLMDecoderDeployment
from services.llm_decoder.engine import EngineConfig
from services.llm_decoder.engine.config import DecodeGraphs
from services.routing.affinity_router import affinity_router_config
from services.vision_encoder.deployment import EncoderBatching, VisionEncoderDeployment
from services.vision_encoder.embedding_cache import DEFAULT_CACHE_BYTES


class DeploymentArgs(BaseModel):
    """Serve options of one pool; `autoscaling_config`, when given, replaces `num_replicas`."""

    model_config = ConfigDict(extra="forbid")

    num_replicas: int = Field(1, ge=1)
    autoscaling_config: dict[str, Any] | None = None
    max_ongoing_requests: int | None = Field(None, ge=1, description="per replica; default depends on the pool")
    max_queued_requests: int = Field(64, ge=-1, description="waiting at the caller beyond that: 503; -1 unbounded")
    torch_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch in each replica (Ray otherwise allows num_cpus threads)"
    )
    ray_actor_options: dict[str, Any] = Field(default_factory=lambda: {"num_cpus": 1})
    graceful_shutdown_timeout_s: float = Field(
        20.0, ge=0, description="how long a replica being scaled down may finish its requests before it is killed"
    )

    def serve_options(self, default_max_ongoing: int) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests or default_max_ongoing,
            "max_queued_requests": self.max_queued_requests,
            "ray_actor_options": self.ray_actor_options,
            "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s,
        }
        autoscaling_config = self.serve_autoscaling_config()
        if autoscaling_config is not None:
            options["autoscaling_config"] = autoscaling_config
        else:
            options["num_replicas"] = self.num_replicas
        return options

    def serve_autoscaling_config(self) -> dict[str, Any] | None:
        """Serve's own policy (ongoing requests per replica), as given: right for the CPU-bound gateway."""
        return self.autoscaling_config


class EncoderArgs(DeploymentArgs):
    batching: EncoderBatching = Field(default_factory=EncoderBatching)
    cache_bytes: int = Field(DEFAULT_CACHE_BYTES, ge=0, description="embedding cache per replica")
    autoscaling_config: EncoderAutoscaling | None = Field(  # type: ignore[assignment]
        None, description="scale on the pixels waiting to be encoded (services/autoscaling); null: num_replicas"
    )

    def serve_autoscaling_config(self) -> dict[str, Any] | None:
        return None if self.autoscaling_config is None else self.autoscaling_config.serve_config()


ENGINE_DEFAULTS = EngineConfig()  # the decoder args default to the engine's own defaults, written only there


class LoRAArgs(BaseModel):
    """LoRA adapters every decoder replica serves beside the base model, each a model id of its own."""

    model_config = ConfigDict(extra="forbid")

    adapters: dict[str, str] = Field(
        default_factory=dict, description="model id -> directory of a PEFT LoRA adapter (adapter_config.json)"
    )
    max_loaded: int = Field(4, ge=1, description="adapters resident per replica at once (their slots)")
    max_rank: int = Field(ENGINE_DEFAULTS.max_lora_rank, ge=1, description="the largest adapter rank accepted")
    adapter_root: str | None = Field(
        None,
        description="directory on the decoder replicas under which POST /v1/load_lora_adapter may load adapters "
        "at run time; null: only the configured adapters are served",
    )
    max_held: int = Field(
        16, ge=1, description="adapters kept in a replica's host memory; more are read again when next named"
    )

    @property
    def enabled(self) -> bool:
        return bool(self.adapters) or self.adapter_root is not None

    def loading(self) -> AdapterLoading:
        root = None if self.adapter_root is None else Path(self.adapter_root)
        return AdapterLoading.serving(self.adapters, root, self.max_held)


class DecoderArgs(DeploymentArgs):
    max_num_seqs: int = Field(ENGINE_DEFAULTS.max_num_seqs, ge=1, description="sequences decoded together per replica")
    max_model_len: int = Field(ENGINE_DEFAULTS.max_model_len, ge=2, description="prompt + output tokens per sequence")
    max_waiting: int = Field(
        ENGINE_DEFAULTS.max_waiting, ge=0, description="requests waiting for a slot before refusing (429)"
    )
    max_num_batched_tokens: int | None = Field(
        None,
        ge=1,
        description="tokens per engine step: every decode, then prompt chunks; null: 192 on CPU, "
        "4096 on GPU; at least max_num_seqs",
    )
    step_time_target_ms: float = Field(
        ENGINE_DEFAULTS.step_time_target_ms,
        ge=0,
        description="the longest an engine step should take: prompt chunks are cut to what the steps so far say "
        "fits; 0: no target, the token budget alone",
    )
    attention_backend: str | None = Field(None, description="attention backend; null: the fastest on the device")
    enable_prefix_caching: bool = Field(
        ENGINE_DEFAULTS.enable_prefix_caching, description="share full KV blocks between prompts that start alike"
    )
    kv_cache_bytes: int | None = Field(
        None,
        ge=1,
        description="KV cache per replica; null: gpu_memory_utilization on a GPU, on a CPU room for "
        "max_num_seqs sequences of max_model_len",
    )
    gpu_memory_utilization: float = Field(
        ENGINE_DEFAULTS.gpu_memory_utilization,
        gt=0,
        le=1,
        description="share of the GPU's memory the weights and the KV cache may take",
    )
    decode_graphs: DecodeGraphs = Field(
        ENGINE_DEFAULTS.decode_graphs,
        description="decode-only steps: auto (CUDA graphs on a GPU), off (eager), uncaptured (the graphs' "
        "shapes, eagerly)",
    )
    stream_interval_ms: float = Field(
        DEFAULT_STREAM_INTERVAL_S * 1000,
        ge=0,
        description="least time between two messages of a streamed answer (its first goes at once); 0: every token",
    )
    autoscaling_config: DecoderAutoscaling | None = Field(  # type: ignore[assignment]
        None, description="scale on sequences held and KV cache used (services/autoscaling); null: num_replicas"
    )
    lora: LoRAArgs = Field(default_factory=LoRAArgs)
    graceful_shutdown_timeout_s: float = Field(
        120.0, ge=0, description="how long a replica being scaled down may finish its answers before it is killed"
    )

    def serve_autoscaling_config(self) -> dict[str, Any] | None:
        return None if self.autoscaling_config is None else self.autoscaling_config.serve_config()

    def engine_config(self) -> EngineConfig:
        return EngineConfig(
            max_num_seqs=self.max_num_seqs,
            max_model_len=self.max_model_len,
            max_waiting=self.max_waiting,
            max_num_batched_tokens=self.max_num_batched_tokens,
            step_time_target_ms=self.step_time_target_ms,
            enable_prefix_caching=self.enable_prefix_caching,
            attention_backend=self.attention_backend,
            kv_cache_bytes=self.kv_cache_bytes,
            decode_graphs=self.decode_graphs,
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_loras=self.lora.max_loaded if self.lora.enabled else 0,
            max_lora_rank=self.lora.max_rank,
        )

    @property
    def num_replicas_at_most(self) -> int:
        return self.num_replicas if self.autoscaling_config is None else self.autoscaling_config.max_replicas


class GatewayArgs(DeploymentArgs, GatewaySettings):
    """The gateway pool's Serve options and the gateway's own settings (limits, auth, rate limits, cache)."""

    # The gateway refuses what exceeds its in-flight budget itself, in milliseconds and in the OpenAI error
    # form; a request that Serve's queue in front of it refused would get the proxy's plain-text 503 instead.
    max_queued_requests: int = Field(
        -1,
        ge=-1,
        description="waiting at the proxy beyond max_ongoing_requests; "
        "-1 (unbounded): the gateway's own door refuses the excess",
    )

    @property
    def num_replicas_at_least(self) -> int:
        if self.autoscaling_config is None:
            return self.num_replicas
        return max(1, int(self.autoscaling_config.get("min_replicas", 1)))


class AppArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt knob must not be silently ignored

    model: str = Field(description="the model directory (GLM-4.6V-Flash, a Qwen2.5-VL, or a tiny test model)")
    served_model_name: str | None = Field(None, description="the model id clients use; the directory name if unset")
    device: str | None = Field(None, description="torch device for encoder and decoder; CUDA when present")
    dtype: DTypeName = Field("auto", description=AUTO_DTYPE_RULE)
    encoder: EncoderArgs = Field(default_factory=EncoderArgs)
    decoder: DecoderArgs = Field(default_factory=DecoderArgs)
    gateway: GatewayArgs = Field(default_factory=GatewayArgs)

    @property
    def model_name(self) -> str:
        return self.served_model_name or Path(self.model).name


def build_app(args: dict[str, Any]) -> Application:
    app_args = AppArgs.model_validate(args)
    encoder = (
        _deployment(VisionEncoderDeployment)
        .options(
            user_config=app_args.encoder.batching.model_dump(),
            # An image whose embedding a replica caches stays there until that replica is a batch busier than the rest.
            request_router_config=affinity_router_config(max_imbalance=app_args.encoder.batching.max_batch_size),
            **app_args.encoder.serve_options(default_max_ongoing=4 * app_args.encoder.batching.max_batch_size),
        )
        .bind(
            app_args.model,
            app_args.device,
            app_args.encoder.cache_bytes,
            app_args.encoder.torch_threads,
            dtype=app_args.dtype,
        )
    )
    decoder_args = app_args.decoder
    adapter_loading = decoder_args.lora.loading()
    decoder = (
        _deployment(LLMDecoderDeployment)
        .options(
            # A conversation stays with its KV until that replica holds a whole batch more than the least loaded one.
            request_router_config=affinity_router_config(max_imbalance=decoder_args.max_num_seqs),
            # Everything the engine holds (running and waiting) is "ongoing" to Serve.
            **decoder_args.serve_options(default_max_ongoing=decoder_args.engine_config().max_requests),
        )
        .bind(
            app_args.model,
            decoder_args.engine_config(),
            app_args.device,
            decoder_args.torch_threads,
            decoder_args.stream_interval_ms / 1000,
            dtype=app_args.dtype,
            adapters=adapter_loading,
        )
    )
    settings = app_args.gateway.model_dump(include=set(GatewaySettings.model_fields))
    settings["max_in_flight"] = max_in_flight = in_flight_budget(app_args)
    gateway_options = GatewayOptions(
        model_name=app_args.model_name,
        adapters=tuple(adapter_loading.configured),
        runtime_lora_loading=decoder_args.lora.adapter_root is not None,
        **settings,
    )
    # Adapters loaded at run time are kept where every gateway replica reads them; without an adapter root the
    # configured ones never change, and each gateway replica holds them itself.
    adapter_registry = (
        _deployment(AdapterRegistryDeployment).bind(list(adapter_loading.configured))
        if decoder_args.lora.adapter_root is not None
        else None
    )
    # Room for the requests being refused beside those in flight, so that Serve itself never refuses.
    gateway_serve = app_args.gateway.serve_options(default_max_ongoing=max(256, 2 * max_in_flight))
    return (
        _deployment(GatewayDeployment)
        .options(**gateway_serve)
        .bind(encoder, decoder, adapter_registry, gateway_options)
    )


def proxy_door_environment(args: dict[str, Any]) -> dict[str, str]:
    """What Serve's HTTP proxy needs in its environment to refuse past the pools' capacity itself
    (`services/gateway/admission/proxy_door.py`): the gateway replicas' budgets together."""
    app_args = AppArgs.model_validate(args)
    gateway = app_args.gateway
    return proxy_environment(
        in_flight_budget(app_args) * gateway.num_replicas_at_least, gateway.overload_retry_after_ms
    )


def in_flight_budget(app_args: AppArgs) -> int:
    """Requests one gateway replica lets in at once: `gateway.max_in_flight`, or by default what the decoder
    pool can hold (decoding or waiting for a slot) at its largest, shared among the gateway replicas at their
    fewest. More would only wait in the decoder's queue or be refused there, after the gateway had decoded
    and checked their images."""
    if app_args.gateway.max_in_flight is not None:
        return app_args.gateway.max_in_flight
    decoder = app_args.decoder
    capacity = decoder.engine_config().max_requests * decoder.num_replicas_at_most
    return math.ceil(capacity / app_args.gateway.num_replicas_at_least)


def _deployment(decorated: object) -> Deployment:
    """`@serve.deployment` turns a class into a Deployment; type checkers still see the class."""
    if not isinstance(decorated, Deployment):
        raise TypeError("serve.deployment did not return a Deployment")
    return decorated
