"""Who may send a request now: authentication, then the tenant's rate limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.gateway.admission.auth import Authenticator, Tenant
from services.gateway.admission.rate_limit import Limits, RateLimiter
from services.gateway.api.api_error import APIError
from services.gateway.options import RateLimitOptions
from services.gateway.telemetry.request_record import stage
from services.telemetry.metrics import metrics


@dataclass(frozen=True)
class Admitted:
    tenant: Tenant
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* for the response


class Admission:
    def __init__(self, authenticator: Authenticator, limiter: RateLimiter, options: RateLimitOptions) -> None:
        self._authenticator = authenticator
        self._limiter = limiter
        self._options = options

    def authenticate(self, authorization: str | None) -> Tenant:
        return self._authenticator.authenticate(authorization)

    def authenticate_admin(self, authorization: str | None) -> Tenant:
        """The caller, if it may administer the server (load adapters): any caller when no API keys are
        configured, else only a tenant whose key entry says `admin: true`. Raises 401 or 403."""
        tenant = self._authenticator.authenticate(authorization)
        if self._authenticator.has_keys and not tenant.admin:
            raise APIError(
                403,
                f"tenant {tenant.name!r} may not administer this server: that takes an admin key",
                type="permission_error",
                code="insufficient_permissions",
            )
        return tenant

    async def admit(self, authorization: str | None) -> Admitted:
        """Raises 401 for a bad key and 429 (with Retry-After) when the tenant is over a limit."""
        with stage("auth"):
            tenant = self._authenticator.authenticate(authorization)
        with stage("rate_limit"):
            decision = await self._limiter.acquire(tenant.name, self.limits(tenant), requests=1, tokens=0)
        if not decision.allowed:
            exhausted = decision.tokens is not None and decision.tokens.remaining <= 0
            metrics().rate_limit_refusals.inc(limit="tokens" if exhausted else "requests")
            raise APIError(
                429,
                f"rate limit reached for tenant {tenant.name!r}; retry after {decision.retry_after_s:.1f} s",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers=decision.headers(),
            )
        return Admitted(tenant, decision.headers())

    async def charge_tokens(self, tenant: Tenant, tokens: int) -> None:
        """Tokens are known only once the images are decoded or the answer is done: charged after the fact."""
        if tokens > 0:
            await self._limiter.acquire(tenant.name, self.limits(tenant), requests=0, tokens=tokens, force=True)

    def limits(self, tenant: Tenant) -> Limits:
        return Limits(
            tenant.requests_per_minute or self._options.requests_per_minute,
            tenant.tokens_per_minute or self._options.tokens_per_minute,
        )

    def estimate_prompt_tokens(self, text: str, image_sizes: list[tuple[int, int]]) -> int:
        """Before tokenization: about 4 bytes of UTF-8 per text token, one token per merged patch."""
        image_tokens = sum(
            math.ceil(width * height / self._options.pixels_per_image_token) for width, height in image_sizes
        )
        return math.ceil(len(text.encode()) / 4) + image_tokens
