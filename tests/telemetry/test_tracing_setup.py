"""Tracing is set up by the standard OTEL_* variables alone, and nothing is exported unless they ask."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from services.telemetry.tracing import exporter_from_environment

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


@pytest.mark.parametrize(
    ("environ", "exporter"),
    [
        ({}, None),
        (ENDPOINT, OTLPSpanExporter),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, OTLPSpanExporter),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, OTLPSpanExporter),
        ({"OTEL_TRACES_EXPORTER": "console"}, ConsoleSpanExporter),
        ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, None),
        ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, None),
        ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, None),  # no gRPC exporter ships: say so, export nothing
    ],
    ids=["nothing", "endpoint", "traces_endpoint", "http", "console", "exporter_none", "sdk_disabled", "grpc"],
)
def testexporter_from_environment_the_environment(environ: dict[str, str], exporter: type | None) -> None:
    made = exporter_from_environment(environ)
    assert (made is None) if exporter is None else isinstance(made, exporter)
