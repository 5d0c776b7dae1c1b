"""Telemetry set-up for a process that runs a Serve replica."""

from __future__ import annotations

from services.telemetry.metrics import export_to_ray
from services.telemetry.tracing import configure_tracing


def set_up_replica_telemetry(service_name: str) -> None:
    """Spans exported as the `OTEL_*` variables say; metrics through Ray's metrics agent."""
    configure_tracing(service_name)
    export_to_ray()


def replica_name() -> str:
    """This replica's id, to tell the gauges of replicas on one node apart ("local" outside Serve)."""
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except RayServeException:
        return "local"
