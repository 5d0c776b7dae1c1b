"""What a second-renderer picture shows: a frozen spec drawn from a seeded RNG, from which the picture is
drawn and every answer computed.

Nothing of the training scenes' layout is kept (one 168-pixel canvas, a 3 x 3 grid, one size per shape): a
canvas is any size from the processor's smallest to 512 pixels a side, figures sit anywhere at any size and
rotation, text and receipts come in other lettering and layouts. Shared with training is only what the
answers name: the colours, shapes, words and receipt categories of `services.demo.scene`, and a total's
`ddd.dd`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

from services.demo.scene import CATEGORIES, COLOURS, MAX_COUNT, MAX_NUMBER, SHAPES, WORDS

RGB = tuple[int, int, int]
SMALLEST_SIDE, LARGEST_SIDE = 112, 512  # the processor's smallest picture is 112 x 112 (12,544 pixels)

# Shades a person might pick for each of COLOURS' names, in COLOURS' order: not training's one RGB each.
SHADES: tuple[tuple[RGB, ...], ...] = (
    ((255, 0, 0), (200, 25, 35), (232, 52, 40)),  # red
    ((0, 160, 0), (40, 135, 65), (70, 180, 80)),  # green
    ((0, 0, 255), (30, 95, 205), (25, 50, 150)),  # blue
    ((255, 225, 0), (250, 215, 30), (240, 235, 60)),  # yellow
    ((0, 0, 0), (35, 35, 35), (45, 40, 55)),  # black
    ((255, 140, 0), (238, 112, 30), (255, 160, 50)),  # orange
    ((128, 0, 128), (150, 60, 195), (105, 35, 145)),  # purple
)
# Receipt merchants of each of CATEGORIES, none of training's MERCHANTS.
MERCHANTS: tuple[tuple[str, ...], ...] = (
    ("METRO CAB", "AIRPORT BUS", "SKYWAY AIR"),
    ("INN 88", "GRAND HOTEL", "HARBOUR LODGE"),
    ("DUMPLING KING", "CAFE 7", "RICE BOWL"),
    ("STATIONERY", "PRINT SHOP", "INK & CO"),
)


class Texture(StrEnum):
    PLAIN = "plain"
    NOISE = "noise"
    GRADIENT = "gradient"
    PAPER = "paper"


@dataclass(frozen=True)
class Canvas:
    width: int
    height: int
    background: RGB
    texture: Texture
    texture_seed: int
    blur: float  # radius of a Gaussian blur once drawn, 0 for none
    jpeg_quality: int | None  # re-encoded as a JPEG of this quality, None for not


@dataclass(frozen=True)
class Figure:
    shape: int  # index into SHAPES
    colour: int  # index into COLOURS; `rgb` is one shade of it
    rgb: RGB
    centre: tuple[float, float]
    radius: float  # of the circle the figure is inscribed in, in pixels
    rotation: float  # radians
    outline: float  # line width in pixels; 0 is filled
    star_depth: float  # a star's inner radius over its outer one


@dataclass(frozen=True)
class FiguresPicture:
    """Copies of one figure in one colour, or (`mixed`) two or three figures of different shapes and colours."""

    canvas: Canvas
    figures: tuple[Figure, ...]

    @property
    def mixed(self) -> bool:
        return len({figure.shape for figure in self.figures}) > 1


@dataclass(frozen=True)
class Lettering:
    pixel: bool  # Pillow's bitmap font, enlarged into blocks; otherwise its scalable one
    stroke: float  # added thickness over the letters' height (bold)
    slant: float  # horizontal shear (italic)
    stretch: float  # width over the font's own
    spacing: float  # added room between letters over their height


@dataclass(frozen=True)
class TextPicture:
    canvas: Canvas
    text: str  # a number 0 to MAX_NUMBER or one of WORDS
    rgb: RGB
    lettering: Lettering
    height: float  # of the turned text over the canvas's (less where that would not fit across)
    rotation: float  # degrees
    place: tuple[float, float]  # where in the room the text leaves, 0 to 1 across and down

    @property
    def is_number(self) -> bool:
        return self.text.isdigit()


@dataclass(frozen=True)
class ReceiptPicture:
    canvas: Canvas
    merchant: str
    date: str
    category: int  # index into CATEGORIES; its English word is printed
    items: tuple[tuple[str, str], ...]  # (name, amount) lines above the total, adding up to it
    total: str  # `ddd.dd`
    total_label: str
    total_below: bool  # the amount on a line of its own under its label, else right-aligned beside it
    paper: RGB
    lettering: Lettering
    size: float  # height of the turned paper over the canvas's (less where that would not fit across)
    rotation: float  # degrees
    place: tuple[float, float]

    @property
    def is_travel(self) -> bool:
        return CATEGORIES[self.category][2]


Picture = FiguresPicture | TextPicture | ReceiptPicture


def random_canvas(
    rng: random.Random,
    background: RGB | None = None,
    narrowest: int = SMALLEST_SIDE,
    aspects: tuple[float, ...] = (0.5, 0.75, 1.0, 1.0, 1.33, 2.0),
) -> Canvas:
    """A canvas `narrowest` to 512 pixels wide, as tall as one of `aspects` (height over width) allows."""
    width = rng.randint(narrowest, LARGEST_SIDE)
    height = min(LARGEST_SIDE, max(SMALLEST_SIDE, round(width * rng.choice(aspects))))
    if background is None:
        light = rng.randint(175, 255)  # white to mid grey, a little tinted
        background = (_jitter(rng, light, 14), _jitter(rng, light, 14), _jitter(rng, light, 14))
    blur = rng.choice((0.0, 0.0, 0.6, 1.1))
    jpeg_quality = rng.choice((None, None, 45, 70, 90))
    return Canvas(width, height, background, rng.choice(tuple(Texture)), rng.getrandbits(32), blur, jpeg_quality)


def random_figures(rng: random.Random, mixed: bool) -> FiguresPicture:
    canvas = random_canvas(rng)
    if mixed:
        count = rng.randint(2, 3)
        shapes, colours = rng.sample(range(len(SHAPES)), count), rng.sample(range(len(COLOURS)), count)
    else:
        count = rng.randint(1, MAX_COUNT)
        shapes, colours = [rng.randrange(len(SHAPES))] * count, [rng.randrange(len(COLOURS))] * count
    radii, centres = _place(rng, canvas, count)
    line = rng.choice((0.0, 0.0, rng.uniform(0.08, 0.16)))  # outlined figures: the line over the radius
    figures = tuple(
        Figure(
            shape,
            colour,
            _shade(rng, colour),
            centre,
            radius,
            rng.uniform(0, 2 * math.pi),
            max(2.0, radius * line) if line and radius >= 14 else 0.0,
            rng.uniform(0.38, 0.5),
        )
        for shape, colour, radius, centre in zip(shapes, colours, radii, centres, strict=True)
    )
    return FiguresPicture(canvas, figures)


def random_text(rng: random.Random, number: bool) -> TextPicture:
    text = str(rng.randint(0, MAX_NUMBER)) if number else rng.choice(WORDS)
    colour = rng.randrange(len(COLOURS))
    rotation, place = rng.uniform(-20, 20), (rng.random(), rng.random())
    return TextPicture(
        random_canvas(rng), text, _shade(rng, colour), _lettering(rng), rng.uniform(0.2, 0.6), rotation, place
    )


def random_receipt(rng: random.Random) -> ReceiptPicture:
    table = rng.choice(((150, 110, 70), (70, 72, 78), (60, 110, 80), (200, 200, 195), (120, 135, 160)))
    category = rng.randrange(len(CATEGORIES))
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    date = rng.choice((f"{day:02d}/{month:02d}/2026", f"2026.{month:02d}.{day:02d}", f"2026-{month}-{day}"))
    cents = rng.randint(10_000, 99_999)
    items: tuple[tuple[str, str], ...] = ()
    if rng.random() < 0.5:
        first = rng.randint(100, cents - 100)
        items = (("ITEM", _amount(first)), (rng.choice(("SERVICE", "TAX", "EXTRA")), _amount(cents - first)))
    return ReceiptPicture(
        # Upright and no smaller than 200 pixels across: a receipt any smaller is past reading by anyone.
        canvas=random_canvas(rng, background=table, narrowest=200, aspects=(1.0, 1.33, 1.5)),
        merchant=rng.choice(MERCHANTS[category]),
        date=date,
        category=category,
        items=items,
        total=_amount(cents),
        total_label=rng.choice(("TOTAL", "TOTAL:", "AMOUNT DUE", "SUM")),
        total_below=rng.random() < 0.4,
        paper=rng.choice(((255, 255, 255), (250, 246, 232), (236, 236, 230))),
        lettering=Lettering(rng.random() < 0.3, 0.0, 0.0, rng.uniform(0.85, 1.15), 0.0),
        size=rng.uniform(0.75, 0.95),
        rotation=rng.uniform(-10, 10),
        place=(rng.random(), rng.random()),
    )


def _shade(rng: random.Random, colour: int) -> RGB:
    red, green, blue = rng.choice(SHADES[colour])
    return (_jitter(rng, red, 8), _jitter(rng, green, 8), _jitter(rng, blue, 8))


def _jitter(rng: random.Random, channel: int, most: int) -> int:
    return min(255, max(0, channel + rng.randint(-most, most)))


def _lettering(rng: random.Random) -> Lettering:
    pixel = rng.random() < 0.3
    stroke = 0.0 if pixel else rng.choice((0.0, 0.0, 0.03, 0.06))
    slant = rng.choice((0.0, 0.0, rng.uniform(-0.3, 0.3)))
    return Lettering(pixel, stroke, slant, rng.uniform(0.7, 1.4), rng.choice((0.0, 0.0, rng.uniform(0.05, 0.3))))


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _place(rng: random.Random, canvas: Canvas, count: int) -> tuple[list[float], list[tuple[float, float]]]:
    """Radii and centres of `count` figures inside the canvas that do not touch: one may fill the picture,
    five share it; where those drawn do not fit, smaller ones are drawn."""
    side = min(canvas.width, canvas.height)
    largest = side * 0.47 / math.ceil(math.sqrt(count))
    base = rng.uniform(max(10.0, side * 0.06), max(10.0, largest))
    while True:
        radii = [base * rng.uniform(0.8, 1.0) for _ in range(count)]
        centres: list[tuple[float, float]] = []
        for radius in radii:
            for _ in range(100):
                centre = (rng.uniform(radius, canvas.width - radius), rng.uniform(radius, canvas.height - radius))
                if all(math.dist(centre, c) > radius + r + 4 for c, r in zip(centres, radii, strict=False)):
                    centres.append(centre)
                    break
            else:
                break
        if len(centres) == count:
            return radii, centres
        base *= 0.85
