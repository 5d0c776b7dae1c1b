"""A vectorised decoder of `invisible-watermark`'s `dwtDct` scheme, the watermark that Stable Diffusion's and
FLUX's reference code embed in their outputs, and matching against those generators' fixed payloads.

The scheme, as `imwatermark.maxDct.EmbedMaxDct` decodes it with its default scales (0, 36, 36): OpenCV's
BGR->YUV conversion; only the U plane (its loop stops before V, and Y's scale is 0); a one-level Haar DWT of
the picture cropped to a multiple of 4; the approximation band cut into 4x4 blocks in row-major order,
block k voting for bit k mod L; a block votes 1 when |its largest coefficient other than [0, 0]| mod 36 > 18;
a bit is 1 when its mean vote x 255 > 127. Despite the name no DCT is taken when decoding.

OpenCV converts 8-bit and float pixels differently (U is offset by 128 or by 0.5), and the generators differ
in what they hand the encoder, so each image is decoded under both conventions. Each reproduces the library's
arithmetic exactly: the bits equal `WatermarkDecoder("bits", L).decode(bgr, "dwtDct")` with `bgr` as uint8
or as float32, both conventions together in under a tenth of its time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import numpy as np
import numpy.typing as npt

SCALE = 36
MIN_PIXELS = 256 * 256  # the library refuses smaller images, so generators never mark them
_HAAR = 0.7071067811865476  # pywt's haar filter tap


class PixelConvention(StrEnum):
    UINT8 = "uint8"  # SD 1.x / 2.x txt2img scripts hand the encoder 8-bit BGR
    FLOAT = "float"  # diffusers' SDXL watermarker, Stability's generative-models, FLUX: float32 in 0..255


@dataclass(frozen=True)
class WatermarkPayload:
    name: str
    bits: tuple[bool, ...]

    @classmethod
    def from_int(cls, name: str, message: int) -> WatermarkPayload:
        # As the reference code does (`bin(x)[2:]`): leading zero bits are dropped, so FLUX's is 46 bits long.
        return cls(name, tuple(bit == "1" for bit in bin(message)[2:]))

    @classmethod
    def from_bytes(cls, name: str, message: bytes) -> WatermarkPayload:
        return cls(name, tuple(bool(bit) for bit in np.unpackbits(np.frombuffer(message, np.uint8))))


# Fixed, public payloads (no key). The 48-bit ones are written as binary literals in Stability's
# generative-models / diffusers' StableDiffusionXLWatermarker and in BFL's FLUX code; SD 1.x and 2.x embed bytes.
STABLE_DIFFUSION_XL = WatermarkPayload.from_int("stable-diffusion-xl", 0xB3EC907BB19E)
FLUX = WatermarkPayload.from_int("flux", 0x2AFE879CF52E)
STABLE_DIFFUSION_2 = WatermarkPayload.from_bytes("stable-diffusion-2", b"SDV2")
STABLE_DIFFUSION_1 = WatermarkPayload.from_bytes("stable-diffusion-1", b"StableDiffusionV1")
KNOWN_PAYLOADS = (STABLE_DIFFUSION_XL, FLUX, STABLE_DIFFUSION_2, STABLE_DIFFUSION_1)


@dataclass(frozen=True)
class WatermarkMatch:
    payload: str
    matched_bits: int
    total_bits: int
    convention: PixelConvention

    @property
    def fraction(self) -> float:
        return self.matched_bits / self.total_bits


def rgb_planes(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """[H, W, 3] uint8 RGB -> [3, H', W'] float32, cropped to multiples of 4 as the library crops."""
    height, width = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    return np.moveaxis(rgb[:height, :width], 2, 0).astype(np.float32)  # contiguous planes are faster to walk


def u_plane(planes: npt.NDArray[np.float32], convention: PixelConvention) -> npt.NDArray[np.floating]:
    """[3, H, W] RGB planes -> [H, W] U plane exactly as OpenCV's COLOR_BGR2YUV computes it for that type."""
    red, green, blue = planes
    if convention is PixelConvention.UINT8:
        # Fixed point: coefficients x 2^14, round half up. Every intermediate is an integer below 2^24,
        # so float32 holds it exactly.
        luma = red * 4899 + green * 9617 + blue * 1868 + 8192
        np.floor(luma * (1 / 16384), out=luma)
        return np.floor(((blue - luma) * 8061 + ((128 << 14) + 8192)) * (1 / 16384))
    # float32 with fused multiply-adds: y = fma(b, .114, fma(g, .587, r * .299)), u = fma(b - y, .492, .5).
    # float64 holds each product exactly, so rounding its sum once to float32 is the fused result (checked
    # against OpenCV on all 2^24 colours).
    luma = (green.astype(np.float64) * float(np.float32(0.587)) + red * np.float32(0.299)).astype(np.float32)
    luma = (blue.astype(np.float64) * float(np.float32(0.114)) + luma).astype(np.float32)
    chroma = (blue - luma).astype(np.float64)
    return (chroma * float(np.float32(0.492)) + 0.5).astype(np.float32)


