"""`GET /metrics`: this process's metrics in the Prometheus text format; in a Serve replica, the flashvqa
metrics of this Ray node (every replica on it) from Ray's metrics agent."""

from __future__ import annotations

import httpx
import prometheus_client

from services.telemetry.metric_backends import RayBackend
from services.telemetry.metrics import metrics

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


async def metrics_text() -> bytes:
    if not isinstance(metrics().backend, RayBackend):
        return prometheus_client.generate_latest(prometheus_client.REGISTRY)
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(_ray_node_metrics_url())
    response.raise_for_status()
    return "".join(line + "\n" for line in response.text.splitlines() if "flashvqa_" in line).encode()


def _ray_node_metrics_url() -> str:
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    node = next(node for node in ray.nodes() if node["NodeID"] == node_id)
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
