"""The gateway as the Ray Serve ingress deployment (CPU)."""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from services.gateway.app import create_app
from services.gateway.gateway import Gateway
from services.gateway.lora.adapter_registry import ServeAdapterStore
from services.gateway.options import GatewayOptions
from services.gateway.ray_backends import RayBackends
from services.telemetry.replica import set_up_replica_telemetry
from services.telemetry.request_log import log_requests_to_stderr


@serve.deployment(name="gateway")
@serve.ingress()
class GatewayDeployment:
    def __init__(
        self,
        encoder: DeploymentHandle,
        decoder: DeploymentHandle,
        adapter_registry: DeploymentHandle | None,
        options: GatewayOptions,
    ) -> None:
        """`adapter_registry`: where the LoRA adapters loaded at run time are kept; None when the decoders load
        none (the configured adapters are then all there is)."""
        set_up_replica_telemetry("flashvqa-gateway")
        log_requests_to_stderr()  # the replica's stderr: Ray's worker log, and the driver's console locally
        store = None if adapter_registry is None else ServeAdapterStore(adapter_registry)
        self._gateway = Gateway.create(RayBackends(encoder, decoder), options, adapter_store=store)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._gateway, behind_serve_proxy=True)
