"""Training's varied conversations: deterministic, never a held-out picture, every answer true of its
picture and in the answer vocabulary, "I can't tell" exactly where the picture cannot answer, and the
pictures drawn as their specs say."""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import replace
from itertools import islice

import numpy as np
import pytest
from PIL import Image

from services.demo.dataset import Sample, Split, split_of
from services.demo.questions import CANT_TELL, LANGUAGES, TEMPLATES, QuestionKind, in_answer_vocabulary
from services.demo.scene import COLOURS, SHAPES
from services.demo.training_mix import conversations
from services.demo.varied_drawing import render_varied
from services.demo.varied_questions import NAMED_TEMPLATES, VARIED_TEMPLATES, varied_kinds_for
from services.demo.varied_scene import NARROWEST, WIDEST, Backdrop, VariedReceipt, VariedShapes, VariedText

ALL_KINDS = list(QuestionKind)


def _digest(image: Image.Image) -> str:
    return hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def drawn() -> list[Sample]:
    return list(islice(conversations(Split.TRAIN, 0, ALL_KINDS, classic_share=0.0), 600))


class TestDeterminism:
    def test_same_seed_same_conversations_and_pixels(self, drawn: list[Sample]) -> None:
        again = list(islice(conversations(Split.TRAIN, 0, ALL_KINDS, classic_share=0.0), 40))
        assert again == drawn[:40]
        assert [_digest(s.image) for s in again] == [_digest(s.image) for s in drawn[:40]]

    def test_another_seed_draws_other_conversations(self, drawn: list[Sample]) -> None:
        other = list(islice(conversations(Split.TRAIN, 1, ALL_KINDS, classic_share=0.0), 40))
        assert not {s.scene for s in other} & {s.scene for s in drawn}


def test_never_a_held_out_picture_and_held_out_draws_only_held_out() -> None:
    mixed = list(islice(conversations(Split.TRAIN, 0, ALL_KINDS), 400))
    assert all(split_of(s.scene) is Split.TRAIN for s in mixed)
    assert 0.15 < sum(not isinstance(s.scene, VariedShapes | VariedText | VariedReceipt) for s in mixed) / 400 < 0.45
    heldout = list(islice(conversations(Split.HELDOUT, 0, ALL_KINDS), 40))
    assert all(split_of(s.scene) is Split.HELDOUT for s in heldout)


class TestConversations:
    def test_one_to_three_turns_mixing_languages_each_turn_a_new_question(self, drawn: list[Sample]) -> None:
        lengths = Counter(len(s.questions) for s in drawn)
        assert set(lengths) == {1, 2, 3} and lengths[1] < len(drawn) / 2
        assert any(len({q.language for q in s.questions}) == 2 for s in drawn)
        for sample in drawn:
            asked = [(q.kind, q.language) for q in sample.questions if q.answer not in CANT_TELL.values()]
            assert len(asked) == len(set(asked)), sample.questions

    def test_answered_questions_keep_to_the_kinds_in_the_mix(self) -> None:
        early = list(islice(conversations(Split.TRAIN, 0, [QuestionKind.COLOUR, QuestionKind.SHAPE]), 200))
        answered = {q.kind for s in early for q in s.questions if q.answer not in CANT_TELL.values()}
        assert answered == {QuestionKind.COLOUR, QuestionKind.SHAPE}


class TestAnswers:
    def test_every_answer_is_in_the_vocabulary(self, drawn: list[Sample]) -> None:
        answers = [q.answer for s in drawn for q in s.questions]
        assert all(in_answer_vocabulary(a) for a in answers), [a for a in answers if not in_answer_vocabulary(a)]

    def test_answers_are_true_of_the_picture(self, drawn: list[Sample]) -> None:
        for sample in drawn:
            scene = sample.scene
            for question in sample.questions:
                if question.answer in CANT_TELL.values():
                    continue
                which = LANGUAGES.index(question.language)
                if isinstance(scene, VariedShapes):
                    colours = {COLOURS[f.colour][which] for f in scene.figures}
                    shapes = {SHAPES[f.shape][which] for f in scene.figures}
                    expected = {QuestionKind.COLOUR: colours, QuestionKind.SHAPE: shapes}.get(
                        question.kind, {str(scene.count)}
                    )
                    assert question.answer in expected, (scene, question)
                elif isinstance(scene, VariedText):
                    assert question.answer == scene.text
                else:
                    assert isinstance(scene, VariedReceipt)
                    assert question.answer in (
                        {scene.total}
                        if question.kind is QuestionKind.TOTAL
                        else {"yes", "是"}
                        if scene.is_travel
                        else {"no", "否"}
                    )

    def test_a_named_figure_is_the_one_the_answer_describes(self, drawn: list[Sample]) -> None:
        """On a mixed picture "What is the colour of the circle?" is answered by the circle's colour, and a
        figure the picture does not have by "I can't tell"."""
        named_questions = 0
        for sample in drawn:
            scene = sample.scene
            if not (isinstance(scene, VariedShapes) and scene.mixed) or scene.look.fogged:
                continue
            for question in sample.questions:
                if question.kind not in (QuestionKind.COLOUR, QuestionKind.SHAPE):
                    continue
                which = LANGUAGES.index(question.language)
                shapes = [SHAPES[f.shape][which] for f in scene.figures]
                colours = [COLOURS[f.colour][which] for f in scene.figures]
                by, answered = (SHAPES, colours) if question.kind is QuestionKind.COLOUR else (COLOURS, shapes)
                named = [names[which] for names in by if _names(question.text, names[which])]
                assert len(named) == 1, question
                drawn_names = shapes if question.kind is QuestionKind.COLOUR else colours
                if named[0] in drawn_names:
                    assert question.answer == answered[drawn_names.index(named[0])]
                else:
                    assert question.answer == CANT_TELL[question.language]
                named_questions += 1
        assert named_questions > 20

    def test_cant_tell_exactly_where_the_picture_cannot_answer(self, drawn: list[Sample]) -> None:
        fogged = [s for s in drawn if s.scene.look.fogged]  # type: ignore[union-attr]
        assert fogged and all(q.answer in CANT_TELL.values() for s in fogged for q in s.questions)
        off_kind = [
            (s, q)
            for s in drawn
            for q in s.questions
            if q.kind not in varied_kinds_for(s.scene)  # type: ignore[arg-type]
        ]
        assert off_kind and all(q.answer == CANT_TELL[q.language] for _, q in off_kind)
        share = sum(q.answer in CANT_TELL.values() for s in drawn for q in s.questions) / sum(
            len(s.questions) for s in drawn
        )
        assert 0.03 < share < 0.2  # now and then: most questions are answerable


