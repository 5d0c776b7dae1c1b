"""One in-memory span exporter for this test process: OpenTelemetry allows one tracer provider per process,
so it is installed once and each test reads the spans of its own trace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.http_server import serve_in_thread

_exporter = InMemorySpanExporter()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(provider)
    return _exporter


def spans_of_trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.context is not None and f"{span.context.trace_id:032x}" == trace_id
    ]


@pytest.fixture(scope="module")
def app(tiny_model_dirs: dict[str, Path], span_exporter: InMemorySpanExporter) -> FastAPI:
    options = GatewayOptions(model_name="tiny", auth=AuthOptions(allow_anonymous=True))
    return build_in_process_app(tiny_model_dirs["glm4v"], EngineConfig(max_num_seqs=4, max_model_len=1024), options)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client