def block_votes(planes: npt.NDArray[np.float32], convention: PixelConvention) -> npt.NDArray[np.bool_]:
    """[3, H, W] RGB planes (`rgb_planes`) -> one vote per 4x4 block of the U plane's Haar approximation,
    in the library's order."""
    u = u_plane(planes, convention)
    # pywt keeps float32 input in float32 and turns integers into float64.
    u = u.astype(np.float64) if convention is PixelConvention.UINT8 else u
    # Haar approximation: rows first, then columns, each tap multiplied before the add, as pywt.dwt2 does.
    tap = u.dtype.type(_HAAR)
    u *= tap
    rows = u[0::2] + u[1::2]
    rows *= tap
    band = np.abs(rows[:, 0::2] + rows[:, 1::2])  # [H/2, W/2]
    band = band[: band.shape[0] // 4 * 4, : band.shape[1] // 4 * 4]
    band[0::4, 0::4] = -1  # the [0, 0] coefficient of each block never votes
    across = np.maximum(np.maximum(band[:, 0::4], band[:, 1::4]), np.maximum(band[:, 2::4], band[:, 3::4]))
    block_max = np.maximum(np.maximum(across[0::4], across[1::4]), np.maximum(across[2::4], across[3::4]))
    return np.remainder(block_max.reshape(-1), tap.dtype.type(SCALE)) > SCALE / 2


def slot_means(votes: npt.NDArray[np.bool_], length: int) -> npt.NDArray[np.float64] | None:
    """Block votes -> the mean vote of each of the `length` bits, or None when some bit gets no block."""
    if votes.size < length:
        return None
    slot = np.arange(votes.size) % length
    return np.asarray(np.bincount(slot, weights=votes, minlength=length) / np.bincount(slot, minlength=length))


def library_bits(means: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    return np.asarray(means * 255 > 127)


def adaptive_bits(means: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Bits split at the mean of the slot means instead of at one half.

    The embedder lowers a block's largest coefficient to write a 0, and in smooth chroma another coefficient
    then becomes the largest and votes 1: marked images often decode to all ones under the library's rule
    (the reason Stability's detect.py already calls 34 of 48 bits "likely"). Their 0-slots still vote 1 less
    often than their 1-slots, which this split recovers; on an unmarked image the slots differ by noise only.
    """
    return np.asarray(means > means.mean())


@cache
def required_bits(length: int, false_match_rate: float) -> int:
    """The fewest agreeing bits out of `length` that fair coin flips reach with probability <= the rate:
    43 of 48, 42 of 46, 31 of 32, 101 of 136 at 1e-8."""
    tail = 0
    for matched in range(length, -1, -1):
        tail += math.comb(length, matched)
        if tail / 2**length > false_match_rate:
            return matched + 1
    return 0


def detect_watermark(
    rgb: npt.NDArray[np.uint8],
    payloads: tuple[WatermarkPayload, ...] = KNOWN_PAYLOADS,
    false_match_rate: float = 1e-8,
) -> WatermarkMatch | None:
    """[H, W, 3] uint8 RGB at the generator's resolution -> the best-agreeing payload among those whose bits
    agree in at least `required_bits` positions under either convention and either bit rule, or None (also
    for images below the 256x256-pixel area the library marks). With 4 payloads, 2 conventions and 2 rules,
    an image of coin-flip bits is matched with probability <= 16 x `false_match_rate`."""
    if not (rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8):
        raise ValueError(f"expected 8-bit RGB pixels [H, W, 3], got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] * rgb.shape[1] < MIN_PIXELS:
        return None
    planes = rgb_planes(rgb)
    best: WatermarkMatch | None = None
    for convention in PixelConvention:
        votes = block_votes(planes, convention)
        for payload in payloads:
            means = slot_means(votes, len(payload.bits))
            if means is None:
                continue
            expected = np.array(payload.bits)
            matched = max(int(np.count_nonzero(rule(means) == expected)) for rule in (library_bits, adaptive_bits))
            match = WatermarkMatch(payload.name, matched, len(expected), convention)
            enough = matched >= required_bits(len(expected), false_match_rate)
            if enough and (best is None or match.fraction > best.fraction):
                best = match
    return best
