"""Shedding at the door: a bounded number of generation requests in flight per gateway replica.

Checked before anything else is done for a request (its body is not even read), so a burst far past capacity
is refused in milliseconds, in the OpenAI error form, instead of after image decoding, the safety model and
provenance have spent the CPU that the admitted requests need. The budget is the downstream pools' capacity
shared among the gateway replicas (`app_builder.in_flight_budget`); a refused client is told when to retry
in `Retry-After` (seconds, rounded up) and `retry-after-ms` (which the official OpenAI clients honour).
"""

from __future__ import annotations

import math

from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.api.api_error import APIError, error_response
from services.telemetry.metrics import metrics

GENERATION_ROUTES = frozenset({"/v1/chat/completions", "/v1/vqa"})


class InFlightLimit:
    def __init__(self, app: ASGIApp, max_in_flight: int, retry_after_ms: int) -> None:
        self._app = app
        self._max_in_flight = max_in_flight
        self._retry_after_ms = retry_after_ms
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in GENERATION_ROUTES:
            await self._app(scope, receive, send)
            return
        if self.in_flight >= self._max_in_flight:
            metrics().overload_refusals.inc()
            await error_response(self._refusal())(scope, receive, send)
            return
        self.in_flight += 1  # one event loop: no lock needed
        try:
            await self._app(scope, receive, send)  # returns once the response, streamed or not, is sent
        finally:
            self.in_flight -= 1

    def _refusal(self) -> APIError:
        return APIError(
            503,
            f"the server is at capacity ({self._max_in_flight} requests in progress); retry in "
            f"{self._retry_after_ms} ms",
            type="server_error",
            code="overloaded",
            headers={
                "Retry-After": str(math.ceil(self._retry_after_ms / 1000)),
                "retry-after-ms": str(self._retry_after_ms),
            },
        )
