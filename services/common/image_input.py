"""Decoding and normalising one client image before the processor sees it.

The processor resizes to its own patch grid; we first bound the pixel count (aspect ratio kept) so that
the number of image tokens, and so the prefill cost, has a ceiling the operator chooses.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Formats we decode; everything else is refused before Pillow tries a plugin on it.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
# The processors refuse more extreme shapes (their smart_resize raises), so we say so first.
MAX_ASPECT_RATIO = 200


class ImageInputError(ValueError):
    """A client image that cannot be used; the message names the problem and `param` the field."""

    def __init__(self, message: str, param: str = "image") -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class ImageLimits:
    """Bounds on one image. `max_pixels` is the normalised size handed to the model (aspect ratio kept);
    `max_decode_pixels` is the largest header-declared size we agree to decode at all."""

    max_pixels: int = 512 * 512
    max_decode_pixels: int = 50_000_000

    def __post_init__(self) -> None:
        if not (self.max_pixels > 0 and self.max_decode_pixels >= self.max_pixels):
            raise ValueError(f"invalid image limits: {self}")


def load_image(data: bytes, limits: ImageLimits | None = None, declared_format: str | None = None) -> Image.Image:
    """Bytes of an encoded image -> an RGB image of at most `limits.max_pixels` pixels, EXIF-upright.
    `declared_format` (a Pillow format name, from the client's media type) must match the bytes.

    Only pixels leave this function: metadata, comments and anything appended to the file are dropped."""
    limits = limits or ImageLimits()
    if not data:
        raise ImageInputError("image is empty (0 bytes)")
    image = _open(data, limits)
    if declared_format is not None and image.format != declared_format:
        raise ImageInputError(f"the media type says {declared_format} but the data is {image.format}")
    if image.format == "PNG":
        _refuse_trailing_data(data)
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageInputError(f"image has no pixels ({width}x{height})")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageInputError(f"image aspect ratio {width}x{height} exceeds {MAX_ASPECT_RATIO}:1")
    if image.format == "JPEG":
        # Decode at a reduced scale straight from the DCT coefficients: far faster than decode + resize.
        image.draft("RGB", _fit(width, height, limits.max_pixels))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"image data is truncated or corrupt ({error})") from error
    upright = ImageOps.exif_transpose(image)
    return _resize_to_fit(_to_rgb(upright), limits.max_pixels)


def content_hash(image: Image.Image) -> str:
    """A digest of the normalised pixels: equal for the same picture sent as PNG or as re-encoded bytes
    that decode identically, and the key of the embedding and response caches."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageInputError(f"image declares too many pixels ({error})") from error
    except UnidentifiedImageError as error:
        allowed = ", ".join(ALLOWED_FORMATS)
        raise ImageInputError(f"not a supported image file (allowed formats: {allowed})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageInputError(f"image header is corrupt ({error})") from error
    width, height = image.size
    if width * height > limits.max_decode_pixels:
        raise ImageInputError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {limits.max_decode_pixels}"
        )
    return image


def _refuse_trailing_data(png: bytes) -> None:
    """A PNG must end with its IEND chunk: bytes after it are how PNG/zip (and other) polyglots hide."""
    offset = 8  # the signature
    while offset + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[offset : offset + 8])
        offset += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            if offset < len(png):
                raise ImageInputError(
                    f"image has {len(png) - offset} bytes after the end of the PNG "
                    "(files that are also another format are refused)"
                )
            return


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grey: scale to 8 bits instead of clipping everything above 255 to white.
        scale = 1 / 256 if image.mode.startswith("I;16") else 1 / 65536
        image = image.point(lambda value: value * scale).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def _fit(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, math.floor(width * scale)), max(1, math.floor(height * scale))


def _resize_to_fit(image: Image.Image, max_pixels: int) -> Image.Image:
    size = _fit(image.width, image.height, max_pixels)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
