"""Every image a client can send becomes an upright RGB image within bounds, or a clear ImageInputError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from services.common.image_input import ImageInputError, ImageLimits, content_hash, load_image
from tests.conftest import noise_image


def encode(image: Image.Image, format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    return buffer.getvalue()


class TestRefusesWhatIsNotAnImage:
    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"", "empty"),
            (b"%PDF-1.7 not an image at all", "not a supported image"),
            (b"\x89PNG\r\n\x1a\n" + b"\x00" * 10, "corrupt|not a supported"),
            (encode(noise_image(64, 64), "TIFF"), "not a supported image"),
        ],
        ids=["empty", "pdf", "broken_png_header", "tiff_not_allowed"],
    )
    def test_clear_error(self, data: bytes, message: str) -> None:
        with pytest.raises(ImageInputError, match=message) as raised:
            load_image(data)
        assert raised.value.param == "image"

    @pytest.mark.parametrize("format", ["PNG", "JPEG"])
    def test_truncated_file(self, format: str) -> None:
        data = encode(noise_image(256, 256), format)
        with pytest.raises(ImageInputError, match="truncated or corrupt"):
            load_image(data[: len(data) // 2])

    def test_decompression_bomb_is_refused_from_the_header(self) -> None:
        # A valid PNG declaring 100k x 100k pixels, with a few bytes of data behind it.
        def chunk(kind: bytes, body: bytes) -> bytes:
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

        header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
        png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        png += chunk(b"IEND", b"")
        with pytest.raises(ImageInputError, match="pixels"):
            load_image(png)

    def test_more_pixels_than_the_operator_allows(self) -> None:
        limits = ImageLimits(max_pixels=64 * 64, max_decode_pixels=500 * 500)
        with pytest.raises(ImageInputError, match="over the limit"):
            load_image(encode(Image.new("RGB", (600, 600)), "PNG"), limits)

    def test_extreme_aspect_ratio(self) -> None:
        with pytest.raises(ImageInputError, match="aspect ratio"):
            load_image(encode(Image.new("RGB", (1000, 2)), "PNG"))


class TestNormalises:
    def test_downscales_to_max_pixels_keeping_aspect_ratio(self) -> None:
        image = load_image(encode(noise_image(1600, 900), "PNG"), ImageLimits(max_pixels=512 * 512))
        assert image.width * image.height <= 512 * 512
        assert image.width / image.height == pytest.approx(1600 / 900, rel=0.01)

    def test_jpeg_draft_decoding_still_lands_within_bounds(self) -> None:
        image = load_image(encode(noise_image(2400, 1800), "JPEG"), ImageLimits(max_pixels=256 * 256))
        assert image.mode == "RGB"
        assert image.width * image.height <= 256 * 256
        assert image.width * image.height > 0.8 * 256 * 256

    def test_small_images_are_not_upscaled(self) -> None:
        assert load_image(encode(noise_image(1, 1), "PNG")).size == (1, 1)

    def test_exif_orientation_is_applied(self) -> None:
        wide = Image.new("RGB", (40, 20), (255, 0, 0))
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90° clockwise to display
        image = load_image(encode(wide, "JPEG", exif=exif.tobytes()))
        assert image.size == (20, 40)

    @pytest.mark.parametrize(
        ("source", "expected"),
        [
            (Image.new("CMYK", (8, 8), (0, 255, 255, 0)), (255, 0, 0)),
            (Image.new("L", (8, 8), 128), (128, 128, 128)),
            (Image.new("RGBA", (8, 8), (0, 0, 0, 0)), (255, 255, 255)),
            (Image.new("LA", (8, 8), (0, 255)), (0, 0, 0)),
            (Image.new("I;16", (8, 8), 65535), (255, 255, 255)),
        ],
        ids=["cmyk", "grey", "transparent_rgba", "opaque_la", "grey_16bit"],
    )
    def test_modes_become_rgb(self, source: Image.Image, expected: tuple[int, int, int]) -> None:
        format = "JPEG" if source.mode == "CMYK" else "PNG"
        image = load_image(encode(source, format))
        assert image.mode == "RGB"
        assert np.allclose(np.asarray(image)[4, 4], expected, atol=3)

    def test_palette_with_transparency_composites_on_white(self) -> None:
        palette = Image.new("P", (8, 8), 0)
        palette.putpalette([0, 0, 0] * 256)
        image = load_image(encode(palette, "PNG", transparency=0))
        assert tuple(np.asarray(image)[0, 0]) == (255, 255, 255)

    def test_gif_uses_the_first_frame(self) -> None:
        frames = [Image.new("RGB", (16, 16), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
        image = load_image(buffer.getvalue())
        assert np.asarray(image)[0, 0, 0] > 200


class TestContentHash:
    def test_same_pixels_same_hash_whatever_the_container(self) -> None:
        picture = noise_image(32, 32)
        assert content_hash(load_image(encode(picture, "PNG"))) == content_hash(load_image(encode(picture, "BMP")))

    def test_other_pixels_other_hash(self) -> None:
        assert content_hash(noise_image(32, 32, seed=1)) != content_hash(noise_image(32, 32, seed=2))
