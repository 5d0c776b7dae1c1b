"""The numpy DWT-DCT decoder: the library's exact bits, detection of marked images after a PNG round trip,
and no false positives on unmarked ones.

Marked images are made with `imwatermark.WatermarkEncoder` itself (see `marking.py`).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from imwatermark import WatermarkDecoder
from PIL import Image

from services.provenance.dwt_dct_watermark import (
    FLUX,
    KNOWN_PAYLOADS,
    STABLE_DIFFUSION_1,
    STABLE_DIFFUSION_2,
    STABLE_DIFFUSION_XL,
    PixelConvention,
    WatermarkPayload,
    block_votes,
    detect_watermark,
    library_bits,
    rgb_planes,
    slot_means,
    u_plane,
)
from tests.provenance.marking import Rgb, embed
from tests.provenance.synthetic import natural_image, png_bytes

pytestmark = pytest.mark.slow

SIZES = [(256, 256), (512, 512), (768, 512), (512, 768), (1024, 1024), (640, 384), (1024, 576), (336, 1000)]


def png_round_trip(rgb: Rgb) -> Rgb:
    return np.asarray(Image.open(io.BytesIO(png_bytes(rgb))).convert("RGB"))


def _library(rgb: Rgb, length: int, convention: PixelConvention) -> npt.NDArray[np.bool_]:
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    pixels = bgr.astype(np.float32) if convention is PixelConvention.FLOAT else bgr
    return np.asarray(WatermarkDecoder("bits", length).decode(pixels, "dwtDct"), dtype=bool)


class TestPayloads:
    """The payloads are the reference code's: `bin()` of the SDXL and FLUX literals, UTF-8 bits of SD 1/2."""

    def test_bits(self) -> None:
        assert "".join("1" if bit else "0" for bit in STABLE_DIFFUSION_XL.bits) == (
            "101100111110110010010000011110111011000110011110"
        )
        assert len(FLUX.bits) == 46  # 0b0010... loses its two leading zeros to bin()
        assert (len(STABLE_DIFFUSION_2.bits), len(STABLE_DIFFUSION_1.bits)) == (32, 136)


class TestSameBitsAsTheLibrary:
    """For every image, payload length and pixel convention, the bits equal imwatermark's decoder's."""

    @pytest.mark.parametrize("convention", list(PixelConvention))
    def test_u_plane_matches_opencv_on_every_colour(self, convention: PixelConvention) -> None:
        codes = np.arange(1 << 24, dtype=np.uint32)
        for chunk in np.split(codes, 4):
            rgb = np.stack([chunk >> 16, (chunk >> 8) & 255, chunk & 255], -1).astype(np.uint8).reshape(1024, 4096, 3)
            bgr = rgb[..., ::-1].astype(np.float32 if convention is PixelConvention.FLOAT else np.uint8)
            expected = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2YUV)[..., 1]
            assert np.array_equal(u_plane(rgb_planes(rgb), convention), expected)

    @pytest.mark.parametrize("seed", range(8))
    def test_bits(self, seed: int) -> None:
        width, height = SIZES[seed]
        clean = natural_image(100 + seed, width, height)
        marked = png_round_trip(embed(clean, STABLE_DIFFUSION_XL, PixelConvention(list(PixelConvention)[seed % 2])))
        for rgb in (clean, marked):
            planes = rgb_planes(rgb)
            for convention in PixelConvention:
                votes = block_votes(planes, convention)
                for length in (48, 32, 136):
                    means = slot_means(votes, length)
                    assert means is not None
                    assert np.array_equal(library_bits(means), _library(rgb, length, convention))


def _detections(images: list[Rgb]) -> list[str | None]:
    return [match.payload if (match := detect_watermark(rgb)) else None for rgb in images]


class TestDetection:
    """At least 95% of marked natural images are found, with the right payload, after a PNG round trip.
    (The misses are images with many saturated pixels, where the float encoder's output gets clipped.)"""

    @pytest.mark.parametrize("convention", list(PixelConvention))
    def test_sdxl(self, convention: PixelConvention) -> None:
        images = [
            png_round_trip(embed(natural_image(seed, *SIZES[seed % len(SIZES)]), STABLE_DIFFUSION_XL, convention))
            for seed in range(30)
        ]
        found = _detections(images)
        assert found.count(STABLE_DIFFUSION_XL.name) >= 0.95 * len(images), found

    @pytest.mark.parametrize(
        ("payload", "convention", "at_least"),
        # SD 2's payload has only 32 bits, so the coin-flip bound asks for 31 of them: about one miss in ten.
        [
            (FLUX, PixelConvention.FLOAT, 4),
            (STABLE_DIFFUSION_2, PixelConvention.UINT8, 3),
            (STABLE_DIFFUSION_1, PixelConvention.UINT8, 4),
        ],
    )
    def test_other_payloads(self, payload: WatermarkPayload, convention: PixelConvention, at_least: int) -> None:
        images = [png_round_trip(embed(natural_image(50 + seed, 512, 512), payload, convention)) for seed in range(4)]
        found = _detections(images)
        assert found.count(payload.name) >= at_least and set(found) <= {payload.name, None}, found

    def test_below_the_library_minimum(self) -> None:
        assert detect_watermark(natural_image(0, 255, 256)) is None


def _structured(kind: str, seed: int) -> Rgb:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512]
    patterns: dict[str, Callable[[], npt.NDArray[np.integer]]] = {
        "flat": lambda: np.zeros((512, 512), np.int64) + int(rng.integers(0, 256)),
        "noise": lambda: rng.integers(0, 256, (512, 512)),
        "stripes": lambda: ((x // int(rng.integers(1, 40))) % 2) * 255,
        "checks": lambda: (((x // (s := int(rng.integers(1, 24)))) + (y // s)) % 2) * 255,
        "ramp": lambda: (x + y) * 255 // 1022,
    }
    channels = [patterns[kind]() if rng.random() < 0.7 else np.full((512, 512), rng.integers(0, 256)) for _ in "rgb"]
    return np.stack(channels, -1).astype(np.uint8)


class TestNoFalsePositives:
    """No unmarked image is detected: natural ones of every size and the adversarially regular ones."""

    def test_natural(self) -> None:
        images = [natural_image(1000 + seed, *SIZES[seed % len(SIZES)]) for seed in range(40)]
        assert _detections(images) == [None] * len(images)

    @pytest.mark.parametrize("kind", ["flat", "noise", "stripes", "checks", "ramp"])
    def test_structured(self, kind: str) -> None:
        images = [_structured(kind, seed) for seed in range(6)]
        assert _detections(images) == [None] * len(images)

    def test_margin(self) -> None:
        """The best agreement of any unmarked image with any payload stays far below 43 of 48."""
        images = [natural_image(2000 + seed, 512, 512) for seed in range(12)]
        # A false-match rate of one half accepts about half the bits: every image reports its best payload.
        best = max(match.fraction for rgb in images if (match := detect_watermark(rgb, KNOWN_PAYLOADS, 0.5)))
        assert best < 0.8
