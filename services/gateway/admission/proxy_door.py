"""The door in front of the gateway: middlewares that Ray Serve's HTTP proxy runs on every request.

Serve's proxy costs several milliseconds of CPU per request before the gateway replica sees it (the HTTP
parse, the routing, the ASGI messages sent to the replica), so a gateway that refuses a burst still answers
it at the proxy's pace: on the 2-core host, of 300 requests at once, the refused waited up to 0.94 s (P99)
for a refusal that took the gateway under a millisecond; refused by the proxy's own in-flight budget, before
that cost, up to 0.17 s (`bench.burst_benchmark`). And the errors
Serve itself answers (its queues full, a request that timed out, a replica that is gone) are plain text;
here they become the OpenAI error form.

Serve reads the middlewares from the callable named by `RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`, in the
environment of the proxy's process; `proxy_environment` gives the variables (`flashvqa serve` sets them
before Ray starts; the Helm chart sets them on the Ray pods). The gateway replicas keep their own budget:
there may be several proxies, and a gateway reached without this one must not be unbounded.
"""

from __future__ import annotations

import json
import os

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.admission.in_flight_limit import InFlightLimit
from services.gateway.api.api_error import RETRY_AFTER_SECONDS, ErrorDetail, ErrorResponse

PROXY_CALLBACK = "services.gateway.admission.proxy_door:proxy_middlewares"
MAX_IN_FLIGHT_VARIABLE = "FLASHVQA_PROXY_MAX_IN_FLIGHT"
RETRY_AFTER_MS_VARIABLE = "FLASHVQA_OVERLOAD_RETRY_AFTER_MS"


def proxy_environment(max_in_flight: int, retry_after_ms: int) -> dict[str, str]:
    return {
        "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": PROXY_CALLBACK,
        MAX_IN_FLIGHT_VARIABLE: str(max_in_flight),
        RETRY_AFTER_MS_VARIABLE: str(retry_after_ms),
    }


def proxy_middlewares() -> list[Middleware]:
    """Called once by each Serve proxy at its start. The first in the list is the innermost."""
    middlewares = [Middleware(ServeErrorsInOpenAIForm)]
    max_in_flight = os.environ.get(MAX_IN_FLIGHT_VARIABLE)
    if max_in_flight:
        middlewares.append(
            Middleware(
                InFlightLimit,
                max_in_flight=int(max_in_flight),
                retry_after_ms=int(os.environ.get(RETRY_AFTER_MS_VARIABLE, "1000")),
            )
        )
    return middlewares


class ServeErrorsInOpenAIForm:
    """Rewrites an error that Serve answered in plain text into `{"error": {...}}`, its status kept."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        rewriting: Message | None = None  # the start of a plain-text error, held until its body has come
        text = b""

        async def send_in_openai_form(message: Message) -> None:
            nonlocal rewriting, text
            if message["type"] == "http.response.start" and _is_plain_text_error(message):
                rewriting = message
                return
            if rewriting is None or message["type"] != "http.response.body":
                await send(message)
                return
            text += message.get("body", b"")
            if message.get("more_body", False):
                return
            for part in _openai_error(rewriting, text):
                await send(part)
            rewriting = None

        await self._app(scope, receive, send_in_openai_form)


def _is_plain_text_error(start: Message) -> bool:
    content_type = dict(start.get("headers", [])).get(b"content-type", b"")
    return start["status"] >= 400 and content_type.startswith(b"text/plain")


def _openai_error(start: Message, text: bytes) -> list[Message]:
    status: int = start["status"]
    overloaded = status in (429, 503)
    detail = ErrorDetail(
        message=text.decode("utf-8", "replace").strip() or "the server could not answer",
        type="rate_limit_error"
        if status == 429
        else "server_error"
        if status >= 500 or status == 408
        else "invalid_request_error",
        param=None,
        code="overloaded" if overloaded else "timeout" if status == 408 else None,
    )
    body = json.dumps(ErrorResponse(error=detail).model_dump()).encode()
    headers = [
        (name, value)
        for name, value in start.get("headers", [])
        if name.lower() not in (b"content-type", b"content-length")
    ]
    if overloaded and not any(name.lower() == b"retry-after" for name, _ in headers):
        headers.append((b"retry-after", str(RETRY_AFTER_SECONDS).encode()))
    headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]
