"""Images given as OpenAI `image_url` parts: base64 data URLs (remote URLs come with the input-hardening work)."""

from __future__ import annotations

import base64
import binascii
import re

from services.common.image_input import ImageInputError

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.A)


def decode_image_url(url: str, param: str, max_bytes: int) -> bytes:
    """The image bytes of a data URL. `max_bytes` bounds the decoded size and is checked on the
    encoded length first, so an oversized upload is refused before any decoding work."""
    match = _DATA_URL.match(url)
    if match is None:
        if url.startswith(("http://", "https://")):
            raise ImageInputError("image URLs are not enabled on this server; send the image as a data URL", param)
        raise ImageInputError("image_url must be a data URL (data:image/...;base64,...)", param)
    if not match.group("b64"):
        raise ImageInputError("image data URLs must be base64-encoded", param)
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > max_bytes:
        raise ImageInputError(f"image is larger than {max_bytes} bytes", param)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageInputError(f"image data URL is not valid base64 ({error})", param) from error
