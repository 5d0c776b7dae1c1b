"""The gateway's backends over Ray Serve deployment handles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

from ray.exceptions import RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from services.common.raw_image import RawImage
from services.gateway.errors import ServiceUnavailableError
from services.llm_decoder.decode_request import DecodeRequest
from services.llm_decoder.engine import RequestOutput


class RayBackends:
    def __init__(self, encoder: DeploymentHandle, decoder: DeploymentHandle) -> None:
        self._encoder = encoder
        self._decoder = decoder.options(stream=True)

    def encode(self, image: RawImage) -> DeploymentResponse:
        return cast(DeploymentResponse, self._encoder.encode.remote(image))

    async def generate(self, request: DecodeRequest, image_refs: list[Any]) -> AsyncIterator[RequestOutput]:
        # The encoder responses are passed unresolved: Serve hands the decoder replica the embeddings.
        stream = cast(DeploymentResponseGenerator, self._decoder.generate.remote(request, *image_refs))
        finished = False
        try:
            async for output in stream:
                finished = output.finished
                yield output
        except RayTaskError as error:
            # Re-raise what the replica raised (QueueFullError, PromptError, ...), not Ray's wrapper.
            raise error.cause from None
        except (BackPressureError, DeploymentUnavailableError) as error:
            raise ServiceUnavailableError(str(error)) from error
        finally:
            if not finished:
                stream.cancel()
