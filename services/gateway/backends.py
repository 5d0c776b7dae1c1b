"""How the gateway reaches the vision encoder and the LLM decoder.

`Backends` is the seam between the gateway's logic and Ray: in production the Ray implementation passes
each encoder response, unresolved, straight into the decoder call, so image embeddings flow from the
encoder's object store to the decoder without passing through the gateway process. Tests can use
`InProcessBackends` to run the gateway against the same encoder and engine without Ray.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.engine import RequestOutput
from services.llm_decoder.engine.decode_request import DecodeRequest
from services.llm_decoder.traced_generation import generate_traced
from services.vision_encoder.encode_request import EncodeRequest
from services.vision_encoder.encoder import VisionEncoder


class Backends(Protocol):
    def encode(self, request: EncodeRequest) -> Any:
        """Start encoding; returns a reference to the embedding that only `generate` needs to resolve."""

    def generate(self, request: DecodeRequest, image_refs: list[Any]) -> AsyncIterator[RequestOutput]:
        """Stream the decoder's outputs; closing the iterator aborts the request."""


class InProcessBackends:
    def __init__(self, encoder: VisionEncoder, engine: AsyncLLMEngine) -> None:
        self._encoder = encoder
        self._engine = engine

    def encode(self, request: EncodeRequest) -> asyncio.Task[ImageEmbedding]:
        return asyncio.get_running_loop().create_task(self._encoder.encode(request))

    async def generate(self, request: DecodeRequest, image_refs: list[Any]) -> AsyncIterator[RequestOutput]:
        async for output in generate_traced(self._engine, request, image_refs):
            yield output
