"""Questions about training's varied pictures: more wordings in both languages than the classic ones, with
ASCII, full-width or no question marks, questions that name one figure of a mixed picture, and questions
the picture cannot answer, answered "I can't tell" / "看不清".

None of these wordings is the second renderer's (`second_renderer.questions`), which evaluation keeps for
itself; its tests check that."""

from __future__ import annotations

import random

from services.demo.questions import CANT_TELL, LANGUAGES, TEMPLATES, YES_NO, Question, QuestionKind
from services.demo.scene import COLOURS, SHAPES
from services.demo.varied_scene import VariedReceipt, VariedScene, VariedShapes, VariedText

VARIED_TEMPLATES: dict[QuestionKind, dict[str, tuple[str, ...]]] = {
    QuestionKind.COLOUR: {
        "en": (
            "What colour is this?",
            "Tell me the colour.",
            "What colour is the figure?",
            "Which colour are the shapes?",
            "What colour do you see?",
            "What is the colour of the shape?",
        ),
        "zh": (
            "这个是什么颜色?",
            "图里的图形是什么颜色?",
            "这张图中的图形是什么颜色?",
            "请问是什么颜色",
            "形状的颜色是什么?",
            "图形是啥颜色?",
        ),
    },
    QuestionKind.SHAPE: {
        "en": (
            "What shape is that?",
            "Name the shape.",
            "What kind of shape is this?",
            "Which shape is drawn here?",
            "What shape do you see?",
            "What shape are they?",
        ),
        "zh": (
            "这个是什么形状?",
            "图里画的是什么形状?",
            "这张图中是什么图形?",
            "请问这是什么形状",
            "画的是什么图形?",
            "图形是啥形状?",
        ),
    },
    QuestionKind.COUNT: {
        "en": (
            "How many shapes are drawn?",
            "How many figures are there?",
            "Count them.",
            "How many shapes can you see?",
            "What is the number of shapes?",
            "how many shapes",
        ),
        "zh": (
            "图里有几个图形?",
            "一共有几个形状?",
            "这张图中有几个图形?",
            "数一下有多少个图形",
            "有多少个形状?",
            "几个图形?",
        ),
    },
    QuestionKind.NUMBER: {
        "en": (
            "What number is written?",
            "Read the number.",
            "Which number is in the picture?",
            "What is this number?",
            "What number do you see?",
            "what number",
        ),
        "zh": (
            "图里是什么数字?",
            "这个数字是多少?",
            "这张图中的数字是几?",
            "请读出数字",
            "写的是几?",
            "数字是多少?",
        ),
    },
    QuestionKind.WORD: {
        "en": (
            "What is written here?",
            "Read the text.",
            "Which word is shown?",
            "What word is this?",
            "What does the picture say?",
            "what word",
        ),
        "zh": (
            "图里写的是什么?",
            "这是哪个单词?",
            "这张图中写的是什么单词?",
            "请读出这个词",
            "写的是什么词?",
            "单词是什么?",
        ),
    },
    QuestionKind.TOTAL: {
        "en": (
            "What's the total?",
            "How much is it in total?",
            "What is the amount to pay?",
            "Total?",
            "What does the receipt total?",
            "How much did it cost?",
        ),
        "zh": (
            "总共多少钱?",
            "金额合计是多少?",
            "这张收据一共多少钱?",
            "应付多少?",
            "总额是多少?",
            "收据上的总金额是多少?",
        ),
    },
    QuestionKind.TRAVEL: {
        "en": (
            "Is it a travel expense?",
            "Is this travel?",
            "Does this count as a travel expense?",
            "Can this be claimed as travel?",
            "Is this receipt for travel?",
            "travel expense?",
        ),
        "zh": (
            "这是差旅吗?",
            "这张收据算差旅费吗?",
            "这是出差费用吗?",
            "能报差旅费吗?",
            "是差旅费吗?",
            "这属于差旅费吗?",
        ),
    },
}
# On a mixed picture a colour question names a shape, a shape question a colour.
NAMED_TEMPLATES: dict[QuestionKind, dict[str, tuple[str, ...]]] = {
    QuestionKind.COLOUR: {
        "en": (
            "Tell me the colour of the {shape}.",
            "What is the colour of the {shape}?",
            "The {shape} is which colour?",
            "What colour has the {shape}?",
        ),
        "zh": (
            "{shape}的颜色是什么?",
            "图里的{shape}是什么颜色?",
            "请问{shape}是什么颜色",
            "这张图中{shape}是啥颜色?",
        ),
    },
    QuestionKind.SHAPE: {
        "en": (
            "What shape is {colour}?",
            "What is the {colour} shape?",
            "Which figure is {colour}?",
            "What shape is coloured {colour}?",
        ),
        "zh": (
            "{colour}的图形是什么形状?",
            "图里{colour}的是什么形状?",
            "哪个形状是{colour}的?",
            "这张图中{colour}的是什么图形?",
        ),
    },
}
UNANSWERABLE_SHARE = 0.08  # of the questions: asked of a picture that does not show what they ask about
# What each kind of picture cannot answer: a receipt's questions of a drawing, a drawing's of text.
_OFF_KINDS: dict[type, tuple[QuestionKind, ...]] = {
    VariedShapes: (QuestionKind.TOTAL, QuestionKind.TRAVEL, QuestionKind.NUMBER, QuestionKind.WORD),
    VariedText: (QuestionKind.TOTAL, QuestionKind.TRAVEL, QuestionKind.SHAPE),
    VariedReceipt: (QuestionKind.SHAPE,),
}


