"""Around every API request: the `x-request-id` and `traceparent` response headers, the request count and
duration metrics, and its JSON log line. The request's root span is FastAPI's own HTTP server span (it
continues a client's W3C `traceparent`); this adds the request id and tenant to it."""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.trace import format_trace_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.telemetry.request_record import RequestRecord, recording
from services.telemetry.metrics import metrics
from services.telemetry.request_log import log_request
from services.telemetry.tracing import current_carrier

API_ROUTES = ("/v1/chat/completions", "/v1/vqa", "/v1/models")
REQUEST_ID_HEADER = "x-request-id"


class RequestTelemetry:
    """`proxy_sets_request_id`: behind Ray Serve's HTTP proxy, which puts an `x-request-id` (the client's, or
    its own) on every request and its response; the gateway then uses that id and adds no second header."""

    def __init__(self, app: ASGIApp, proxy_sets_request_id: bool = False) -> None:
        self.app = app
        self.proxy_sets_request_id = proxy_sets_request_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        route = scope["path"] if scope["path"] in API_ROUTES else "other"
        record = RequestRecord(route=route)
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER.encode() and 0 < len(value) <= 200:
                record.request_id = value.decode("latin-1")
        span = trace.get_current_span()
        span_context = span.get_span_context()
        if span_context.is_valid:
            record.trace_id = format_trace_id(span_context.trace_id)
        added = [] if self.proxy_sets_request_id else [(REQUEST_ID_HEADER.encode(), record.request_id.encode())]
        added += [(name.encode(), value.encode()) for name, value in current_carrier().items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":  # FastAPI ends its span with the last body message
                record.status = message["status"]
                span.set_attributes(
                    {
                        "flashvqa.request_id": record.request_id,
                        "flashvqa.tenant": record.tenant or "",
                        "flashvqa.model": record.model or "",
                    }
                )
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        try:
            with recording(record):
                await self.app(scope, receive, send_with_headers)
        finally:
            status = record.status = record.status or 500  # nothing sent: the server error handler answers
            duration = time.perf_counter() - record.started
            metrics().requests.inc(route=route, status=str(status), model=record.model or "")
            metrics().request_duration.observe(duration, route=route)
            log_request(record.log_fields(duration))
