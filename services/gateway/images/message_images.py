"""The images of a chat request taken out of its messages: OpenAI messages become chat-template messages
(each image part a bare `{"type": "image"}`), and every image is fetched or decoded, in parallel, off the
event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from services.common.image_input import ImageInputError, ImageLimits, load_image
from services.gateway.api.api_error import APIError
from services.gateway.api.protocol import ChatMessage, ImagePart
from services.gateway.images.image_url import EncodedImage, decode_image_url
from services.gateway.images.provenance_gate import Upload
from services.gateway.images.remote_image import RemoteImageFetcher
from services.gateway.images.remote_image_options import RemoteImageOptions
from services.gateway.telemetry.request_record import stage
from services.messages import RawImage
from services.telemetry.metrics import metrics


@dataclass(frozen=True)
class TemplatedMessages:
    messages: list[dict[str, Any]]  # for the chat template
    images: list[RawImage]  # decoded, in the order the messages hold them
    uploads: list[Upload]  # the same images as the client sent them (for the provenance check)


class MessageImages:
    def __init__(
        self, remote_images: RemoteImageOptions, limits: ImageLimits, max_image_bytes: int, max_images: int
    ) -> None:
        self._fetcher = RemoteImageFetcher(remote_images)
        self._limits = limits
        self._max_image_bytes = max_image_bytes
        self._max_images = max_images

    async def template(self, messages: list[ChatMessage]) -> TemplatedMessages:
        converted: list[dict[str, Any]] = []
        pending: list[asyncio.Future[tuple[RawImage, Upload]]] = []
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
                    if len(pending) == self._max_images:
                        raise APIError(400, f"at most {self._max_images} images per request", param=param)
                    pending.append(asyncio.ensure_future(self._image(part.image_url.url, param)))
                    parts.append({"type": "image"})
                converted.append({"role": message.role, "content": parts})
            decoded = await asyncio.gather(*pending)
        finally:  # after a refusal, drop the other images' work and their errors quietly
            for future in pending:
                if future.done() and not future.cancelled():
                    future.exception()
                future.cancel()
        return TemplatedMessages(converted, [image for image, _ in decoded], [upload for _, upload in decoded])

    async def _image(self, url: str, param: str) -> tuple[RawImage, Upload]:
        if url.startswith(("http://", "https://")):
            with stage("image.fetch"):
                encoded = EncodedImage(await self._fetcher.fetch(url, param), declared_format=None)
            with stage("image.decode"):
                return await asyncio.to_thread(self._decode, encoded, param)
        # Base64 and image decoding are CPU work (milliseconds per photo): off the event loop, in parallel.
        with stage("image.decode"):
            return await asyncio.to_thread(
                lambda: self._decode(decode_image_url(url, param, self._max_image_bytes), param)
            )

    def _decode(self, encoded: EncodedImage, param: str) -> tuple[RawImage, Upload]:
        try:
            image = load_image(encoded.data, self._limits, encoded.declared_format)
        except ImageInputError as error:
            raise ImageInputError(str(error), param) from None
        metrics().image_pixels.observe(image.width * image.height)
        return RawImage.from_image(image), Upload.of(encoded.data, param)
