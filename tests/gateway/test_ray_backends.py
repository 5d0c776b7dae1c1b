"""How the gateway calls the deployments and reads what Ray raises: every handle call is a Serve request of its
own, the encodes of a request that ends early are cancelled, a full Serve queue is our 503 whichever way Ray
wraps it, and a replica's own error (QueueFullError, PromptError, ...) reaches the client unwrapped."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from ray.exceptions import RayTaskError
from ray.serve.context import _get_serve_request_context, _set_request_context
from ray.serve.exceptions import BackPressureError

from services.gateway.api.errors import ServiceUnavailableError
from services.gateway.ray_backends import RayBackends, as_own_serve_request
from services.messages import DecodeRequest, EncodeRequest, QueueFullError, RawImage, SamplingParams


class RaisingHandle:
    """Stands in for a DeploymentHandle whose `generate` stream fails with `error`; its `encode` calls are
    recorded, with the Serve request context each was made in."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.encodes: list[PendingEncode] = []

    def options(self, **_: Any) -> RaisingHandle:
        return self

    @property
    def generate(self) -> RaisingHandle:
        return self

    @property
    def encode(self) -> EncodeMethod:
        return EncodeMethod(self.encodes)

    def remote(self, *_: Any) -> FailingStream:
        return FailingStream(self.error)


class PendingEncode:
    """A DeploymentResponse that is never assigned a replica."""

    def __init__(self) -> None:
        context = _get_serve_request_context()
        self.request_id, self.internal_request_id = context.request_id, context._internal_request_id
        self.cancelled = False

    async def _to_object_ref(self) -> Any:
        return object()

    def cancel(self) -> None:
        self.cancelled = True


class EncodeMethod:
    def __init__(self, encodes: list[PendingEncode]) -> None:
        self.encodes = encodes

    def remote(self, *_: Any) -> PendingEncode:
        self.encodes.append(PendingEncode())
        return self.encodes[-1]


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


async def first_error(backends: RayBackends, images: int = 0) -> BaseException:
    encodes = [EncodeRequest(RawImage(f"h{n}", 1, 1, b"\0\0\0")) for n in range(images)]
    with pytest.raises(Exception) as caught:  # noqa: PT011 - what is raised is the subject of each test
        async for _ in backends.generate(DecodeRequest("r", [], SamplingParams()), encodes):
            pass
    return caught.value


BACKPRESSURE = BackPressureError(num_queued_requests=3, max_queued_requests=2)


@pytest.mark.parametrize(
    "error",
    [
        BACKPRESSURE,
        RayTaskError("generate", "traceback", BACKPRESSURE).as_instanceof_cause(),
        RayTaskError("generate", "traceback", RayTaskError("encode", "traceback", BACKPRESSURE)),
    ],
    ids=["bare", "as_instance_of_cause", "wrapped_twice"],
)
async def test_full_serve_queue_is_ours_503(error: BaseException) -> None:
    assert isinstance(await first_error(backends_raising(error)), ServiceUnavailableError)


async def test_replica_error_is_unwrapped() -> None:
    error = RayTaskError("generate", "traceback", QueueFullError("the decoder is at capacity")).as_instanceof_cause()
    assert isinstance(await first_error(backends_raising(error)), QueueFullError)


async def test_each_encode_is_a_serve_request_of_its_own_and_cancelled_when_the_stream_fails() -> None:
    handle = RaisingHandle(BACKPRESSURE)

    async def in_an_http_request() -> BaseException:
        _set_request_context(request_id="user-request", _internal_request_id="proxy-request")
        return await first_error(RayBackends(handle, handle), images=4)  # type: ignore[arg-type]

    await contextvars.copy_context().run(asyncio.ensure_future, in_an_http_request())
    assert [encode.request_id for encode in handle.encodes] == ["user-request"] * 4
    internal_ids = {encode.internal_request_id for encode in handle.encodes}
    assert len(internal_ids) == 4 and "proxy-request" not in internal_ids
    assert all(encode.cancelled for encode in handle.encodes)


class RefusedEncode(PendingEncode):
    """A DeploymentResponse Serve refused to queue: awaiting it raises the refusal, and so does cancelling it
    (Serve's `cancel` fetches the assignment's result first)."""

    async def _to_object_ref(self) -> Any:
        raise BACKPRESSURE

    def cancel(self) -> None:
        raise BACKPRESSURE


class RefusingEncoderHandle(RaisingHandle):
    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.refused = 0

    @property
    def encode(self) -> RefusingEncoderHandle:
        return self

    def remote(self, *args: Any) -> Any:  # type: ignore[override]
        if args and isinstance(args[0], EncodeRequest):
            self.refused += 1
            return RefusedEncode()
        return super().remote(*args)


async def test_an_encode_serve_refused_is_ours_503_even_when_its_cancel_raises_again() -> None:
    """Once a burst filled the encoder's Serve queue, the refused encode's cancel re-raised Serve's
    BackPressureError over our 503, and Serve answered it in plain text."""
    handle = RefusingEncoderHandle(BACKPRESSURE)
    backends = RayBackends(handle, handle)  # type: ignore[arg-type]
    assert isinstance(await first_error(backends, images=2), ServiceUnavailableError)
    assert handle.refused == 2


def test_an_own_serve_request_leaves_the_callers_context_as_it_was() -> None:
    def call() -> None:
        _set_request_context(request_id="user-request", _internal_request_id="proxy-request")
        seen = as_own_serve_request(lambda: _get_serve_request_context()._internal_request_id)
        assert seen not in ("", "proxy-request")
        assert _get_serve_request_context()._internal_request_id == "proxy-request"

    contextvars.copy_context().run(call)
