"""Draw a second-renderer picture: a pure function of its spec, sharing no code with training's drawing.

Figures are drawn four times larger and scaled down (anti-aliased edges, where training's are hard), from
vertices computed at their rotation, filled or outlined; letters are laid out one by one, then stretched,
slanted, rotated and scaled; a receipt is drawn flat, then turned and laid on a table. Backgrounds carry a
texture, and the finished picture may be blurred and re-encoded as a JPEG.
"""

from __future__ import annotations

import io
import math
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from services.demo.scene import CATEGORIES, SHAPES
from services.demo.second_renderer.pictures import (
    RGB,
    Canvas,
    Figure,
    FiguresPicture,
    Lettering,
    Picture,
    ReceiptPicture,
    TextPicture,
    Texture,
)

_SUPERSAMPLE = 4
_GLYPH_HEIGHT = 96  # letters are drawn this tall, then scaled to their place
_INK = (25, 25, 35)


def render(picture: Picture) -> Image.Image:
    canvas = picture.canvas
    image = _background(canvas)
    if isinstance(picture, FiguresPicture):
        image.alpha_composite(_figures(picture))
    elif isinstance(picture, TextPicture):
        _lay(image, _coloured(_text_mask(picture.text, picture.lettering), picture.rgb), picture, picture.height)
    else:
        _lay(image, _receipt(picture), picture, picture.size)
    finished = image.convert("RGB")
    if canvas.blur:
        finished = finished.filter(ImageFilter.GaussianBlur(canvas.blur))
    if canvas.jpeg_quality is not None:
        encoded = io.BytesIO()
        finished.save(encoded, "JPEG", quality=canvas.jpeg_quality)
        finished = Image.open(encoded).convert("RGB")
    return finished


