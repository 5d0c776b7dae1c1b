"""GCRA rate limits, in process and in Redis: the same arithmetic, the same answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.gateway.admission.rate_limit import Limits, LocalRateLimiter, RateLimiter
from services.gateway.admission.redis_rate_limiter import RedisRateLimiter
from services.gateway.api.errors import ServiceUnavailableError
from services.gateway.redis_connection import RedisConnection
from tests.redis_server import RedisServer

TEN_PER_MINUTE = Limits(requests_per_minute=10, tokens_per_minute=None)


@pytest.fixture(params=["local", "redis"])
async def limiter(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[RateLimiter]:
    if request.param == "local":
        yield LocalRateLimiter()
        return
    connection = RedisConnection(redis_server.url, timeout_ms=500)
    yield RedisRateLimiter(connection, key_prefix=f"test:{uuid.uuid4().hex}")
    await connection.close()


class TestRequestLimit:
    """N requests per minute: N at once, then refusals that say when to come back."""

    async def test_the_eleventh_request_of_a_minute_is_refused(self, limiter: RateLimiter) -> None:
        decisions = [await limiter.acquire("acme", TEN_PER_MINUTE, requests=1, tokens=0) for _ in range(11)]
        assert all(decision.allowed for decision in decisions[:10])
        assert [d.requests.remaining for d in decisions[:10] if d.requests] == list(range(9, -1, -1))
        refused = decisions[10]
        assert not refused.allowed
        assert 0 < refused.retry_after_s <= 6.0  # one request comes back every 60/10 s
        headers = refused.headers()
        assert headers["Retry-After"] in ("6", "5")
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-remaining-requests"] == "0"

    async def test_a_refusal_costs_nothing(self, limiter: RateLimiter) -> None:
        limits = Limits(requests_per_minute=2, tokens_per_minute=None)
        for _ in range(2):
            assert (await limiter.acquire("acme", limits, requests=1, tokens=0)).allowed
        for _ in range(5):
            refused = await limiter.acquire("acme", limits, requests=1, tokens=0)
            assert not refused.allowed and refused.retry_after_s <= 30.0

    async def test_tenants_have_separate_budgets(self, limiter: RateLimiter) -> None:
        one = Limits(requests_per_minute=1, tokens_per_minute=None)
        assert (await limiter.acquire("acme", one, requests=1, tokens=0)).allowed
        assert not (await limiter.acquire("acme", one, requests=1, tokens=0)).allowed
        assert (await limiter.acquire("globex", one, requests=1, tokens=0)).allowed

    async def test_no_limits_means_no_refusal(self, limiter: RateLimiter) -> None:
        unlimited = Limits(None, None)
        assert all([(await limiter.acquire("acme", unlimited, 1, 10**6)).allowed for _ in range(50)])


class TestTokenLimit:
    """Tokens are charged after the fact; a tenant in debt is refused until it is paid off."""

    async def test_overspending_tokens_refuses_the_next_request(self, limiter: RateLimiter) -> None:
        limits = Limits(requests_per_minute=100, tokens_per_minute=1000)
        assert (await limiter.acquire("acme", limits, requests=1, tokens=0)).allowed
        charged = await limiter.acquire("acme", limits, requests=0, tokens=1500, force=True)
        assert charged.allowed and charged.tokens is not None and charged.tokens.remaining == 0
        refused = await limiter.acquire("acme", limits, requests=1, tokens=0)
        assert not refused.allowed
        assert 29.0 < refused.retry_after_s <= 30.0  # 500 tokens of debt at 1000 per minute
        assert refused.headers()["x-ratelimit-limit-tokens"] == "1000"

    async def test_a_request_refused_by_tokens_does_not_spend_a_request(self, limiter: RateLimiter) -> None:
        limits = Limits(requests_per_minute=2, tokens_per_minute=100)
        await limiter.acquire("acme", limits, requests=0, tokens=200, force=True)
        assert not (await limiter.acquire("acme", limits, requests=1, tokens=0)).allowed
        state = (await limiter.acquire("acme", limits, requests=0, tokens=0)).requests
        assert state is not None and state.remaining == 2


class TestSharedLimits:
    """Every gateway replica draws on one budget; Redis down degrades to per-replica limits or 503."""

    async def test_two_replicas_share_one_budget(self, redis_server: RedisServer) -> None:
        prefix = f"test:{uuid.uuid4().hex}"
        first, second = RedisConnection(redis_server.url, 500), RedisConnection(redis_server.url, 500)
        replicas = [RedisRateLimiter(first, key_prefix=prefix), RedisRateLimiter(second, key_prefix=prefix)]
        decisions = [await replicas[i % 2].acquire("acme", TEN_PER_MINUTE, 1, 0) for i in range(12)]
        assert [d.allowed for d in decisions] == [True] * 10 + [False] * 2
        await first.close()
        await second.close()

    async def test_redis_down_fails_open_to_local_limits(self) -> None:
        connection = RedisConnection("redis://127.0.0.1:1/0", timeout_ms=50)  # nothing listens on port 1
        limiter = RedisRateLimiter(connection, fail_open=True)
        decisions = [await limiter.acquire("acme", TEN_PER_MINUTE, 1, 0) for _ in range(11)]
        assert [d.allowed for d in decisions] == [True] * 10 + [False]
        assert not connection.healthy

    async def test_redis_down_fails_closed_when_configured(self) -> None:
        limiter = RedisRateLimiter(RedisConnection("redis://127.0.0.1:1/0", timeout_ms=50), fail_open=False)
        with pytest.raises(ServiceUnavailableError):
            await limiter.acquire("acme", TEN_PER_MINUTE, 1, 0)
