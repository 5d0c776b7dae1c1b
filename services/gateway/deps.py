"""What routes receive through FastAPI's `Depends`: the replica's `Gateway`, the admitted caller, the
request's deadline. Tests replace any of them with `app.dependency_overrides`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Header, Request

from services.gateway.admission.admission import Admitted
from services.gateway.gateway import Gateway
from services.gateway.telemetry.request_record import current_record


def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def admitted_caller(
    gateway: Annotated[Gateway, Depends(get_gateway)], authorization: Annotated[str | None, Header()] = None
) -> Admitted:
    admitted = await gateway.admission.admit(authorization)
    record = current_record()
    if record is not None:
        record.tenant = admitted.tenant.name
    return admitted


async def request_deadline(
    gateway: Annotated[Gateway, Depends(get_gateway)],
    x_request_timeout: Annotated[
        float | None, Header(gt=0, allow_inf_nan=False, description="seconds; the server's default otherwise")
    ] = None,
) -> float:
    """The request's deadline in event loop time: the client's timeout, capped by the server's maximum."""
    options = gateway.options
    timeout = min(x_request_timeout or options.request_timeout_s, options.max_request_timeout_s)
    return asyncio.get_running_loop().time() + timeout


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
AdmittedDep = Annotated[Admitted, Depends(admitted_caller)]
DeadlineDep = Annotated[float, Depends(request_deadline)]
