"""The gateway's work for one chat request: validate, decode images, encode them, stream the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from services.common.image_input import ImageInputError, load_image
from services.common.raw_image import RawImage
from services.gateway.backends import Backends
from services.gateway.errors import APIError
from services.gateway.image_url import decode_image_url
from services.gateway.options import GatewayOptions
from services.gateway.protocol import ChatCompletionRequest, ChatMessage, ImagePart
from services.llm_decoder.engine import RequestOutput
from services.llm_decoder.engine.decode_request import DecodeRequest


class ChatService:
    def __init__(self, backends: Backends, options: GatewayOptions) -> None:
        self._backends = backends
        self.options = options

    async def outputs(self, request: ChatCompletionRequest, request_id: str) -> AsyncIterator[RequestOutput]:
        """The decoder's outputs for this request. Client errors raise before the first output."""
        if request.model not in (None, self.options.model_name):
            raise APIError(404, f"model {request.model!r} does not exist; this server serves "
                                f"{self.options.model_name!r}", param="model", code="model_not_found")
        messages, images = await self._template_messages(request.messages)
        refs = [self._backends.encode(image) for image in images]
        decode_request = DecodeRequest(request_id, messages, request.to_sampling_params(), request.enable_thinking)
        async for output in self._backends.generate(decode_request, refs):
            yield output

    async def _template_messages(self, messages: list[ChatMessage]) -> tuple[list[dict[str, Any]], list[RawImage]]:
        """OpenAI messages -> chat-template messages, with the images taken out (in order) and decoded."""
        converted: list[dict[str, Any]] = []
        pending: list[asyncio.Future[RawImage]] = []
        try:
            for index, message in enumerate(messages):
                if message.content is None or isinstance(message.content, str):
                    converted.append({"role": message.role, "content": message.content or ""})
                    continue
                parts: list[dict[str, Any]] = []
                for part_index, part in enumerate(message.content):
                    if not isinstance(part, ImagePart):
                        parts.append({"type": "text", "text": part.text})
                        continue
                    param = f"messages[{index}].content[{part_index}].image_url"
                    if message.role != "user":
                        raise APIError(400, "images are accepted in user messages only", param=param)
                    if len(pending) == self.options.max_images_per_request:
                        raise APIError(400, f"at most {self.options.max_images_per_request} images per request",
                                       param=param)
                    # Decoding is CPU work (milliseconds per photo): off the event loop, images in parallel.
                    pending.append(asyncio.ensure_future(asyncio.to_thread(self._decode, part.image_url.url, param)))
                    parts.append({"type": "image"})
                converted.append({"role": message.role, "content": parts})
            images = list(await asyncio.gather(*pending))
        finally:  # after a refusal, drop the other images' work and their errors quietly
            for future in pending:
                if future.done() and not future.cancelled():
                    future.exception()
                future.cancel()
        return converted, images

    def _decode(self, url: str, param: str) -> RawImage:
        data = decode_image_url(url, param, self.options.max_image_bytes)
        try:
            image = load_image(data, self.options.image_limits)
        except ImageInputError as error:
            raise ImageInputError(str(error), param) from None
        return RawImage.from_image(image)
