"""Questions about a scene, in English and Chinese, with the one exact answer the scene implies."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum

from services.demo.scene import (
    COLOURS,
    MAX_NUMBER,
    SHAPES,
    WORDS,
    ReceiptScene,
    Scene,
    ShapesScene,
    TextScene,
)


class QuestionKind(StrEnum):
    COLOUR = "colour"
    SHAPE = "shape"
    COUNT = "count"
    NUMBER = "number"
    WORD = "word"
    TOTAL = "total"
    TRAVEL = "travel"


LANGUAGES = ("en", "zh")

# The classic wordings: the held-out set asks these, and training does too (`varied_questions` adds more).
TEMPLATES: dict[QuestionKind, dict[str, tuple[str, ...]]] = {
    QuestionKind.COLOUR: {
        "en": ("What colour is the shape?", "What color are the shapes?"),
        "zh": ("图形是什么颜色?",),
    },
    QuestionKind.SHAPE: {"en": ("What shape is this?", "Which shape is shown?"), "zh": ("这是什么形状?",)},
    QuestionKind.COUNT: {"en": ("How many shapes are there?", "How many are there?"), "zh": ("图中有几个图形?",)},
    QuestionKind.NUMBER: {"en": ("What number is shown?", "Which number is this?"), "zh": ("图中是什么数字?",)},
    QuestionKind.WORD: {"en": ("What word is written?",), "zh": ("图中写的是什么单词?",)},
    QuestionKind.TOTAL: {"en": ("What is the total?", "What is the total amount?"), "zh": ("总金额是多少?",)},
    QuestionKind.TRAVEL: {"en": ("Is this a travel expense?",), "zh": ("这是差旅费吗?",)},
}
YES_NO = {"en": ("yes", "no"), "zh": ("是", "否")}
# What the model answers when the picture cannot answer the question (fogged, or nothing of what is asked).
CANT_TELL = {"en": "I can't tell", "zh": "看不清"}

# Every answer training teaches, totals aside: those are any amount in the receipt's one layout, `ddd.dd`.
_ANSWERS = frozenset(
    [name for english, chinese, _ in COLOURS for name in (english, chinese)]
    + [name for names in SHAPES for name in names]
    + [str(number) for number in range(MAX_NUMBER + 1)]  # counts included
    + list(WORDS)
    + [word for words in YES_NO.values() for word in words]
    + list(CANT_TELL.values())
)
_TOTAL = re.compile(r"[1-9][0-9]{2}\.[0-9]{2}")


@dataclass(frozen=True)
class Question:
    kind: QuestionKind
    language: str
    text: str
    answer: str


def kinds_for(scene: Scene) -> tuple[QuestionKind, ...]:
    """The question kinds a scene can answer."""
    if isinstance(scene, ShapesScene):
        return (QuestionKind.COLOUR, QuestionKind.SHAPE, QuestionKind.COUNT)
    if isinstance(scene, TextScene):
        return (QuestionKind.NUMBER,) if scene.is_number else (QuestionKind.WORD,)
    return (QuestionKind.TOTAL, QuestionKind.TRAVEL)


def ask(scene: Scene, kind: QuestionKind, language: str, rng: random.Random) -> Question:
    assert kind in kinds_for(scene) and language in LANGUAGES, (scene, kind, language)
    text = rng.choice(TEMPLATES[kind][language])
    return Question(kind, language, text, answer(scene, kind, language))


def answer(scene: Scene, kind: QuestionKind, language: str) -> str:
    """The exact expected answer: a word or a number, no punctuation."""
    in_english = language == "en"
    if isinstance(scene, ShapesScene):
        if kind is QuestionKind.COLOUR:
            colour_en, colour_zh, _ = COLOURS[scene.colour]
            return colour_en if in_english else colour_zh
        if kind is QuestionKind.SHAPE:
            shape_en, shape_zh = SHAPES[scene.shape]
            return shape_en if in_english else shape_zh
        return str(scene.count)
    if isinstance(scene, TextScene):
        return scene.text
    assert isinstance(scene, ReceiptScene)
    if kind is QuestionKind.TOTAL:
        return scene.total
    yes, no = YES_NO[language]
    return yes if scene.is_travel else no


def in_answer_vocabulary(reply: str) -> bool:
    """Whether a reply (surrounding space aside) is one of the answers training teaches: one that is not is
    a piece of a word, a made-up one or a sentence."""
    reply = reply.strip()
    return reply in _ANSWERS or _TOTAL.fullmatch(reply) is not None
