"""Rate limits shared by every gateway replica: the GCRA of `rate_limit.py` as one atomic Lua script.

The script reads Redis's clock (`TIME`), so replicas with drifting clocks still agree, checks both
limits, and writes both TATs only if both allow the charge (or `force`): a request never pays one limit
and is then refused by the other. When Redis fails, the gateway either falls back to per-replica limits
(`fail_open`, the default: serving beats refusing) or refuses with 503.
"""

from __future__ import annotations

from services.gateway.admission.rate_limit import PERIOD_S, Limits, LimitState, LocalRateLimiter, RateLimitDecision
from services.gateway.api.errors import ServiceUnavailableError
from services.gateway.redis_connection import REDIS_ERRORS, RedisConnection

# KEYS: request TAT key, token TAT key. ARGV: request limit, token limit (0 = none), request cost,
# token cost, period in seconds, force (1/0). Returns: allowed, wait, then remaining and reset per limit.
# Numbers go back as strings: Redis truncates Lua numbers to integers.
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local period = tonumber(ARGV[5])
local force = ARGV[6] == '1'
local tats, new_tats = {}, {}
local wait = 0
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  if limit > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0'), now)
    tats[i] = tat
    new_tats[i] = tat + tonumber(ARGV[i + 2]) * period / limit
    wait = math.max(wait, new_tats[i] - period - now)
  end
end
local allowed = force or wait <= 0
local reply = {allowed and 1 or 0, tostring(allowed and 0 or wait)}
for i = 1, 2 do
  local limit = tonumber(ARGV[i])
  if limit > 0 then
    local tat = tats[i]
    if allowed then
      tat = new_tats[i]
      redis.call('SET', KEYS[i], tostring(tat), 'PX', math.ceil((tat - now) * 1000) + 1)
    end
    local used = math.max(tat - now, 0)
    table.insert(reply, tostring(math.max(0, math.floor((period - used) / (period / limit)))))
    table.insert(reply, tostring(used))
  else
    table.insert(reply, '-1')
    table.insert(reply, '0')
  end
end
return reply
"""


class RedisRateLimiter:
    def __init__(self, connection: RedisConnection, fail_open: bool = True, key_prefix: str = "flashvqa:rl") -> None:
        self._connection = connection
        self._script = connection.client.register_script(GCRA_SCRIPT)
        self._fallback = LocalRateLimiter()
        self._fail_open = fail_open
        self._prefix = key_prefix

    async def acquire(
        self, tenant: str, limits: Limits, requests: int, tokens: int, force: bool = False
    ) -> RateLimitDecision:
        if limits.requests_per_minute is None and limits.tokens_per_minute is None:
            return RateLimitDecision(True)
        keys = [f"{self._prefix}:{tenant}:requests", f"{self._prefix}:{tenant}:tokens"]
        args = [limits.requests_per_minute or 0, limits.tokens_per_minute or 0, requests, tokens, PERIOD_S, int(force)]
        try:
            reply = await self._script(keys=keys, args=args)
        except REDIS_ERRORS as error:
            self._connection.record_failure(error)
            if not self._fail_open:
                raise ServiceUnavailableError("rate limits are unavailable (redis is down)") from error
            return await self._fallback.acquire(tenant, limits, requests, tokens, force)
        self._connection.record_success()
        allowed, wait, request_remaining, request_reset, token_remaining, token_reset = reply
        return RateLimitDecision(
            allowed=bool(int(allowed)),
            retry_after_s=float(wait),
            requests=_state(limits.requests_per_minute, request_remaining, request_reset),
            tokens=_state(limits.tokens_per_minute, token_remaining, token_reset),
        )


def _state(limit: int | None, remaining: bytes, reset: bytes) -> LimitState | None:
    return None if limit is None else LimitState(limit, int(remaining), float(reset))
