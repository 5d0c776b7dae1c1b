"""Synthetic images for the image safety models: nothing downloaded, nothing but drawn shapes."""

from __future__ import annotations

from PIL import Image, ImageDraw

SIZE = 512
# Ellipses on a grey-blue background that open_nsfw misreads as NSFW (about 0.93 at 512x512): found by a
# hill climb over these shape parameters, on a 256-pixel canvas. Background, "skin" colour, four
# ellipses (x, y, width, height), three dark dots (x, y, diameter).
_MISREAD_BACKGROUND = (138, 155, 171)
_MISREAD_FILL = (160, 142, 137)
_MISREAD_ELLIPSES = ((19, 161, 140, 98), (115, 1, 39, 135), (200, 161, 48, 36), (117, 80, 99, 176))
_MISREAD_DOTS = ((240, 240, 14), (72, 233, 34), (10, 151, 30))


def receipt() -> Image.Image:
    image = Image.new("RGB", (384, SIZE), "white")
    draw = ImageDraw.Draw(image)
    draw.text((24, 16), "CORNER GROCERY  #0042", fill="black")
    for line in range(20):
        draw.text((24, 48 + line * 22), f"ITEM {line:02d} ............ {line * 1.25:6.2f}", fill="black")
    return image


def coloured_shapes() -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (30, 90, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((50, 50, 250, 250), fill=(250, 200, 0))
    draw.rectangle((300, 300, 480, 480), fill=(0, 160, 60))
    draw.polygon([(300, 60), (470, 60), (385, 220)], fill=(220, 30, 30))
    return image


def flat(colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (SIZE, SIZE), colour)


SKIN_TONE = (200, 140, 110)


def shapes_open_nsfw_misreads() -> Image.Image:
    scale = SIZE / 256
    image = Image.new("RGB", (SIZE, SIZE), _MISREAD_BACKGROUND)
    draw = ImageDraw.Draw(image)
    for x, y, width, height in _MISREAD_ELLIPSES:
        draw.ellipse([value * scale for value in (x, y, x + width, y + height)], fill=_MISREAD_FILL)
    dot_colour = (int(_MISREAD_FILL[0] * 0.6), int(_MISREAD_FILL[1] * 0.5), int(_MISREAD_FILL[2] * 0.5))
    for x, y, diameter in _MISREAD_DOTS:
        draw.ellipse([value * scale for value in (x, y, x + diameter, y + diameter)], fill=dot_colour)
    return image