def _background(canvas: Canvas) -> Image.Image:
    rng = np.random.default_rng(canvas.texture_seed)
    height, width = canvas.height, canvas.width
    pixels = np.broadcast_to(np.array(canvas.background, dtype=np.float32), (height, width, 3)).copy()
    if canvas.texture is Texture.NOISE:
        pixels += rng.normal(0, rng.uniform(4, 12), (height, width, 3))
    elif canvas.texture is Texture.GRADIENT:
        angle = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        ramp = (xs - width / 2) * math.cos(angle) + (ys - height / 2) * math.sin(angle)
        pixels += (ramp / np.abs(ramp).max() * rng.uniform(15, 40))[..., None]
    elif canvas.texture is Texture.PAPER:
        blotches = rng.normal(0, 1, (height // 24 + 2, width // 24 + 2)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(blotches, "F").resize((width, height), Image.Resampling.BICUBIC))
        pixels += smooth[..., None] * 5 + rng.normal(0, 2.5, (height, width, 1))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").convert("RGBA")


def _figures(picture: FiguresPicture) -> Image.Image:
    canvas = picture.canvas
    layer = Image.new("RGBA", (canvas.width * _SUPERSAMPLE, canvas.height * _SUPERSAMPLE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for figure in picture.figures:
        colour, width = (*figure.rgb, 255), round(figure.outline * _SUPERSAMPLE)
        if SHAPES[figure.shape][0] == "circle":
            x, y, r = (value * _SUPERSAMPLE for value in (*figure.centre, figure.radius))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=None if width else colour, outline=colour, width=width)
        else:
            vertices = _vertices(figure)
            draw.polygon(vertices, fill=None if width else colour, outline=colour, width=width or 1)
    return layer.resize((canvas.width, canvas.height), Image.Resampling.BOX)


def _vertices(figure: Figure) -> list[tuple[float, float]]:
    """The polygon's corners, supersampled: a regular polygon on the figure's circle, turned by its rotation,
    and for a star every other corner drawn in to `star_depth`."""
    corners, depth = {"square": (4, 1.0), "triangle": (3, 1.0), "star": (10, figure.star_depth)}[
        SHAPES[figure.shape][0]
    ]
    x, y = figure.centre
    points = []
    for k in range(corners):
        angle = figure.rotation + 2 * math.pi * k / corners
        radius = figure.radius * (depth if k % 2 else 1.0)
        points.append(((x + radius * math.cos(angle)) * _SUPERSAMPLE, (y + radius * math.sin(angle)) * _SUPERSAMPLE))
    return points


def _text_mask(text: str, lettering: Lettering) -> Image.Image:
    """The letters white on black, about `_GLYPH_HEIGHT` tall, laid out one by one, then stretched and
    slanted."""
    glyphs = [_glyph(character, lettering) for character in text]
    gap = round(lettering.spacing * _GLYPH_HEIGHT)
    line = Image.new("L", (sum(glyph.width for glyph in glyphs) + gap * (len(glyphs) - 1), glyphs[0].height))
    x = 0
    for glyph in glyphs:
        line.paste(glyph, (x, 0))
        x += glyph.width + gap
    line = line.resize((max(1, round(line.width * lettering.stretch)), line.height), Image.Resampling.LANCZOS)
    if not lettering.slant:
        return line
    lean = abs(lettering.slant) * line.height
    # The output's (x, y) reads the line at (x + slant * y - (lean if slant > 0)): for a positive slant the
    # top row moves right by `lean` and the bottom one stays; for a negative one the bottom moves right.
    affine = (1, lettering.slant, -lean if lettering.slant > 0 else 0.0, 0, 1, 0)
    return line.transform(
        (round(line.width + lean), line.height), Image.Transform.AFFINE, affine, Image.Resampling.BICUBIC
    )


def _coloured(mask: Image.Image, rgb: RGB) -> Image.Image:
    layer = Image.new("RGBA", mask.size, (*rgb, 0))
    layer.putalpha(mask)
    return layer


def _lay(image: Image.Image, layer: Image.Image, picture: TextPicture | ReceiptPicture, height: float) -> None:
    """Turn `layer`, scale it to `height` of the canvas's height (less where it would not fit across), and
    lay it on `image` at the picture's place."""
    turned = layer.rotate(picture.rotation, Image.Resampling.BICUBIC, expand=True)
    scale = min(height * image.height / turned.height, 0.95 * image.width / turned.width)
    size = (max(1, round(turned.width * scale)), max(1, round(turned.height * scale)))
    across, down = picture.place
    image.alpha_composite(
        turned.resize(size, Image.Resampling.LANCZOS),
        (round(across * (image.width - size[0])), round(down * (image.height - size[1]))),
    )


def _receipt(picture: ReceiptPicture) -> Image.Image:
    """The paper, flat: merchant, date, category, the items, a dashed rule, then the total."""
    unit = _GLYPH_HEIGHT // 2

    def line(text: str, size: float = 1.0) -> Image.Image:
        mask = _text_mask(text, picture.lettering)
        height = round(unit * size)
        return mask.resize((max(1, mask.width * height // mask.height), height), Image.Resampling.LANCZOS)

    # A row is a left part and a right-aligned one; None is the rule.
    rows: list[tuple[Image.Image, Image.Image | None] | None] = [
        (line(picture.merchant, 1.2), None),
        (line(picture.date, 0.8), None),
        (line(CATEGORIES[picture.category][0]), None),
        *((line(name, 0.9), line(amount, 0.9)) for name, amount in picture.items),
        None,
    ]
    label, amount = line(picture.total_label, 1.1), line(picture.total, 1.3)
    rows += [(label, None), (amount, None)] if picture.total_below else [(label, amount)]
    heights = [unit if row is None else round(1.4 * max(part.height for part in row if part)) for row in rows]
    widths = [0 if row is None else sum(part.width for part in row if part) + 2 * unit for row in rows]
    margin = unit
    paper = Image.new("RGBA", (max(widths) + 2 * margin, sum(heights) + 2 * margin), (*picture.paper, 255))
    draw, y = ImageDraw.Draw(paper), margin
    for row, height in zip(rows, heights, strict=True):
        if row is None:
            for x in range(margin, paper.width - margin, unit // 2):
                draw.line((x, y + height // 2, x + unit // 4, y + height // 2), fill=_INK, width=max(1, unit // 12))
        else:
            left, right = row
            paper.paste(_INK, (margin, y), left)
            if right is not None:
                paper.paste(_INK, (paper.width - margin - right.width, y), right)
        y += height
    return paper


def _glyph(character: str, lettering: Lettering) -> Image.Image:
    """One letter white on black, in a cell as tall as its font's line, so that letters share a baseline."""
    if lettering.pixel:
        bitmap = _bitmap_font()
        _, _, width, height = bitmap.getbbox(character)
        cell = Image.new("L", (width, height))
        ImageDraw.Draw(cell).text((0, 0), character, fill=255, font=bitmap)
        return cell.resize((width * _GLYPH_HEIGHT // height, _GLYPH_HEIGHT), Image.Resampling.NEAREST)
    font, stroke = _vector_font(), round(lettering.stroke * _GLYPH_HEIGHT)
    ascent, descent = font.getmetrics()
    cell = Image.new("L", (round(font.getlength(character)) + 2 * stroke, ascent + descent + 2 * stroke))
    ImageDraw.Draw(cell).text(
        (stroke, stroke + ascent), character, fill=255, font=font, anchor="ls", stroke_width=stroke, stroke_fill=255
    )
    return cell


@cache
def _bitmap_font() -> ImageFont.ImageFont:
    return ImageFont.load_default_imagefont()


@cache
def _vector_font() -> ImageFont.FreeTypeFont:
    # Pillow's bundled scalable font: the one outline font every machine has. Drawn tall and scaled down.
    font = ImageFont.load_default(size=_GLYPH_HEIGHT)
    if not isinstance(font, ImageFont.FreeTypeFont):
        raise RuntimeError("the second renderer needs Pillow built with FreeType (its bundled scalable font)")
    return font
