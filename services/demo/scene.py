"""What a synthetic picture shows: a frozen spec drawn from a seeded RNG, from which the image is rendered.

The spec, not the pixels, is the ground truth: every answer is computed from it, and the held-out split
is decided by it, so a held-out picture never appears in training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

IMAGE_SIZE = 168  # 6 x 28 pixels: 36 image tokens after the processor (one per 28 x 28)
GRID = 3  # shapes sit in distinct cells of a 3 x 3 grid, so they never overlap
MAX_COUNT = 5
MAX_NUMBER = 99  # a TextScene's number is 0 to MAX_NUMBER

# (English, Chinese, RGB): the Chinese names are the tokenizer corpus's.
COLOURS: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("red", "红色", (220, 30, 30)),
    ("green", "绿色", (30, 160, 50)),
    ("blue", "蓝色", (30, 60, 220)),
    ("yellow", "黄色", (240, 210, 20)),
    ("black", "黑色", (0, 0, 0)),
    ("orange", "橙色", (245, 130, 20)),
    ("purple", "紫色", (140, 40, 170)),
)
SHAPES: tuple[tuple[str, str], ...] = (
    ("circle", "圆形"),
    ("square", "正方形"),
    ("triangle", "三角形"),
    ("star", "星形"),
)
WORDS: tuple[str, ...] = ("cat", "sun", "tea", "bus", "map", "pen", "red", "box", "car", "hat", "cup", "key")
# (English word printed on the receipt, Chinese name, counts as travel). No CJK font is installed, so the
# receipt prints the English category; questions and answers still come in both languages.
CATEGORIES: tuple[tuple[str, str, bool], ...] = (
    ("TRANSPORT", "交通", True),
    ("LODGING", "住宿", True),
    ("MEALS", "餐饮", False),
    ("OFFICE", "办公", False),
)
MERCHANTS: tuple[str, ...] = ("CITY TAXI", "RAIL 12306", "HOTEL LOTUS", "NOODLE BAR", "TEA HOUSE", "PAPER CO")


@dataclass(frozen=True)
class ShapesScene:
    """`len(cells)` copies of one shape in one colour, each in its own grid cell."""

    shape: int  # index into SHAPES
    colour: int  # index into COLOURS
    cells: tuple[int, ...]  # distinct cells of the GRID x GRID grid, row-major
    jitter: tuple[int, int]  # pixels added to every shape's centre

    @property
    def count(self) -> int:
        return len(self.cells)


@dataclass(frozen=True)
class TextScene:
    """Large text: a number from 0 to 99 or a short word, in one colour."""

    text: str
    colour: int
    offset: tuple[int, int]

    @property
    def is_number(self) -> bool:
        return self.text.isdigit()


@dataclass(frozen=True)
class ReceiptScene:
    merchant: int  # index into MERCHANTS
    date: str  # YYYY-MM-DD
    category: int  # index into CATEGORIES
    total: str  # yuan, three digits and two decimals, e.g. "128.50": one layout, printed right-aligned

    @property
    def is_travel(self) -> bool:
        return CATEGORIES[self.category][2]


Scene = ShapesScene | TextScene | ReceiptScene


def random_shapes(rng: random.Random, count: int | None = None) -> ShapesScene:
    count = count or rng.randint(1, MAX_COUNT)
    cells = tuple(sorted(rng.sample(range(GRID * GRID), count)))
    jitter = (rng.randint(-4, 4), rng.randint(-4, 4))
    return ShapesScene(rng.randrange(len(SHAPES)), rng.randrange(len(COLOURS)), cells, jitter)


def random_number(rng: random.Random) -> TextScene:
    return TextScene(str(rng.randint(0, MAX_NUMBER)), rng.randrange(len(COLOURS)), _text_offset(rng))


def random_word(rng: random.Random) -> TextScene:
    return TextScene(rng.choice(WORDS), rng.randrange(len(COLOURS)), _text_offset(rng))


def random_receipt(rng: random.Random) -> ReceiptScene:
    date = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    total = f"{rng.randint(100, 999)}.{rng.choice((0, 50, rng.randint(0, 99))):02d}"
    return ReceiptScene(rng.randrange(len(MERCHANTS)), date, rng.randrange(len(CATEGORIES)), total)


def _text_offset(rng: random.Random) -> tuple[int, int]:
    return (rng.randint(-10, 10), rng.randint(-10, 10))
