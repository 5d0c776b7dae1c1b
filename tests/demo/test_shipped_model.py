"""The trained demo model that ships in the package: it answers the README's examples and held-out
questions as well as the README says, and a fixed sample of the second renderer's no worse than today."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from services.demo.dataset import Split, balanced_heldout, split_of
from services.demo.drawing import render
from services.demo.evaluation import Answerer, Prompt, Report, Turn, evaluate, pipeline_answerer
from services.demo.examples import EXAMPLE_SCENES, EXAMPLES_DIR
from services.demo.questions import LANGUAGES, QuestionKind, ask
from services.demo.second_renderer.conversations import balanced_conversations
from services.demo.shipped import DEMO_MODEL

pytestmark = pytest.mark.slow

# The bar, per kind, in every language.
TARGETS = {
    QuestionKind.COLOUR: 0.9,
    QuestionKind.SHAPE: 0.9,
    QuestionKind.COUNT: 0.9,
    QuestionKind.NUMBER: 0.8,
    QuestionKind.TOTAL: 0.8,
    QuestionKind.TRAVEL: 0.9,
}
# The second renderer's first 6 conversations per kind and language (seed 0), measured on the shipped model
# retrained for issue 27: 20 of 84 first questions right (23.8%), 34 of 115 follow-ups (29.6%), no reply
# outside the answer vocabulary (before: 6.0%, 4.3% and 28% pieces of words). The floors are those less a
# margin for another CPU's rounding; the targets (docs/demo-model.md) are higher still.
SECOND_RENDERER_SAMPLE = 6
SECOND_RENDERER_FLOORS = {Turn.FIRST: 0.2, Turn.FOLLOW_UP: 0.25}


def test_weights_are_a_few_megabytes() -> None:
    size = sum(path.stat().st_size for path in DEMO_MODEL.iterdir())
    assert (DEMO_MODEL / "model.safetensors").is_file() and size < 10 * 2**20


@pytest.mark.parametrize("name", sorted(EXAMPLE_SCENES))
def test_example_pictures_are_held_out_renders(name: str) -> None:
    scene = EXAMPLE_SCENES[name]
    assert split_of(scene) is Split.HELDOUT
    on_disk = np.asarray(Image.open(EXAMPLES_DIR / name).convert("RGB"))
    assert np.array_equal(on_disk, np.asarray(render(scene)))


@pytest.fixture(scope="module")
def answerer() -> Iterator[Answerer]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `flashvqa eval-demo` runs: on a busy host a second thread only waits
    yield pipeline_answerer(DEMO_MODEL)
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("name", "kind", "language", "expected"),
    [
        ("receipt.png", QuestionKind.TRAVEL, "en", "yes"),
        ("receipt.png", QuestionKind.TRAVEL, "zh", "是"),
        ("receipt.png", QuestionKind.TOTAL, "en", "268.00"),
        ("receipt.png", QuestionKind.TOTAL, "zh", "268.00"),
        ("shapes.png", QuestionKind.COLOUR, "en", "red"),
        ("shapes.png", QuestionKind.SHAPE, "zh", "星形"),
        ("shapes.png", QuestionKind.COUNT, "en", "4"),
    ],
)
def test_answers_the_readme_examples(
    answerer: Answerer, name: str, kind: QuestionKind, language: str, expected: str
) -> None:
    scene = EXAMPLE_SCENES[name]
    question = ask(scene, kind, language, random.Random(0))
    assert question.answer == expected
    assert answerer(Prompt(render(scene), (), question)).strip() == expected


@pytest.fixture(scope="module")
def heldout_report(answerer: Answerer) -> Report:
    return evaluate(answerer, balanced_heldout(10))


@pytest.mark.parametrize("kind", list(TARGETS))
def test_meets_the_accuracy_bar_on_held_out_pictures(heldout_report: Report, kind: QuestionKind) -> None:
    for language in LANGUAGES:
        assert heldout_report.accuracy(kind, language) >= TARGETS[kind], (kind, language, heldout_report.as_table())


@pytest.fixture(scope="module")
def second_renderer_report(answerer: Answerer) -> Report:
    return evaluate(answerer, balanced_conversations(SECOND_RENDERER_SAMPLE))


@pytest.mark.parametrize("turn", list(Turn))
def test_meets_its_floor_on_the_second_renderer(second_renderer_report: Report, turn: Turn) -> None:
    report = second_renderer_report
    assert report.overall(turn) >= SECOND_RENDERER_FLOORS[turn], (turn, report.as_table())


def test_replies_are_answers_never_pieces_of_words(second_renderer_report: Report) -> None:
    """Asked about pictures drawn otherwise, the model answers from its vocabulary or says "I can't tell"."""
    assert not second_renderer_report.outside_vocabulary, second_renderer_report.vocabulary_line()
