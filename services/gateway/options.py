"""The gateway's settings. `GatewaySettings` is what an operator configures (Serve app args, Helm values);
`GatewayOptions` adds what the builder derives. Secrets never live here: the Redis URL and the API key
file come from the environment of the gateway's pods (see `redis_connection.py` and `auth.py`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.image_input import ImageLimits
from services.gateway.cache.response_cache import ResponseCacheOptions
from services.gateway.images.remote_image_options import RemoteImageOptions
from services.messages import AdapterRef
from services.provenance import ProvenanceOptions
from services.safety import SafetyOptions


class AuthOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_keys_file: str | None = Field(None, description="YAML of tenants and key digests; else $FLASHVQA_API_KEYS_FILE")
    allow_anonymous: bool = Field(False, description="serve requests without a valid key (local use only)")


class RateLimitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = Field(None, ge=1, description="per tenant unless its key entry says otherwise")
    tokens_per_minute: int | None = Field(None, ge=1, description="image + prompt + completion tokens, per tenant")
    fail_open: bool = Field(True, description="Redis down: per-replica limits (true) or 503 (false)")
    pixels_per_image_token: int = Field(28 * 28, ge=1, description="for the token estimate: 14 px patches, 2x2 merge")


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt knob must not be silently ignored

    max_in_flight: int | None = Field(
        None,
        ge=1,
        description="chat and VQA requests one gateway replica works on at once; more are refused "
        "with 503 before their body is read. null: the decoder pool's capacity shared among the gateway replicas",
    )
    overload_retry_after_ms: int = Field(1000, ge=0, description="when a client refused at the door may retry")
    max_body_bytes: int = Field(32 << 20, ge=1024, description="refused before parsing")
    max_images_per_request: int = Field(4, ge=0)
    max_image_bytes: int = Field(20 << 20, ge=1, description="per image, before decoding")
    max_pixels: int = Field(512 * 512, ge=1, description="images are downscaled to this, aspect ratio kept")
    max_decode_pixels: int = Field(50_000_000, ge=1, description="larger (header-declared) images are refused")
    max_messages: int = Field(64, ge=1)
    max_prompt_chars: int = Field(32_000, ge=1, description="text of all messages together")
    max_completion_tokens: int = Field(4096, ge=1)
    request_timeout_s: float = Field(30, gt=0, description="default deadline; a client may ask for less or more")
    max_request_timeout_s: float = Field(300, gt=0, description="the most a client may ask for (x-request-timeout)")
    redis_timeout_ms: float = Field(50, gt=0, description="a slower Redis counts as down (cache miss, local limits)")
    remote_images: RemoteImageOptions = Field(default_factory=RemoteImageOptions)
    auth: AuthOptions = Field(default_factory=AuthOptions)
    rate_limits: RateLimitOptions = Field(default_factory=RateLimitOptions)
    cache: ResponseCacheOptions = Field(default_factory=ResponseCacheOptions)
    safety: SafetyOptions = Field(default_factory=SafetyOptions)
    provenance: ProvenanceOptions = Field(default_factory=ProvenanceOptions)


class GatewayOptions(GatewaySettings):
    model_name: str = Field(description="the model id clients name in requests and see in /v1/models")
    adapters: tuple[AdapterRef, ...] = Field((), description="the LoRA adapters configured for the decoders")
    runtime_lora_loading: bool = Field(False, description="the decoders load adapters at run time (an adapter root)")

    @property
    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_pixels, max_decode_pixels=max(self.max_decode_pixels, self.max_pixels))
