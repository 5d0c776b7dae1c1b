"""The second renderer: deterministic, disjoint from training (pictures, wording and code), its answers in
the answer vocabulary and true of its pictures, its conversations shaped as the web page's."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import math
import re
import unicodedata
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.demo.dataset import Split, samples
from services.demo.questions import LANGUAGES, TEMPLATES, QuestionKind, in_answer_vocabulary
from services.demo.scene import COLOURS, SHAPES
from services.demo.second_renderer.conversations import PictureConversation, balanced_conversations
from services.demo.second_renderer.drawing import render
from services.demo.second_renderer.pictures import (
    LARGEST_SIDE,
    SHADES,
    SMALLEST_SIDE,
    Canvas,
    FiguresPicture,
    ReceiptPicture,
    TextPicture,
    Texture,
)
from services.demo.second_renderer.questions import NAMED_PARAPHRASES, PARAPHRASES
from services.demo.training_mix import conversations as training_conversations
from services.demo.varied_questions import NAMED_TEMPLATES, VARIED_TEMPLATES

SECOND_RENDERER = Path(__file__).parents[2] / "services" / "demo" / "second_renderer"
SEEDS = (0, 1)


def _digest(image: Image.Image) -> str:
    return hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def conversations() -> dict[int, list[PictureConversation]]:
    return {seed: balanced_conversations(3, seed) for seed in SEEDS}


class TestDeterminism:
    """The same seed gives the same questions and the same pixels; another seed gives others."""

    def test_same_seed_same_conversations_and_pixels(self, conversations: dict[int, list[PictureConversation]]) -> None:
        again = balanced_conversations(3, 0)
        assert again == conversations[0]
        assert [_digest(c.image) for c in again] == [_digest(c.image) for c in conversations[0]]

    def test_another_seed_draws_other_pictures(self, conversations: dict[int, list[PictureConversation]]) -> None:
        assert not {c.picture for c in conversations[0]} & {c.picture for c in conversations[1]}

    def test_a_smaller_set_is_a_prefix_of_each_group(self) -> None:
        small, large = balanced_conversations(2, 0), balanced_conversations(3, 0)
        assert small == [c for group in range(len(small) // 2) for c in large[group * 3 : group * 3 + 2]]


def _normalised(question: str) -> str:
    folded = unicodedata.normalize("NFKC", question).casefold()  # full-width ？ becomes ?
    return re.sub(r"[\s?.!,]", "", folded.replace("color", "colour"))


class TestDisjointFromTraining:
    """No picture equals one training draws from the same seeds, no question is a training question (up to
    case, spelling and punctuation), and no code is training's drawing."""

    def test_no_picture_is_a_training_render(self, conversations: dict[int, list[PictureConversation]]) -> None:
        training = {
            _digest(sample.image)
            for seed in SEEDS
            for stream in (samples(Split.TRAIN, seed), training_conversations(Split.TRAIN, seed, list(QuestionKind)))
            for sample in islice(stream, 300)
        }
        ours = {_digest(c.image) for seed in SEEDS for c in conversations[seed]}
        assert training and len(ours) == sum(map(len, conversations.values()))
        assert not training & ours

    def test_no_question_is_worded_as_in_training(self) -> None:
        trained = {
            _normalised(text)
            for table in (TEMPLATES, VARIED_TEMPLATES, NAMED_TEMPLATES)
            for kind in table.values()
            for texts in kind.values()
            for text in texts
        }
        ours = [
            text
            for table in (PARAPHRASES, NAMED_PARAPHRASES)
            for by in table.values()
            for t in by.values()
            for text in t
        ]
        assert all(_normalised(text) not in trained for text in ours), [t for t in ours if _normalised(t) in trained]

    def test_the_drawing_code_is_not_trainings(self) -> None:
        imported = {
            node.module
            for path in SECOND_RENDERER.glob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
        }
        training = {"services.demo.drawing", "services.demo.dataset", "services.demo.varied_drawing"}
        assert not imported & training


