"""How the gateway reaches the vision encoder and the LLM decoder.

`Backends` is the seam between the gateway's logic and Ray. One call answers one request: it starts the
request's image encodes, hands them unresolved to the decoder and streams the decoder's outputs, and when the
stream ends early (an error, the deadline, a client that went away) it cancels whatever encodes are still
queued or running, so that no work outlives its caller. In production the Ray implementation passes each
encoder response straight into the decoder call, so image embeddings flow from the encoder's object store to
the decoder without passing through the gateway process. Tests can use `InProcessBackends` to run the
gateway against the same encoder and engine without Ray.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.engine import RequestOutput
from services.llm_decoder.engine.decode_request import DecodeRequest
from services.llm_decoder.traced_generation import generate_traced
from services.vision_encoder.encode_request import EncodeRequest
from services.vision_encoder.encoder import VisionEncoder


class Backends(Protocol):
    def generate(self, request: DecodeRequest, images: list[EncodeRequest]) -> AsyncIterator[RequestOutput]:
        """Encode `images` and stream the decoder's outputs; closing the iterator aborts the request and its
        encodes."""


class InProcessBackends:
    def __init__(self, encoder: VisionEncoder, engine: AsyncLLMEngine) -> None:
        self._encoder = encoder
        self._engine = engine

    async def generate(self, request: DecodeRequest, images: list[EncodeRequest]) -> AsyncIterator[RequestOutput]:
        loop = asyncio.get_running_loop()
        encodes: list[asyncio.Task[ImageEmbedding]] = [
            loop.create_task(self._encoder.encode(image)) for image in images
        ]
        try:
            async for output in generate_traced(self._engine, request, encodes):
                yield output
        finally:
            for encode in encodes:
                if encode.done():
                    if not encode.cancelled():
                        encode.exception()  # the request already failed: its other images' errors go quietly
                else:
                    encode.cancel()
