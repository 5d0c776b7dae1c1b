"""The synthetic question set: deterministic, split by picture, and every answer true of its picture."""

from __future__ import annotations

from collections import Counter
from itertools import islice

import numpy as np
import pytest

from services.demo.dataset import Sample, Split, balanced_heldout, samples, split_of
from services.demo.drawing import BACKGROUND, render
from services.demo.questions import LANGUAGES, QuestionKind, answer, in_answer_vocabulary
from services.demo.scene import CATEGORIES, COLOURS, SHAPES, ReceiptScene, ShapesScene, TextScene


def _first(split: Split, seed: int, count: int) -> list[Sample]:
    return list(islice(samples(split, seed), count))


class TestDeterminism:
    """The same seed gives the same questions and the same pixels; another seed gives others."""

    def test_same_seed_same_samples_and_pixels(self) -> None:
        first, again = _first(Split.TRAIN, 3, 40), _first(Split.TRAIN, 3, 40)
        assert first == again
        assert all(a.image.tobytes() == b.image.tobytes() for a, b in zip(first, again, strict=True))

    def test_another_seed_draws_other_samples(self) -> None:
        assert _first(Split.TRAIN, 3, 40) != _first(Split.TRAIN, 4, 40)


def test_kinds_are_drawn_in_proportion_to_their_weights() -> None:
    weights = {QuestionKind.COLOUR: 1.0, QuestionKind.TOTAL: 4.0}
    drawn = Counter(s.question.kind for s in islice(samples(Split.TRAIN, 0, list(weights), weights), 1000))
    assert 3.0 < drawn[QuestionKind.TOTAL] / drawn[QuestionKind.COLOUR] < 5.5


class TestHeldoutSplit:
    """No held-out picture is ever drawn for training, whatever the seed."""

    def test_splits_share_no_picture(self) -> None:
        heldout = {sample.scene for sample in balanced_heldout(20)}
        train = {sample.scene for seed in (0, 1) for sample in _first(Split.TRAIN, seed, 1500)}
        assert heldout and train and not heldout & train
        assert all(split_of(scene) is Split.HELDOUT for scene in heldout)

    def test_balanced_heldout_covers_every_kind_in_both_languages(self) -> None:
        groups = Counter((s.question.kind, s.question.language) for s in balanced_heldout(3))
        assert groups == {(kind, language): 3 for kind in QuestionKind for language in LANGUAGES}


def _foreground(sample: Sample) -> np.ndarray:
    pixels = np.asarray(sample.image).astype(int)
    return np.abs(pixels - np.array(BACKGROUND)).sum(axis=-1) > 30  # [H, W]


def _components(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    seen = np.zeros_like(mask)
    components = []
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start], stack, component = True, [start], []
        while stack:
            y, x = stack.pop()
            component.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        components.append(component)
    return components


def _fill_ratio(component: list[tuple[int, int]]) -> float:
    ys, xs = zip(*component, strict=True)
    return len(component) / ((max(ys) - min(ys) + 1) * (max(xs) - min(xs) + 1))


_FILL_RATIO = {"circle": (0.72, 0.85), "square": (0.95, 1.01), "triangle": (0.4, 0.6), "star": (0.25, 0.45)}
_SHAPE_SAMPLES = [s for s in _first(Split.TRAIN, 0, 400) if isinstance(s.scene, ShapesScene)][:40]


class TestAnswersAreTrueOfThePicture:
    """Read back from the pixels: the colour, the number of blobs and their shape agree with the answer."""

    @pytest.mark.parametrize("sample", _SHAPE_SAMPLES, ids=lambda s: s.question.text)
    def test_shapes(self, sample: Sample) -> None:
        scene = sample.scene
        assert isinstance(scene, ShapesScene)
        foreground = _foreground(sample)
        colours = Counter(map(tuple, np.asarray(sample.image)[foreground].tolist()))
        assert colours.most_common(1)[0][0] == COLOURS[scene.colour][2]
        blobs = [c for c in _components(foreground) if len(c) > 20]
        assert str(len(blobs)) == answer(scene, QuestionKind.COUNT, "en") == answer(scene, QuestionKind.COUNT, "zh")
        low, high = _FILL_RATIO[answer(scene, QuestionKind.SHAPE, "en")]
        assert all(low <= _fill_ratio(blob) <= high for blob in blobs)
        assert answer(scene, QuestionKind.SHAPE, "zh") == SHAPES[scene.shape][1]
        assert answer(scene, QuestionKind.COLOUR, "zh") == COLOURS[scene.colour][1]

    def test_text_is_drawn_in_its_colour_and_is_the_answer(self) -> None:
        for text in ("7", "42", "cat"):
            scene = TextScene(text, 2, (0, 0))
            pixels = np.asarray(render(scene)).reshape(-1, 3).tolist()
            assert list(COLOURS[2][2]) in pixels
            kind = QuestionKind.NUMBER if scene.is_number else QuestionKind.WORD
            assert answer(scene, kind, "en") == answer(scene, kind, "zh") == text
        assert render(TextScene("42", 2, (0, 0))).tobytes() != render(TextScene("47", 2, (0, 0))).tobytes()

    def test_every_total_has_one_layout(self) -> None:
        totals = [s.scene.total for s in islice(samples(Split.TRAIN, 0, [QuestionKind.TOTAL]), 200)]
        assert all(len(t) == 6 and t[3] == "." and t.replace(".", "").isdigit() and t[0] != "0" for t in totals)

    def test_receipt_total_and_travel(self) -> None:
        for category, (_, _, is_travel) in enumerate(CATEGORIES):
            scene = ReceiptScene(0, "2026-01-02", category, "128.50")
            assert answer(scene, QuestionKind.TOTAL, "en") == answer(scene, QuestionKind.TOTAL, "zh") == "128.50"
            assert answer(scene, QuestionKind.TRAVEL, "en") == ("yes" if is_travel else "no")
            assert answer(scene, QuestionKind.TRAVEL, "zh") == ("是" if is_travel else "否")
        assert (
            render(ReceiptScene(0, "2026-01-02", 0, "128.50")).tobytes()
            != render(ReceiptScene(0, "2026-01-02", 0, "128.60")).tobytes()
        )


class TestAnswerVocabulary:
    """Every answer training teaches is in the vocabulary; a piece of one, a sentence or another form is not."""

    def test_every_training_answer_is_in_it(self) -> None:
        answers = {sample.question.answer for sample in islice(samples(Split.TRAIN, 0), 3000)}
        assert len(answers) > 100 and all(in_answer_vocabulary(f" {answer}\n") for answer in answers)

    @pytest.mark.parametrize("reply", ["ue", "色", "", "Red", "red.", "It is red", "100", "1.", "268.0", "068.00"])
    def test_fragments_and_other_forms_are_not(self, reply: str) -> None:
        assert not in_answer_vocabulary(reply)
