"""Deterministic, roughly natural test images (no downloads): smooth gradients, band-limited noise textures,
soft shapes and sensor-like grain, mixed differently per seed."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter


def natural_image(seed: int, width: int, height: int) -> npt.NDArray[np.uint8]:
    """[height, width, 3] uint8 RGB whose content, palette and texture differ by seed."""
    rng = np.random.default_rng(seed)
    canvas = _gradient(rng, width, height) * rng.uniform(0.4, 1.0)
    canvas += _texture(rng, width, height) * rng.uniform(10, 70)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
    _draw_shapes(rng, image)
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 2.0))))
    pixels = np.asarray(image).astype(np.float32) + rng.normal(0, rng.uniform(0.5, 4.0), (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def png_bytes(rgb: npt.NDArray[np.uint8], **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=1, **params)
    return buffer.getvalue()


def encoded(rgb: npt.NDArray[np.uint8], format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format=format, **params)
    return buffer.getvalue()


def _gradient(rng: np.random.Generator, width: int, height: int) -> npt.NDArray[np.float32]:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ramp = (x * np.cos(angle) + y * np.sin(angle)) / max(width, height)
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return (start + (end - start) * ramp[..., None]).astype(np.float32)


def _texture(rng: np.random.Generator, width: int, height: int) -> npt.NDArray[np.float32]:
    cells = int(rng.integers(4, 48))
    coarse = rng.normal(0, 1, (cells, cells, 3)).astype(np.float32)
    coarse_image = Image.fromarray(((coarse - coarse.min()) / np.ptp(coarse) * 255).astype(np.uint8), "RGB")
    smooth = np.asarray(coarse_image.resize((width, height), Image.Resampling.BICUBIC)).astype(np.float32)
    return (smooth - 128) / 128


def _draw_shapes(rng: np.random.Generator, image: Image.Image) -> None:
    draw = ImageDraw.Draw(image)
    width, height = image.size
    for _ in range(int(rng.integers(0, 12))):
        box = sorted(rng.integers(0, width, 2).tolist()), sorted(rng.integers(0, height, 2).tolist())
        corners = (box[0][0], box[1][0], box[0][1], box[1][1])
        colour = tuple(int(value) for value in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse(corners, fill=colour)
        else:
            draw.rectangle(corners, fill=colour)
