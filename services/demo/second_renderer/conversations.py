"""The second renderer's evaluation set: conversations of two or three questions about one picture, the same
number opening with each kind in each language, deterministic from a seed.

A follow-up asks about a kind the conversation has not asked yet where the picture answers one (a colour,
then a count), otherwise the same kind in the other language (a number); its language is drawn afresh, so
conversations mix languages as the web page's users do."""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image

from services.demo.questions import LANGUAGES, Question, QuestionKind
from services.demo.second_renderer.drawing import render
from services.demo.second_renderer.pictures import Picture, random_figures, random_receipt, random_text
from services.demo.second_renderer.questions import ask, kinds_for

MIXED_SHARE = 1 / 3  # of the pictures of figures: two or three of different shapes and colours
FIGURE_KINDS = (QuestionKind.COLOUR, QuestionKind.SHAPE, QuestionKind.COUNT)


@dataclass(frozen=True)
class PictureConversation:
    picture: Picture
    questions: tuple[Question, ...]

    @property
    def image(self) -> Image.Image:
        return render(self.picture)


def balanced_conversations(per_group: int, seed: int = 0) -> list[PictureConversation]:
    """`per_group` conversations opening with each (kind, language); a smaller set is a prefix of each group
    of a larger one."""
    chosen: list[PictureConversation] = []
    for kind in QuestionKind:
        for language in LANGUAGES:
            rng = random.Random(f"flashvqa-second-renderer:{seed}:{kind.value}:{language}")
            chosen += [conversation(random_picture(kind, rng), kind, language, rng) for _ in range(per_group)]
    return chosen


def random_picture(kind: QuestionKind, rng: random.Random) -> Picture:
    if kind in FIGURE_KINDS:
        return random_figures(rng, mixed=rng.random() < MIXED_SHARE)
    if kind in (QuestionKind.NUMBER, QuestionKind.WORD):
        return random_text(rng, number=kind is QuestionKind.NUMBER)
    return random_receipt(rng)


def conversation(picture: Picture, kind: QuestionKind, language: str, rng: random.Random) -> PictureConversation:
    questions = [ask(picture, kind, language, rng)]
    for _ in range(rng.randint(1, 2)):
        asked = {(question.kind, question.language) for question in questions}
        fresh = [k for k in kinds_for(picture) if k not in {question.kind for question in questions}]
        if fresh:
            questions.append(ask(picture, rng.choice(fresh), rng.choice(LANGUAGES), rng))
            continue
        unasked = [(k, lang) for k in kinds_for(picture) for lang in LANGUAGES if (k, lang) not in asked]
        if not unasked:  # a number or a word, asked in both languages
            break
        questions.append(ask(picture, *rng.choice(unasked), rng))
    return PictureConversation(picture, tuple(questions))
