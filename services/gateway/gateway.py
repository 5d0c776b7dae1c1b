"""Everything the gateway's routes use, built once per gateway replica from its options and environment."""

from __future__ import annotations

from dataclasses import dataclass

from services.gateway.admission.admission import Admission
from services.gateway.admission.auth import Authenticator
from services.gateway.admission.rate_limit import LocalRateLimiter, RateLimiter
from services.gateway.admission.redis_rate_limiter import RedisRateLimiter
from services.gateway.backends import Backends
from services.gateway.cache.redis_response_cache import RedisResponseCache
from services.gateway.cache.response_cache import InMemoryResponseCache, ResponseCache
from services.gateway.chat.chat_service import ChatService
from services.gateway.lora.adapter_catalog import AdapterCatalog
from services.gateway.lora.adapter_store import AdapterStore, InMemoryAdapterStore
from services.gateway.lora.served_models import ServedModels
from services.gateway.options import GatewayOptions
from services.gateway.redis_connection import RedisConnection, redis_url_from_env


@dataclass(frozen=True)
class Gateway:
    chat: ChatService
    admission: Admission
    models: ServedModels
    redis: RedisConnection | None  # None: in-process cache and per-replica rate limits

    @property
    def options(self) -> GatewayOptions:
        return self.chat.options

    @classmethod
    def create(
        cls,
        backends: Backends,
        options: GatewayOptions,
        redis_url: str | None = None,
        adapter_store: AdapterStore | None = None,
    ) -> Gateway:
        """`redis_url` (else `$FLASHVQA_REDIS_URL` / `$REDIS_URL`) shares limits and answers between replicas;
        `adapter_store` the LoRA adapters served (else this replica's own, starting from the configured ones)."""
        redis_url = redis_url or redis_url_from_env()
        redis = RedisConnection(redis_url, options.redis_timeout_ms) if redis_url else None
        limiter: RateLimiter = (
            RedisRateLimiter(redis, fail_open=options.rate_limits.fail_open)
            if redis is not None
            else LocalRateLimiter()
        )
        cache: ResponseCache | None = None
        if options.cache.enabled:
            cache = (
                RedisResponseCache(redis, options.cache.ttl_s)
                if redis is not None
                else InMemoryResponseCache(options.cache.max_memory_bytes, options.cache.ttl_s)
            )
        authenticator = Authenticator.from_file(options.auth.api_keys_file, options.auth.allow_anonymous)
        admission = Admission(authenticator, limiter, options.rate_limits)
        catalog = AdapterCatalog(adapter_store or InMemoryAdapterStore(options.adapters))
        models = ServedModels(options.model_name, catalog, backends, options.runtime_lora_loading)
        return cls(ChatService(backends, options, admission, cache), admission, models, redis)

    async def health(self) -> dict[str, str]:
        if self.redis is None or await self.redis.ping():
            return {"status": "ok"}
        return {"status": "degraded", "redis": self.redis.last_error or "unreachable"}
