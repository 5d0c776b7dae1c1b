"""A cap on request bodies, enforced as the bytes arrive: before any JSON parsing or base64 decoding,
whether or not the client sent an honest Content-Length."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.api.errors import APIError, BodyTooLargeError, error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:  # refused without reading a byte
            error = BodyTooLargeError(self._max_bytes)
            await error_response(APIError(413, str(error), code="request_too_large"))(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max_bytes:
                    raise BodyTooLargeError(self._max_bytes)
            return message

        await self._app(scope, counting_receive, send)
