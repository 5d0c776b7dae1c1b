"""How the gateway reads what Ray raises from the deployments: a full Serve queue is our 503 whichever way Ray
wraps it, and a replica's own error (QueueFullError, PromptError, ...) reaches the client unwrapped."""

from __future__ import annotations

from typing import Any

import pytest
from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError

from services.gateway.errors import ServiceUnavailableError
from services.gateway.ray_backends import RayBackends
from services.llm_decoder.engine import QueueFullError, SamplingParams
from services.llm_decoder.engine.decode_request import DecodeRequest


class RaisingHandle:
    """Stands in for a DeploymentHandle whose `generate` stream fails with `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def options(self, **_: Any) -> RaisingHandle:
        return self

    @property
    def generate(self) -> RaisingHandle:
        return self

    def remote(self, *_: Any) -> FailingStream:
        return FailingStream(self.error)


class FailingStream:
    """A DeploymentResponseGenerator whose first item is an error."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __aiter__(self) -> FailingStream:
        return self

    async def __anext__(self) -> Any:
        raise self.error

    def cancel(self) -> None:
        pass


def backends_raising(error: BaseException) -> RayBackends:
    return RayBackends(RaisingHandle(error), RaisingHandle(error))  # type: ignore[arg-type]


async def first_error(backends: RayBackends) -> BaseException:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - what is raised is the subject of each test
        async for _ in backends.generate(DecodeRequest("r", [], SamplingParams()), []):
            pass
    return caught.value


BACKPRESSURE = BackPressureError(num_queued_requests=3, max_queued_requests=2)


@pytest.mark.parametrize("error", [
    BACKPRESSURE,
    RayTaskError("generate", "traceback", BACKPRESSURE).as_instanceof_cause(),
    RayTaskError("generate", "traceback", RayTaskError("encode", "traceback", BACKPRESSURE)),
], ids=["bare", "as_instance_of_cause", "wrapped_twice"])
async def test_full_serve_queue_is_ours_503(error: BaseException) -> None:
    assert isinstance(await first_error(backends_raising(error)), ServiceUnavailableError)


async def test_replica_error_is_unwrapped() -> None:
    error = RayTaskError("generate", "traceback", QueueFullError("the decoder is at capacity")).as_instanceof_cause()
    assert isinstance(await first_error(backends_raising(error)), QueueFullError)
