"""Images given as OpenAI `image_url` parts that are base64 data URLs (http(s) URLs: `remote_image.py`)."""

from __future__ import annotations

import base64
import binascii
import re
from typing import NamedTuple

from services.common.image_input import ImageInputError

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.A)


# Media types -> the Pillow format the bytes must then have. No media type (or octet-stream): any allowed one.
MEDIA_TYPE_FORMATS = {
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/pjpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/x-ms-bmp": "BMP",
}
UNSPECIFIED_MEDIA_TYPES = (None, "application/octet-stream")


class EncodedImage(NamedTuple):
    data: bytes
    declared_format: str | None  # what the media type promises, checked against the bytes when decoding


def decode_image_url(url: str, param: str, max_bytes: int) -> EncodedImage:
    """The image bytes of a data URL. `max_bytes` bounds the decoded size and is checked on the
    encoded length first, so an oversized upload is refused before any decoding work."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ImageInputError("image_url must be a data URL (data:image/...;base64,...)", param)
    if not match.group("b64"):
        raise ImageInputError("image data URLs must be base64-encoded", param)
    media_type = match.group("mime") and match.group("mime").lower()
    if media_type not in UNSPECIFIED_MEDIA_TYPES and media_type not in MEDIA_TYPE_FORMATS:
        raise ImageInputError(
            f"media type {media_type} is not a supported image type ({', '.join(sorted(MEDIA_TYPE_FORMATS))})", param
        )
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > max_bytes:
        raise ImageInputError(f"image is larger than {max_bytes} bytes", param)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageInputError(f"image data URL is not valid base64 ({error})", param) from error
    return EncodedImage(data, MEDIA_TYPE_FORMATS.get(media_type or ""))
