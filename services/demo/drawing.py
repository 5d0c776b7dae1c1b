"""Render a scene spec to an RGB picture: a pure function of the spec."""

from __future__ import annotations

import math
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from services.demo.scene import (
    CATEGORIES,
    COLOURS,
    GRID,
    IMAGE_SIZE,
    MERCHANTS,
    SHAPES,
    ReceiptScene,
    Scene,
    ShapesScene,
    TextScene,
)

BACKGROUND = (205, 205, 205)
PAPER = (250, 250, 245)
INK = (20, 20, 20)
_SHAPE_RADIUS = 22  # a shape nearly fills its 56-pixel cell: about 2 x 2 image tokens


def render(scene: Scene) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    if isinstance(scene, ShapesScene):
        _draw_shapes(draw, scene)
    elif isinstance(scene, TextScene):
        _draw_text(draw, scene)
    else:
        _draw_receipt(draw, scene)
    return image


def _draw_shapes(draw: ImageDraw.ImageDraw, scene: ShapesScene) -> None:
    cell = IMAGE_SIZE // GRID
    fill = COLOURS[scene.colour][2]
    for index in scene.cells:
        row, column = divmod(index, GRID)
        x = column * cell + cell // 2 + scene.jitter[0]
        y = row * cell + cell // 2 + scene.jitter[1]
        draw.polygon(_outline(SHAPES[scene.shape][0], x, y, _SHAPE_RADIUS), fill=fill)


def _outline(shape: str, x: float, y: float, r: float) -> list[tuple[float, float]]:
    if shape == "circle":
        return [(x + r * math.cos(a), y + r * math.sin(a)) for a in _angles(48, 0.0)]
    if shape == "square":
        side = r * 0.9
        return [(x - side, y - side), (x + side, y - side), (x + side, y + side), (x - side, y + side)]
    if shape == "triangle":
        return [(x + r * math.cos(a), y + r * math.sin(a)) for a in _angles(3, -math.pi / 2)]
    assert shape == "star", shape
    return [
        (x + radius * math.cos(a), y + radius * math.sin(a))
        for a, radius in zip(_angles(10, -math.pi / 2), [r, r * 0.42] * 5, strict=True)
    ]


def _angles(points: int, start: float) -> list[float]:
    return [start + 2 * math.pi * k / points for k in range(points)]


def _draw_text(draw: ImageDraw.ImageDraw, scene: TextScene) -> None:
    size = 72 if scene.is_number else 52
    centre = (IMAGE_SIZE / 2 + scene.offset[0], IMAGE_SIZE / 2 + scene.offset[1])
    draw.text(centre, scene.text, fill=COLOURS[scene.colour][2], font=_font(size), anchor="mm")


def _draw_receipt(draw: ImageDraw.ImageDraw, scene: ReceiptScene) -> None:
    draw.rectangle((14, 4, IMAGE_SIZE - 14, IMAGE_SIZE - 4), fill=PAPER)
    draw.text((22, 12), MERCHANTS[scene.merchant], fill=INK, font=_font(14))
    draw.text((22, 34), scene.date, fill=INK, font=_font(14))
    draw.text((22, 54), CATEGORIES[scene.category][0], fill=INK, font=_font(20))
    draw.line((22, 84, IMAGE_SIZE - 22, 84), fill=INK, width=1)
    draw.text((22, 92), "TOTAL", fill=INK, font=_font(14))
    # Right-aligned in tabular digits, as on a till receipt: each character of the total has its own place.
    draw.text((IMAGE_SIZE - 20, 134), scene.total, fill=INK, font=_font(32), anchor="rm")


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled scalable font: the same glyphs on every machine, no system font needed.
    return ImageFont.load_default(size=size)
