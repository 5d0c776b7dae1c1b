"""Training's varied pictures: specs of what a person would vary when they draw or photograph a shape, a
number, a word or a receipt, drawn from a seeded RNG and rendered by `varied_drawing`.

Today's scenes (`scene`) keep one 168-pixel canvas, a 3 x 3 grid and one size per shape, and the held-out
figure is measured on them. These vary the canvas (size, aspect, backdrop, blur, JPEG noise), each figure's
size, place, rotation, shade and outline, mix figures of different shapes and colours, and turn and move
text and receipts. A picture can also be fogged past seeing: every question about it is answered "I can't
tell".
"""

from __future__ import annotations

import colorsys
import math
import random
from dataclasses import dataclass, replace
from enum import StrEnum

from services.demo.scene import CATEGORIES, COLOURS, MAX_COUNT, MAX_NUMBER, SHAPES, WORDS

RGB = tuple[int, int, int]
NARROWEST, WIDEST = 112, 512  # the processor's smallest picture is 112 x 112; 512 is the web page's upload
COMMON_WIDEST = 336  # nine canvases in ten are no wider (drawing a larger one costs more time, not tokens)
FOG_SHARE = 0.03  # of the pictures: blurred until nothing can be told

# Receipt merchants, by CATEGORIES' order: none of them training's classic MERCHANTS or the second renderer's.
VARIED_MERCHANTS: tuple[tuple[str, ...], ...] = (
    ("GREEN CAB", "EXPRESS RAIL", "CITY METRO", "BLUE AIRWAYS", "FERRY LINE", "COACH 77"),
    ("PARK HOTEL", "RIVER INN", "MOUNTAIN LODGE", "HOSTEL ONE", "GARDEN SUITES"),
    ("PIZZA CORNER", "HOT POT 9", "BAKERY", "SUSHI GO", "BURGER HUB", "CANTEEN"),
    ("COPY CENTRE", "PAPER WORLD", "OFFICE MART", "DESK SUPPLY", "PEN HOUSE"),
)
TOTAL_LABELS = ("TOTAL", "Total", "GRAND TOTAL", "TO PAY", "BALANCE")


class Backdrop(StrEnum):
    FLAT = "flat"
    SPECKLE = "speckle"  # grain, as a phone photo's
    STRIPES = "stripes"
    SHADED = "shaded"  # lighter at one edge than the other


@dataclass(frozen=True)
class Look:
    """The canvas and what happens to the picture once drawn."""

    width: int
    height: int
    background: RGB
    backdrop: Backdrop
    backdrop_seed: int
    blur: float  # Gaussian radius, 0 for none
    jpeg_quality: int | None  # re-encoded at this quality, None for not
    fogged: bool  # blurred and washed out until nothing can be told


@dataclass(frozen=True)
class Drawn:
    """One figure: a shape of SHAPES in a shade of one of COLOURS."""

    shape: int
    colour: int
    rgb: RGB
    x: float
    y: float
    size: float  # radius of the circle it fits in, pixels
    turn: float  # radians
    line: int  # outline width in pixels, 0 for filled


@dataclass(frozen=True)
class VariedShapes:
    """1 to MAX_COUNT copies of one figure, or (`mixed`) 2 or 3 figures of different shapes and colours."""

    look: Look
    figures: tuple[Drawn, ...]

    @property
    def mixed(self) -> bool:
        return len({figure.shape for figure in self.figures}) > 1

    @property
    def count(self) -> int:
        return len(self.figures)


@dataclass(frozen=True)
class VariedText:
    look: Look
    text: str  # a number 0 to MAX_NUMBER or one of WORDS
    colour: int
    rgb: RGB
    bitmap_font: bool  # Pillow's small bitmap font, enlarged; otherwise its scalable one
    bold: int  # stroke width in font pixels
    height: float  # of the letters over the canvas's height
    turn: float  # degrees
    x: float  # where the text's centre sits, 0 to 1 across and down
    y: float

    @property
    def is_number(self) -> bool:
        return self.text.isdigit()


@dataclass(frozen=True)
class VariedReceipt:
    look: Look  # the table it lies on
    merchant: str
    date: str
    category: int  # index into CATEGORIES
    lines: tuple[tuple[str, str], ...]  # (item, amount) printed above the total
    total: str  # `ddd.dd`
    total_label: str
    total_beside: bool  # the amount right-aligned on the label's line, else on the line under it
    paper: RGB
    size: float  # the paper's height over the canvas's (less where it would not fit across)
    turn: float  # degrees
    x: float
    y: float

    @property
    def is_travel(self) -> bool:
        return CATEGORIES[self.category][2]


VariedScene = VariedShapes | VariedText | VariedReceipt


def random_look(rng: random.Random, narrowest: int = NARROWEST, light: bool = True) -> Look:
    widest = WIDEST if rng.random() < 0.1 else COMMON_WIDEST
    width = rng.randint(narrowest, widest)
    height = min(WIDEST, max(NARROWEST, round(width * rng.choice((0.5, 0.6, 0.8, 1.0, 1.0, 1.0, 1.25, 1.6, 2.0)))))
    if light:  # white, greys and pale tints, as paper, screens and walls are
        background = _tint(rng, rng.uniform(0.72, 1.0), rng.uniform(0.0, 0.15))
    else:  # a table: wood, stone, cloth
        background = _tint(rng, rng.uniform(0.25, 0.8), rng.uniform(0.0, 0.5))
    blur = rng.choice((0.0, 0.0, 0.0, rng.uniform(0.3, 1.4)))
    jpeg = rng.choice((None, None, rng.randint(35, 95)))
    backdrop = rng.choice(tuple(Backdrop))
    return Look(width, height, background, backdrop, rng.getrandbits(31), blur, jpeg, rng.random() < FOG_SHARE)