def varied_kinds_for(scene: VariedScene) -> tuple[QuestionKind, ...]:
    if isinstance(scene, VariedShapes):
        return (QuestionKind.COLOUR, QuestionKind.SHAPE, QuestionKind.COUNT)
    if isinstance(scene, VariedText):
        return (QuestionKind.NUMBER,) if scene.is_number else (QuestionKind.WORD,)
    return (QuestionKind.TOTAL, QuestionKind.TRAVEL)


def ask_varied(scene: VariedScene, kind: QuestionKind, language: str, rng: random.Random) -> Question:
    """A question of `kind` the picture answers (or, fogged, answers "I can't tell"), in any wording."""
    assert kind in varied_kinds_for(scene) and language in LANGUAGES, (scene, kind, language)
    if isinstance(scene, VariedShapes) and scene.mixed and kind is not QuestionKind.COUNT:
        return _named(scene, kind, language, rng, absent=False)
    text = _punctuated(rng.choice(VARIED_TEMPLATES[kind][language] + TEMPLATES[kind][language]), rng)
    answer = CANT_TELL[language] if scene.look.fogged else _answer(scene, kind, language)
    return Question(kind, language, text, answer)


def ask_unanswerable(scene: VariedScene, language: str, rng: random.Random) -> Question:
    """A question the picture shows nothing of: another kind of picture's, or (mixed) about a figure it
    does not have. Its answer is "I can't tell"."""
    if isinstance(scene, VariedShapes) and scene.mixed and rng.random() < 0.5:
        return _named(scene, rng.choice((QuestionKind.COLOUR, QuestionKind.SHAPE)), language, rng, absent=True)
    kind = rng.choice(_OFF_KINDS[type(scene)])
    text = _punctuated(rng.choice(VARIED_TEMPLATES[kind][language] + TEMPLATES[kind][language]), rng)
    return Question(kind, language, text, CANT_TELL[language])


def _named(scene: VariedShapes, kind: QuestionKind, language: str, rng: random.Random, absent: bool) -> Question:
    which = LANGUAGES.index(language)
    if absent:
        drawn = {figure.shape for figure in scene.figures} if kind is QuestionKind.COLOUR else set()
        drawn |= {figure.colour for figure in scene.figures} if kind is QuestionKind.SHAPE else set()
        pool = SHAPES if kind is QuestionKind.COLOUR else COLOURS
        named = rng.choice([index for index in range(len(pool)) if index not in drawn])
        answer = CANT_TELL[language]
    else:
        figure = rng.choice(scene.figures)
        named = figure.shape if kind is QuestionKind.COLOUR else figure.colour
        colour_name, shape_name = COLOURS[figure.colour][which], SHAPES[figure.shape][which]
        answer = str(colour_name if kind is QuestionKind.COLOUR else shape_name)
    if scene.look.fogged:
        answer = CANT_TELL[language]
    template = rng.choice(NAMED_TEMPLATES[kind][language])
    text = (
        template.format(shape=SHAPES[named][which])
        if kind is QuestionKind.COLOUR
        else template.format(colour=COLOURS[named][which])
    )
    return Question(kind, language, _punctuated(text, rng), answer)


def _answer(scene: VariedScene, kind: QuestionKind, language: str) -> str:
    which = LANGUAGES.index(language)
    if isinstance(scene, VariedShapes):
        figure = scene.figures[0]
        if kind is QuestionKind.COLOUR:
            return str(COLOURS[figure.colour][which])
        return SHAPES[figure.shape][which] if kind is QuestionKind.SHAPE else str(scene.count)
    if isinstance(scene, VariedText):
        return scene.text
    if kind is QuestionKind.TOTAL:
        return scene.total
    yes, no = YES_NO[language]
    return yes if scene.is_travel else no


def _punctuated(text: str, rng: random.Random) -> str:
    """The question as people type it: with its question mark, a full-width one, or none."""
    if not text.endswith("?"):
        return text
    return rng.choice((text, text, text[:-1] + "？", text[:-1]))
