"""`Backends` without Ray: the gateway calls the vision encoder and the engine in its own process (the
in-process app, and tests of the HTTP surface)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.traced_generation import generate_traced
from services.messages import AdapterRef, DecodeRequest, EncodeRequest, RequestOutput
from services.vision_encoder.encoder import VisionEncoder


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

    async def check_adapter(self, ref: AdapterRef) -> None:
        await self._engine.check_adapter(ref)