def _names(text: str, name: str) -> bool:
    return re.search(rf"\b{name}\b", text) is not None if name.isascii() else name in text


class TestWording:
    def test_more_wordings_than_the_classic_ones_in_both_languages(self) -> None:
        for kind in QuestionKind:
            for language in LANGUAGES:
                assert len(VARIED_TEMPLATES[kind][language]) >= 4
                assert not set(VARIED_TEMPLATES[kind][language]) & set(TEMPLATES[kind][language])
        assert set(NAMED_TEMPLATES) == {QuestionKind.COLOUR, QuestionKind.SHAPE}

    def test_questions_come_with_ascii_full_width_and_no_question_marks(self, drawn: list[Sample]) -> None:
        endings = Counter(q.text[-1] for s in drawn for q in s.questions)
        assert endings["?"] and endings["？"] and sum(v for k, v in endings.items() if k not in "?？")
        chinese = [q.text for s in drawn for q in s.questions if q.language == "zh"]
        assert any("图中" in t or "这张图" in t for t in chinese) and any("图" not in t for t in chinese)


def _flat(sample: Sample) -> VariedShapes:
    scene = sample.scene
    assert isinstance(scene, VariedShapes)
    return replace(scene, look=replace(scene.look, backdrop=Backdrop.FLAT, blur=0.0, jpeg_quality=None, fogged=False))


class TestPictures:
    def test_canvases_vary_in_size_and_aspect_within_the_processors_range(self, drawn: list[Sample]) -> None:
        sizes = [(s.scene.look.width, s.scene.look.height) for s in drawn]  # type: ignore[union-attr]
        assert all(NARROWEST <= min(size) <= max(size) <= WIDEST for size in sizes)
        assert len(set(sizes)) > len(sizes) / 2 and max(map(max, sizes)) > 400
        assert any(w > 1.4 * h for w, h in sizes) and any(h > 1.4 * w for w, h in sizes)
        assert [s.image.size for s in drawn[:30]] == sizes[:30]

    def test_figures_lie_inside_apart_and_in_their_shade(self, drawn: list[Sample]) -> None:
        shapes = [s for s in drawn if isinstance(s.scene, VariedShapes)]
        radii = [f.size for s in shapes for f in s.scene.figures]  # type: ignore[union-attr]
        assert min(radii) < 15 and max(radii) > 80  # small to filling the picture
        for sample in shapes[:60]:
            scene = _flat(sample)
            for i, figure in enumerate(scene.figures):
                assert figure.size <= figure.x <= scene.look.width - figure.size
                assert figure.size <= figure.y <= scene.look.height - figure.size
                for other in scene.figures[i + 1 :]:
                    assert math.dist((figure.x, figure.y), (other.x, other.y)) > figure.size + other.size
            pixels = np.asarray(render_varied(scene)).astype(int)
            for figure in scene.figures:
                if not figure.line and SHAPES[figure.shape][0] != "star":
                    centre = pixels[round(figure.y), round(figure.x)]
                    assert np.abs(centre - np.array(figure.rgb)).max() <= 2, (scene, figure)

    def test_a_fogged_picture_shows_nothing(self, drawn: list[Sample]) -> None:
        sample = next(s for s in drawn if s.scene.look.fogged and isinstance(s.scene, VariedReceipt))  # type: ignore[union-attr]
        clear = replace(sample.scene, look=replace(sample.scene.look, fogged=False))  # type: ignore[arg-type]
        assert np.asarray(sample.image).std() < 0.3 * np.asarray(render_varied(clear)).std()

    def test_what_is_written_changes_the_picture(self, drawn: list[Sample]) -> None:
        text = next(s.scene for s in drawn if isinstance(s.scene, VariedText))
        receipt = next(s.scene for s in drawn if isinstance(s.scene, VariedReceipt))
        assert isinstance(text, VariedText) and isinstance(receipt, VariedReceipt)
        for scene, changed in ((text, {"text": "47"}), (receipt, {"total": "123.45"})):
            assert _digest(render_varied(scene)) != _digest(render_varied(replace(scene, **changed)))  # type: ignore[type-var]
