"""Questions about a second-renderer picture, worded unlike training's (`services.demo.questions.TEMPLATES`):
other phrasings in English and Chinese, with and without 图中 / 这张图, with ASCII, full-width or no question
marks. Answers are training's: the same kinds, names and forms, so one answer vocabulary scores both."""

from __future__ import annotations

import random

from services.demo.questions import LANGUAGES, YES_NO, Question, QuestionKind
from services.demo.scene import COLOURS, SHAPES
from services.demo.second_renderer.pictures import Figure, FiguresPicture, Picture, ReceiptPicture, TextPicture

PARAPHRASES: dict[QuestionKind, dict[str, tuple[str, ...]]] = {
    QuestionKind.COLOUR: {
        "en": ("Which colour is it?", "What color is this shape?", "What colour are these?", "what colour is it"),
        "zh": ("这是什么颜色？", "图中的图形是什么颜色？", "这张图里的形状是什么颜色?", "它是什么颜色"),
    },
    QuestionKind.SHAPE: {
        "en": ("What shape is it?", "Which shape do you see?", "What is this shape called?", "what shape is drawn"),
        "zh": ("这是什么图形？", "图中是什么形状？", "这张图里画的是什么形状?", "它是什么形状"),
    },
    QuestionKind.COUNT: {
        "en": ("How many shapes do you see?", "How many shapes are in the picture?", "Count the shapes.", "how many?"),
        "zh": ("有几个图形？", "这张图里有多少个图形?", "图中一共有几个形状？", "数一数有几个图形"),
    },
    QuestionKind.NUMBER: {
        "en": ("What number is this?", "Which number do you see?", "What is the number in the picture?", "read it"),
        "zh": ("这是什么数字？", "这张图上的数字是多少?", "图里写的数字是几？", "这是几"),
    },
    QuestionKind.WORD: {
        "en": ("What does it say?", "Which word is this?", "Read the word.", "what word do you see"),
        "zh": ("这是什么单词？", "这张图上写的是什么词?", "图中的英文单词是什么？", "上面写着什么"),
    },
    QuestionKind.TOTAL: {
        "en": ("How much is the total?", "What's the total on this receipt?", "How much was paid?", "total amount?"),
        "zh": ("这张收据的总金额是多少？", "一共多少钱?", "图中的总额是多少？", "合计多少"),
    },
    QuestionKind.TRAVEL: {
        "en": ("Is this a travel cost?", "Does this count as travel?", "Is it a business travel expense?", "travel?"),
        "zh": ("这是差旅费用吗？", "这张收据是差旅费吗?", "这算差旅费吗？", "是出差的费用吗"),
    },
}
# On a picture of figures of different shapes and colours, a colour question names the shape and a shape
# question the colour: "What colour is the circle?".
NAMED_PARAPHRASES: dict[QuestionKind, dict[str, tuple[str, ...]]] = {
    QuestionKind.COLOUR: {
        "en": (
            "What colour is the {shape}?",
            "What color is the {shape}?",
            "Which colour is the {shape} in the picture?",
        ),
        "zh": ("{shape}是什么颜色？", "图中的{shape}是什么颜色?", "这张图里{shape}是什么颜色"),
    },
    QuestionKind.SHAPE: {
        "en": ("Which shape is {colour}?", "What shape is the {colour} one?", "Which shape is coloured {colour}?"),
        "zh": ("{colour}的是什么形状？", "图中{colour}的图形是什么形状?", "这张图里{colour}的是什么图形"),
    },
}


def kinds_for(picture: Picture) -> tuple[QuestionKind, ...]:
    if isinstance(picture, FiguresPicture):
        return (QuestionKind.COLOUR, QuestionKind.SHAPE, QuestionKind.COUNT)
    if isinstance(picture, TextPicture):
        return (QuestionKind.NUMBER,) if picture.is_number else (QuestionKind.WORD,)
    return (QuestionKind.TOTAL, QuestionKind.TRAVEL)


def ask(picture: Picture, kind: QuestionKind, language: str, rng: random.Random) -> Question:
    assert kind in kinds_for(picture) and language in LANGUAGES, (picture, kind, language)
    if isinstance(picture, FiguresPicture):
        return _ask_about_figures(picture, kind, language, rng)
    text = rng.choice(PARAPHRASES[kind][language])
    if isinstance(picture, TextPicture):
        return Question(kind, language, text, picture.text)
    assert isinstance(picture, ReceiptPicture)
    if kind is QuestionKind.TOTAL:
        return Question(kind, language, text, picture.total)
    yes, no = YES_NO[language]
    return Question(kind, language, text, yes if picture.is_travel else no)


def _ask_about_figures(picture: FiguresPicture, kind: QuestionKind, language: str, rng: random.Random) -> Question:
    if kind is QuestionKind.COUNT:
        return Question(kind, language, rng.choice(PARAPHRASES[kind][language]), str(len(picture.figures)))
    figure: Figure = rng.choice(picture.figures)
    colour_en, colour_zh, _ = COLOURS[figure.colour]
    shape_en, shape_zh = SHAPES[figure.shape]
    colour, shape = (colour_en, shape_en) if language == "en" else (colour_zh, shape_zh)
    if not picture.mixed:
        text = rng.choice(PARAPHRASES[kind][language])
    elif kind is QuestionKind.COLOUR:
        text = rng.choice(NAMED_PARAPHRASES[kind][language]).format(shape=shape)
    else:
        text = rng.choice(NAMED_PARAPHRASES[kind][language]).format(colour=colour)
    return Question(kind, language, text, colour if kind is QuestionKind.COLOUR else shape)
