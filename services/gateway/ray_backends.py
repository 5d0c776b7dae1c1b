"""The gateway's backends over Ray Serve deployment handles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from services.gateway.errors import ServiceUnavailableError
from services.llm_decoder.engine import RequestOutput
from services.llm_decoder.engine.decode_request import DecodeRequest
from services.vision_encoder.encode_request import EncodeRequest

# A full Serve queue, or a replica that died mid-request (Ray restarts it).
_UNAVAILABLE = (BackPressureError, DeploymentUnavailableError, RayActorError)


class RayBackends:
    def __init__(self, encoder: DeploymentHandle, decoder: DeploymentHandle) -> None:
        # By reference on both ends, whatever the transport default: Serve then hands the decoder the
        # encoder's object reference. By value (the gRPC transport's default) the gateway would resolve
        # each embedding and forward its bytes itself.
        self._encoder = encoder.options(_by_reference=True)
        self._decoder = decoder.options(stream=True, _by_reference=True)

    def encode(self, request: EncodeRequest) -> DeploymentResponse:
        return cast(DeploymentResponse, self._encoder.encode.remote(request))

    async def generate(self, request: DecodeRequest, image_refs: list[Any]) -> AsyncIterator[RequestOutput]:
        stream: DeploymentResponseGenerator | None = None
        finished = False
        try:
            # Object refs of encodes that are assigned but not necessarily done: the decoder request sets
            # off at once and the decoder awaits the embeddings itself, fetching them from the encoder.
            object_refs = [await response._to_object_ref() for response in image_refs]
            stream = cast(DeploymentResponseGenerator, self._decoder.generate.remote(request, object_refs))
            async for output in stream:
                finished = output.finished
                yield output
        except (RayTaskError, *_UNAVAILABLE) as error:
            # A full Serve queue may arrive wrapped as the decoder's task error (the decoder's own call to the
            # encoder was refused): unwrapped, it is still a 503 of ours, never Serve's plain-text answer.
            cause = _cause(error) if isinstance(error, RayTaskError) else error
            if isinstance(cause, _UNAVAILABLE):
                raise ServiceUnavailableError("the encoder or decoder pool is full or restarting") from cause
            raise cause from None
        finally:
            if stream is not None and not finished:
                stream.cancel()


def _cause(error: RayTaskError) -> BaseException:
    """What the replica raised (QueueFullError, PromptError, ...), without Ray's wrappers: an encoder's
    failure reaches us wrapped twice, through the decoder that awaited it."""
    cause: BaseException = error
    while isinstance(cause, RayTaskError) and cause.cause is not None:
        cause = cause.cause
    return cause
