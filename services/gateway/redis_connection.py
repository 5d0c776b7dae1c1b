"""The gateway's one Redis connection (rate limits and the response cache), and its health.

Redis is an accelerator, never a dependency of serving: every call has a timeout of a few milliseconds,
no retries, and a failure degrades the feature that used it (cache miss, local rate limits) while
`/health` reports the gateway as degraded. State changes are logged once, not once per request.
"""

from __future__ import annotations

import logging
import os
import time

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

logger = logging.getLogger(__name__)

REDIS_URL_ENVS = ("FLASHVQA_REDIS_URL", "REDIS_URL")
# What a down, slow or misbehaving Redis raises through redis-py.
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, OSError, TimeoutError)


def redis_url_from_env() -> str | None:
    return next((os.environ[name] for name in REDIS_URL_ENVS if os.environ.get(name)), None)


class RedisConnection:
    def __init__(self, url: str, timeout_ms: float) -> None:
        timeout = timeout_ms / 1000
        self.client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.last_error: str | None = None
        self._failed_at = 0.0

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def record_success(self) -> None:
        if self.last_error is not None:
            logger.warning("redis is reachable again after %.1f s", time.monotonic() - self._failed_at)
            self.last_error = None

    def record_failure(self, error: BaseException) -> None:
        if self.last_error is None:
            logger.warning(
                "redis failed (%s: %s); serving without it until it answers again", type(error).__name__, error
            )
            self._failed_at = time.monotonic()
        self.last_error = f"{type(error).__name__}: {error}"

    async def ping(self) -> bool:
        try:
            await self.client.ping()
        except REDIS_ERRORS as error:
            self.record_failure(error)
            return False
        self.record_success()
        return True

    async def close(self) -> None:
        await self.client.aclose()
