"""The gateway's backends over Ray Serve deployment handles."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import TypeVar, cast

from ray.exceptions import RayActorError, RayTaskError
from ray.serve._private.utils import generate_request_id
from ray.serve.context import _set_request_context
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from services.gateway.api.errors import ServiceUnavailableError
from services.messages import AdapterRef, DecodeRequest, EncodeRequest, RequestOutput

# A full Serve queue, or a replica that died mid-request (Ray restarts it).
_UNAVAILABLE = (BackPressureError, DeploymentUnavailableError, RayActorError)

T = TypeVar("T")


class RayBackends:
    def __init__(self, encoder: DeploymentHandle, decoder: DeploymentHandle) -> None:
        # By reference on both ends, whatever the transport default: Serve then hands the decoder the
        # encoder's object reference. By value (the gRPC transport's default) the gateway would resolve
        # each embedding and forward its bytes itself.
        self._encoder = encoder.options(_by_reference=True)
        self._decoder = decoder.options(stream=True, _by_reference=True)
        self._decoder_calls = decoder.options(stream=False)

    async def generate(self, request: DecodeRequest, images: list[EncodeRequest]) -> AsyncIterator[RequestOutput]:
        encodes = [as_own_serve_request(partial(self._encoder.encode.remote, image)) for image in images]
        stream: DeploymentResponseGenerator | None = None
        finished = False
        try:
            with _errors_of_replicas():
                # Object refs of encodes that are assigned but not necessarily done: the decoder request sets
                # off at once and the decoder awaits the embeddings itself, fetching them from the encoder.
                object_refs = [await cast(DeploymentResponse, response)._to_object_ref() for response in encodes]
                stream = cast(
                    DeploymentResponseGenerator,
                    as_own_serve_request(partial(self._decoder.generate.remote, request, object_refs)),
                )
                async for output in stream:
                    finished = output.finished
                    yield output
        finally:
            if not finished:
                # Encodes still waiting for a replica leave the router's queue; running ones are dropped. A
                # call Serve refused (its queue full) re-raises that refusal when cancelled: it has nothing to
                # cancel, and must not replace the 503 this request is ending with.
                for response in [*encodes, *([stream] if stream is not None else [])]:
                    with contextlib.suppress(*_UNAVAILABLE):
                        response.cancel()

    async def check_adapter(self, ref: AdapterRef) -> None:
        with _errors_of_replicas():
            await as_own_serve_request(partial(self._decoder_calls.check_adapter.remote, ref))


@contextlib.contextmanager
def _errors_of_replicas() -> Iterator[None]:
    """Raise what a replica raised, without Ray's wrappers. A full Serve queue may arrive wrapped as the
    decoder's task error (the decoder's own call to the encoder was refused): unwrapped, it is still a 503 of
    ours, never Serve's plain-text answer."""
    try:
        yield
    except (RayTaskError, *_UNAVAILABLE) as error:
        cause = _cause(error) if isinstance(error, RayTaskError) else error
        if isinstance(cause, _UNAVAILABLE):
            raise ServiceUnavailableError("the encoder or decoder pool is full or restarting") from cause
        raise cause from None


def as_own_serve_request(call: Callable[[], T]) -> T:
    """Make a handle call as a Serve request of its own.

    A handle call inherits the internal request id of the HTTP request being served, and Serve's router
    indexes the calls waiting for a replica by that id: of two calls of one request waiting at the same time
    (a request's several images), only the first is indexed, and the second can never be given the replica
    its routing picks: it spins in the router until the client gives up. A fresh id per call keeps every
    call routable; the user-facing request id (logs, traces) is kept."""

    def call_with_own_id() -> T:
        _set_request_context(_internal_request_id=generate_request_id())
        return call()

    return contextvars.copy_context().run(call_with_own_id)


def _cause(error: RayTaskError) -> BaseException:
    """What the replica raised (QueueFullError, PromptError, ...), without Ray's wrappers: an encoder's
    failure reaches us wrapped twice, through the decoder that awaited it."""
    cause: BaseException = error
    while isinstance(cause, RayTaskError) and cause.cause is not None:
        cause = cause.cause
    return cause
