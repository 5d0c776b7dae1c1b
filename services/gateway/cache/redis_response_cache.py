"""The response cache in Redis, shared by all gateway replicas. Redis down or slow is a miss, never an
error: the request is answered by the model as if the cache were empty."""

from __future__ import annotations

from services.gateway.redis_connection import REDIS_ERRORS, RedisConnection


class RedisResponseCache:
    def __init__(self, connection: RedisConnection, ttl_s: float, key_prefix: str = "flashvqa:answer") -> None:
        self._connection = connection
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = key_prefix

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._connection.client.get(f"{self._prefix}:{key}")
        except REDIS_ERRORS as error:
            self._connection.record_failure(error)
            return None
        self._connection.record_success()
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        try:
            await self._connection.client.set(f"{self._prefix}:{key}", value, px=self._ttl_ms)
        except REDIS_ERRORS as error:
            self._connection.record_failure(error)
            return
        self._connection.record_success()
