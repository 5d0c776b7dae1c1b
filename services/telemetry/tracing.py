"""One OpenTelemetry trace per request, across the gateway, encoder and decoder processes.

Set up only by the standard `OTEL_*` variables: with an OTLP endpoint (or `OTEL_TRACES_EXPORTER`) each
process exports its spans; without one the API's no-op tracer stays in place and a span costs a function
call. The trace context crosses Ray deployment boundaries inside our own request messages (`TraceCarrier`),
in W3C `traceparent` form, so encoder and decoder spans are children of the gateway's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

TraceCarrier = dict[str, str]  # "traceparent" (and "tracestate") of the span that made the request

tracer = trace.get_tracer("flashvqa")  # a proxy: it follows whichever provider is installed later
_propagator = TraceContextTextMapPropagator()


def configure_tracing(service_name: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Install an exporting tracer provider when the environment asks for one; True if it did."""
    exporter = exporter_from_environment(environ)
    if exporter is None or not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False  # nothing to export to, or this process is set up already (tests, a second app)
    # Each deployment names itself; OTEL_RESOURCE_ATTRIBUTES (the chart's service.namespace, k8s.*) adds to it.
    resource = Resource.create({SERVICE_NAME: service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def exporter_from_environment(environ: Mapping[str, str]) -> SpanExporter | None:
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    kind = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if kind == "console":
        return ConsoleSpanExporter()
    endpoint_set = any(
        environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if kind == "otlp" or (kind == "" and endpoint_set):
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol not in (None, "http/protobuf"):
            logger.error("OTLP protocol %r is not supported (only http/protobuf): spans are not exported", protocol)
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout, compression: from the OTEL_* variables
    return None


def current_carrier() -> TraceCarrier:
    """The current span's context, to send along with a request to another deployment."""
    carrier: TraceCarrier = {}
    _propagator.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, str] | None) -> otel_context.Context:
    return _propagator.extract(carrier or {})


@contextmanager
def continued(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Make the sender's span the parent of the spans started inside."""
    token = otel_context.attach(context_from(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)


def record_span(
    name: str, start_ns: int, end_ns: int, parent: Span | None = None, **attributes: str | int | float | bool
) -> None:
    """A span for a stretch of time measured elsewhere (a queue wait, a batched forward), as a child of
    `parent` or else of the current span."""
    parent = parent or trace.get_current_span()
    if not parent.is_recording():
        return
    span = tracer.start_span(
        name, context=trace.set_span_in_context(parent), start_time=start_ns, attributes=attributes
    )
    span.end(end_time=end_ns)
