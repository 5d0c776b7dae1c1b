"""Render a varied training picture (`varied_scene`): a pure function of its spec.

Figures are drawn at twice the size and halved (soft edges), text and receipts are drawn upright on a layer
of their own, then scaled, turned and laid on the canvas; the finished picture may be blurred, fogged and
re-encoded as a JPEG.
"""

from __future__ import annotations

import io
import math
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from services.demo.scene import CATEGORIES, SHAPES
from services.demo.varied_scene import Backdrop, Drawn, Look, VariedReceipt, VariedScene, VariedShapes, VariedText

_OVERDRAW = 2
_INK = (30, 30, 30)
_STAR_INNER = 0.45
_CORNERS = {"square": 4, "triangle": 3, "star": 10}


def render_varied(scene: VariedScene) -> Image.Image:
    image = _canvas(scene.look)
    if isinstance(scene, VariedShapes):
        image = _with_figures(image, scene.figures)
    elif isinstance(scene, VariedText):
        _lay(image, _lettering(scene), scene.height, scene.turn, (scene.x, scene.y))
    else:
        _lay(image, _paper(scene), scene.size, scene.turn, (scene.x, scene.y))
    return _finished(image, scene.look)


def _canvas(look: Look) -> Image.Image:
    rng = np.random.default_rng(look.backdrop_seed)
    pixels = np.full((look.height, look.width, 3), look.background, dtype=np.float32)
    if look.backdrop is Backdrop.SPECKLE:
        pixels += rng.uniform(-1, 1, (look.height, look.width, 1)) * rng.uniform(6, 18)
    elif look.backdrop is Backdrop.STRIPES:
        period, angle = rng.uniform(6, 40), rng.uniform(0, math.pi)
        ys, xs = np.mgrid[0 : look.height, 0 : look.width]
        bands = np.sin((xs * math.cos(angle) + ys * math.sin(angle)) * 2 * math.pi / period) > 0
        pixels += (bands[..., None] * 2 - 1) * rng.uniform(4, 12)
    elif look.backdrop is Backdrop.SHADED:
        across = rng.random() < 0.5
        ramp = np.linspace(rng.uniform(0.8, 0.95), rng.uniform(1.0, 1.1), look.width if across else look.height)
        pixels *= ramp[None, :, None] if across else ramp[:, None, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _with_figures(image: Image.Image, figures: tuple[Drawn, ...]) -> Image.Image:
    large = image.resize((image.width * _OVERDRAW, image.height * _OVERDRAW), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(large)
    for figure in figures:
        width = figure.line * _OVERDRAW
        if SHAPES[figure.shape][0] == "circle":
            x, y, r = figure.x * _OVERDRAW, figure.y * _OVERDRAW, figure.size * _OVERDRAW
            box = (x - r, y - r, x + r, y + r)
            draw.ellipse(box, fill=None if width else figure.rgb, outline=figure.rgb, width=max(1, width))
        else:
            corners = _corners(figure)
            draw.polygon(corners, fill=None if width else figure.rgb, outline=figure.rgb, width=max(1, width))
    return large.reduce(_OVERDRAW)


def _corners(figure: Drawn) -> list[tuple[float, float]]:
    name = SHAPES[figure.shape][0]
    count = _CORNERS[name]
    corners = []
    for k in range(count):
        angle = figure.turn + 2 * math.pi * k / count
        reach = figure.size * (_STAR_INNER if name == "star" and k % 2 else 1.0)
        corners.append(
            ((figure.x + reach * math.cos(angle)) * _OVERDRAW, (figure.y + reach * math.sin(angle)) * _OVERDRAW)
        )
    return corners


def _lettering(scene: VariedText) -> Image.Image:
    """The text in its colour on a transparent layer, cut to its ink."""
    if scene.bitmap_font:
        mask = _ink_mask(scene.text, ImageFont.load_default_imagefont(), 0)
        mask = mask.resize((mask.width * 8, mask.height * 8), Image.Resampling.NEAREST)
    else:
        mask = _ink_mask(scene.text, _font(96), scene.bold * 3)
    layer = Image.new("RGBA", mask.size, (*scene.rgb, 0))
    layer.putalpha(mask)
    return layer


def _ink_mask(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, stroke: int) -> Image.Image:
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font, stroke_width=stroke)
    mask = Image.new("L", (round(right - left) + 2, round(bottom - top) + 2), 0)
    ImageDraw.Draw(mask).text((1 - left, 1 - top), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return mask


def _paper(receipt: VariedReceipt) -> Image.Image:
    """The receipt flat, upright, on an opaque layer: merchant, date, category, items, a rule, the total."""
    width, row = 240, 26
    rows = 5 + len(receipt.lines) + (0 if receipt.total_beside else 1)
    paper = Image.new("RGBA", (width, row * rows + 24), (*receipt.paper, 255))
    draw = ImageDraw.Draw(paper)
    small, large = _font(17), _font(24)
    y = 10
    for text, font in ((receipt.merchant, small), (receipt.date, small), (CATEGORIES[receipt.category][0], large)):
        draw.text((12, y), text, fill=_INK, font=font)
        y += row
    for name, amount in receipt.lines:
        draw.text((12, y), name, fill=_INK, font=small)
        draw.text((width - 12, y), amount, fill=_INK, font=small, anchor="ra")
        y += row
    draw.line((12, y + 4, width - 12, y + 4), fill=_INK, width=2)
    y += 12
    draw.text((12, y), receipt.total_label, fill=_INK, font=small)
    if not receipt.total_beside:
        y += row
    draw.text((width - 12, y), receipt.total, fill=_INK, font=large, anchor="ra")
    return paper


def _lay(image: Image.Image, layer: Image.Image, height: float, turn: float, centre: tuple[float, float]) -> None:
    """Scale `layer` to `height` of the canvas's height (less where it would not fit across), turn it by
    `turn` degrees and lay it with its centre at `centre` (0 to 1 across and down), kept inside."""
    scale = min(height * image.height / layer.height, 0.92 * image.width / layer.width)
    sized = layer.resize(
        (max(1, round(layer.width * scale)), max(1, round(layer.height * scale))), Image.Resampling.LANCZOS
    )
    turned = sized.rotate(turn, Image.Resampling.BICUBIC, expand=True)
    left = round(min(max(centre[0] * image.width - turned.width / 2, 0), max(0, image.width - turned.width)))
    top = round(min(max(centre[1] * image.height - turned.height / 2, 0), max(0, image.height - turned.height)))
    image.paste(turned, (left, top), turned)


def _finished(image: Image.Image, look: Look) -> Image.Image:
    if look.fogged:
        fog = image.filter(ImageFilter.GaussianBlur(min(look.width, look.height) / 5))
        image = Image.blend(fog, Image.new("RGB", image.size, look.background), 0.6)
    if look.blur:
        image = image.filter(ImageFilter.GaussianBlur(look.blur))
    if look.jpeg_quality is not None:
        encoded = io.BytesIO()
        image.save(encoded, "JPEG", quality=look.jpeg_quality)
        image = Image.open(encoded).convert("RGB")
    return image


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)