class TestWording:
    def test_chinese_comes_with_and_without_the_picture_named_and_in_full_width(self) -> None:
        chinese = [text for by in PARAPHRASES.values() for text in by["zh"]]
        assert any("图中" in t or "这张图" in t for t in chinese) and any("图" not in t for t in chinese)
        assert {t[-1] for t in chinese} >= {"？", "?"} and any(t[-1] not in "？?" for t in chinese)

    def test_every_kind_is_asked_in_both_languages(self) -> None:
        assert all(set(PARAPHRASES[kind]) == set(LANGUAGES) for kind in QuestionKind)


class TestAnswers:
    def test_every_answer_is_in_the_answer_vocabulary(
        self, conversations: dict[int, list[PictureConversation]]
    ) -> None:
        answers = [q.answer for seed in SEEDS for c in conversations[seed] for q in c.questions]
        assert answers and all(in_answer_vocabulary(answer) for answer in answers), answers

    def test_a_named_figure_is_the_one_the_answer_describes(self) -> None:
        """ "What colour is the circle?" is answered by the circle's colour, "Which shape is red?" by the red
        figure's shape; a picture of one kind of figure is asked without naming one."""
        pictures = [c for c in balanced_conversations(6, 0) if isinstance(c.picture, FiguresPicture)]
        asked = [(c.picture, q) for c in pictures for q in c.questions if q.kind is not QuestionKind.COUNT]
        assert any(picture.mixed for picture, _ in asked) and not all(picture.mixed for picture, _ in asked)
        for picture, question in asked:
            which = LANGUAGES.index(question.language)
            shapes = [SHAPES[figure.shape][which] for figure in picture.figures]
            colours = [COLOURS[figure.colour][which] for figure in picture.figures]
            named_by, answered_by = (shapes, colours) if question.kind is QuestionKind.COLOUR else (colours, shapes)
            named = [i for i, name in enumerate(named_by) if _names(question.text, name)]
            if picture.mixed:
                assert len(named) == 1 and answered_by[named[0]] == question.answer, (picture, question)
            else:
                assert not named and set(answered_by) == {question.answer}


def _names(text: str, name: str) -> bool:
    return re.search(rf"\b{name}\b", text) is not None if name.isascii() else name in text


def _plain(canvas: Canvas) -> Canvas:
    return Canvas(canvas.width, canvas.height, canvas.background, Texture.PLAIN, 0, 0.0, None)


class TestPictures:
    """What the spec says is what is drawn: canvas sizes in range, figures inside and apart, filled figures
    in their shade at their centre, text and receipts on the canvas."""

    def test_figures_lie_on_the_canvas_apart_and_in_their_colour(self) -> None:
        pictures = [c.picture for c in balanced_conversations(5, 0) if isinstance(c.picture, FiguresPicture)]
        for picture in pictures:
            canvas = picture.canvas
            assert SMALLEST_SIDE <= min(canvas.width, canvas.height) <= max(canvas.width, canvas.height) <= LARGEST_SIDE
            for i, figure in enumerate(picture.figures):
                x, y = figure.centre
                assert figure.radius <= x <= canvas.width - figure.radius
                assert figure.radius <= y <= canvas.height - figure.radius
                assert any(max(map(abs, np.subtract(figure.rgb, shade))) <= 8 for shade in SHADES[figure.colour])
                for other in picture.figures[i + 1 :]:
                    assert math.dist(figure.centre, other.centre) > figure.radius + other.radius
            plain = np.asarray(render(FiguresPicture(_plain(canvas), picture.figures))).astype(int)
            for figure in picture.figures:
                if not figure.outline:
                    x, y = (round(value) for value in figure.centre)
                    assert np.abs(plain[y, x] - np.array(figure.rgb)).max() <= 2, (picture, figure)

    def test_text_and_receipts_are_drawn_and_differ_with_their_content(self) -> None:
        chosen = [c.picture for c in balanced_conversations(2, 0) if not isinstance(c.picture, FiguresPicture)]
        for picture in chosen:
            image = np.asarray(render(picture))
            assert image.shape[:2] == (picture.canvas.height, picture.canvas.width)
            assert image.std() > 5  # something is drawn on the background
        text = next(p for p in chosen if isinstance(p, TextPicture))
        receipt = next(p for p in chosen if isinstance(p, ReceiptPicture))
        for picture, changed in ((text, {"text": "47"}), (receipt, {"total": "123.45"})):
            assert _digest(render(picture)) != _digest(render(dataclasses.replace(picture, **changed)))
