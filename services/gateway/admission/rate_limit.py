"""Per-tenant rate limits: requests per minute and (image + text) tokens per minute.

Both limits are GCRA (the generic cell rate algorithm, a token bucket kept as one timestamp): a tenant
with a limit of N per minute may spend N at once and then one every 60/N seconds. The "theoretical
arrival time" (TAT) is the moment the tenant's bucket would be full again.

Admission checks both limits and charges one request; the tokens a request really used are charged
afterwards, unconditionally (`force`), so a tenant who overspends waits until the debt is paid.
`LocalRateLimiter` is the in-process form (one gateway replica, or Redis down); `RedisRateLimiter`
runs the same arithmetic in a Lua script, so all gateway replicas share one budget.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

PERIOD_S = 60.0


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int | None
    tokens_per_minute: int | None


@dataclass(frozen=True)
class LimitState:
    limit: int
    remaining: int
    reset_s: float  # until the bucket is full again


@dataclass(frozen=True)
class RateLimitDecision:
    allowed: bool
    retry_after_s: float = 0.0
    requests: LimitState | None = None
    tokens: LimitState | None = None

    def headers(self) -> dict[str, str]:
        """OpenAI's `x-ratelimit-*` headers, plus `Retry-After` (whole seconds, rounded up) on refusal."""
        headers: dict[str, str] = {}
        for name, state in (("requests", self.requests), ("tokens", self.tokens)):
            if state is not None:
                headers[f"x-ratelimit-limit-{name}"] = str(state.limit)
                headers[f"x-ratelimit-remaining-{name}"] = str(state.remaining)
                headers[f"x-ratelimit-reset-{name}"] = f"{state.reset_s:.3f}s"
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers


class RateLimiter(Protocol):
    async def acquire(
        self, tenant: str, limits: Limits, requests: int, tokens: int, force: bool = False
    ) -> RateLimitDecision:
        """Charge `requests` and `tokens` to the tenant if both limits allow it (always, with `force`)."""


def gcra_step(tat: float, now: float, limit: int, cost: int) -> tuple[float, float]:
    """-> (TAT after charging `cost`, seconds until that charge would be allowed; <= 0: allowed now)."""
    interval = PERIOD_S / limit
    new_tat = max(tat, now) + cost * interval
    return new_tat, new_tat - PERIOD_S - now


def limit_state(tat: float, now: float, limit: int) -> LimitState:
    used = max(tat - now, 0.0)
    return LimitState(limit, max(0, math.floor((PERIOD_S - used) / (PERIOD_S / limit))), used)


class LocalRateLimiter:
    """GCRA in this process's memory: exact for one replica; with several, each enforces its own budget."""

    def __init__(self) -> None:
        self._tats: dict[tuple[str, str], float] = {}

    async def acquire(
        self, tenant: str, limits: Limits, requests: int, tokens: int, force: bool = False
    ) -> RateLimitDecision:
        now = time.time()
        charges = [
            (kind, limit, cost)
            for kind, limit, cost in (
                ("requests", limits.requests_per_minute, requests),
                ("tokens", limits.tokens_per_minute, tokens),
            )
            if limit is not None
        ]
        steps = {
            kind: gcra_step(self._tats.get((tenant, kind), now), now, limit, cost) for kind, limit, cost in charges
        }
        wait = max((wait for _, wait in steps.values()), default=0.0)
        allowed = force or wait <= 0
        if allowed:
            for kind, (new_tat, _) in steps.items():
                self._tats[tenant, kind] = new_tat
        states = {kind: limit_state(self._tats.get((tenant, kind), now), now, limit) for kind, limit, _ in charges}
        self._forget_full_buckets(now)
        return RateLimitDecision(allowed, 0.0 if allowed else wait, states.get("requests"), states.get("tokens"))

    def _forget_full_buckets(self, now: float) -> None:
        if len(self._tats) > 10_000:  # a full bucket is the same as no entry: bound memory under many tenants
            self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