def random_varied_shapes(rng: random.Random, mixed: bool) -> VariedShapes:
    look = random_look(rng)
    if mixed:
        count = rng.randint(2, 3)
        shapes, colours = rng.sample(range(len(SHAPES)), count), rng.sample(range(len(COLOURS)), count)
    else:
        count = rng.randint(1, MAX_COUNT)
        shapes, colours = [rng.randrange(len(SHAPES))] * count, [rng.randrange(len(COLOURS))] * count
    line = rng.choice((0, 0, 0, rng.randint(2, 6)))
    spots = _spots(rng, look, count)
    figures = tuple(
        Drawn(shape, colour, shade(rng, colour), x, y, size, rng.uniform(0, 2 * math.pi), line if size > 12 else 0)
        for shape, colour, (x, y, size) in zip(shapes, colours, spots, strict=True)
    )
    return VariedShapes(look, _unclashing(figures, look))


def random_varied_text(rng: random.Random, number: bool) -> VariedText:
    text = str(rng.randint(0, MAX_NUMBER)) if number else rng.choice(WORDS)
    colour = rng.randrange(len(COLOURS))
    look = random_look(rng)
    return VariedText(
        look,
        text,
        colour,
        shade(rng, colour),
        rng.random() < 0.3,
        rng.choice((0, 0, 1, 2)),
        rng.uniform(0.18, 0.55),
        rng.choice((0.0, rng.uniform(-25, 25))),
        rng.uniform(0.3, 0.7),
        rng.uniform(0.3, 0.7),
    )


def random_varied_receipt(rng: random.Random) -> VariedReceipt:
    category = rng.randrange(len(CATEGORIES))
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    date = rng.choice((f"2026-{month:02d}-{day:02d}", f"{month:02d}/{day:02d}/2026", f"2026/{month}/{day}"))
    cents = rng.randint(10_000, 99_999)
    lines: tuple[tuple[str, str], ...] = ()
    if rng.random() < 0.6:  # items whose amounts are not the total: reading the labelled line matters
        parts = sorted(rng.sample(range(1, cents), rng.randint(1, 2)))
        bounds = [0, *parts, cents]
        names = rng.sample(("FARE", "ROOM", "TEA", "PAPER", "FEE", "TAX", "SERVICE"), len(bounds) - 1)
        lines = tuple((name, _amount(b - a)) for name, a, b in zip(names, bounds, bounds[1:], strict=False))
    return VariedReceipt(
        look=random_look(rng, narrowest=196, light=False),
        merchant=rng.choice(VARIED_MERCHANTS[category]),
        date=date,
        category=category,
        lines=lines,
        total=_amount(cents),
        total_label=rng.choice(TOTAL_LABELS),
        total_beside=rng.random() < 0.6,
        paper=_tint(rng, rng.uniform(0.9, 1.0), rng.uniform(0.0, 0.08)),
        size=rng.uniform(0.78, 0.97),
        turn=rng.choice((0.0, rng.uniform(-12, 12))),
        x=rng.random(),
        y=rng.random(),
    )


def shade(rng: random.Random, colour: int) -> RGB:
    """A shade of COLOURS[colour]: its hue turned a little, its saturation and value moved within what a
    person would still call by that name (black only gets lighter)."""
    red, green, blue = (channel / 255 for channel in COLOURS[colour][2])
    hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
    if COLOURS[colour][0] == "black":
        grey = rng.randint(0, 50)
        return (grey, grey, min(255, grey + rng.randint(0, 12)))
    hue = (hue + rng.uniform(-0.025, 0.025)) % 1.0
    saturation = min(1.0, max(0.55, saturation + rng.uniform(-0.2, 0.1)))
    value = min(1.0, max(0.55, value + rng.uniform(-0.2, 0.15)))
    return tuple(round(channel * 255) for channel in colorsys.hsv_to_rgb(hue, saturation, value))  # type: ignore[return-value]


def _tint(rng: random.Random, lightness: float, saturation: float) -> RGB:
    red, green, blue = colorsys.hsv_to_rgb(rng.random(), saturation, lightness)
    return (round(red * 255), round(green * 255), round(blue * 255))


def _spots(rng: random.Random, look: Look, count: int) -> list[tuple[float, float, float]]:
    """(x, y, size) of `count` figures that do not touch and lie inside the canvas: one may fill it, five
    share it; where they do not fit, all are drawn smaller."""
    side = min(look.width, look.height)
    size = rng.uniform(9.0, max(9.5, side * 0.48 / math.ceil(math.sqrt(count))))
    while True:
        spots: list[tuple[float, float, float]] = []
        for _ in range(count):
            own = size * rng.uniform(0.75, 1.0)
            for _attempt in range(60):
                x, y = rng.uniform(own, look.width - own), rng.uniform(own, look.height - own)
                if all(math.hypot(x - ox, y - oy) > own + other + 3 for ox, oy, other in spots):
                    spots.append((x, y, own))
                    break
        if len(spots) == count:
            return spots
        size *= 0.8


def _unclashing(figures: tuple[Drawn, ...], look: Look) -> tuple[Drawn, ...]:
    """Figures in a colour too close to the background's would be invisible: they are drawn in their
    colour's own RGB instead (training's single shade of it)."""
    return tuple(
        figure
        if sum(abs(a - b) for a, b in zip(figure.rgb, look.background, strict=True)) > 120
        else replace(figure, rgb=COLOURS[figure.colour][2])
        for figure in figures
    )


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"
