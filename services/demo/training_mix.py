"""What training draws: conversations of one to three questions about one picture, a share of them today's
classic scenes in the classic wordings (the held-out figure's), the rest varied pictures in many wordings;
and how they are cut into batches of about the same cost.

A follow-up asks about a kind the conversation has not asked yet where the picture answers one, otherwise
the same kind in the other language; each turn's language is drawn afresh, so conversations mix languages
as the web page's users do. Now and then a varied picture is asked what it does not show, and the answer
is "I can't tell"."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice

from services.demo.architecture import DEMO_MAX_PIXELS
from services.demo.dataset import SCENE_FOR_KIND, Sample, Split, split_of
from services.demo.questions import LANGUAGES, Question, QuestionKind, ask, kinds_for
from services.demo.scene import Scene
from services.demo.varied_questions import UNANSWERABLE_SHARE, ask_unanswerable, ask_varied, varied_kinds_for
from services.demo.varied_scene import (
    VariedScene,
    random_varied_receipt,
    random_varied_shapes,
    random_varied_text,
)

CLASSIC_SHARE = 0.3  # of the conversations
MIXED_SHARE = 1 / 3  # of the varied pictures of figures: 2 or 3 of different shapes and colours
TURNS = (1, 2, 3)
TURN_WEIGHTS = (0.4, 0.35, 0.25)
_PIXELS_PER_TOKEN = 28 * 28  # one merged image token per 28 x 28 pixels
_CLASSIC_IMAGE_TOKENS = 36


def conversations(
    split: Split,
    seed: int,
    kinds: Iterable[QuestionKind],
    weights: Mapping[QuestionKind, float] | None = None,
    classic_share: float = CLASSIC_SHARE,
) -> Iterator[Sample]:
    """An endless, deterministic stream of `split`'s conversations whose questions are of `kinds`, the first
    drawn in proportion to `weights`."""
    rng = random.Random(f"flashvqa-demo-mix:{seed}:{split.value}")
    allowed = tuple(kinds)
    kind_weights = [weights[kind] if weights else 1.0 for kind in allowed]
    while True:
        (kind,) = rng.choices(allowed, kind_weights)
        classic = rng.random() < classic_share
        scene: Scene | VariedScene = SCENE_FOR_KIND[kind](rng) if classic else _varied_scene(kind, rng)
        if split_of(scene) is not split:
            continue
        (turns,) = rng.choices(TURNS, TURN_WEIGHTS)
        questions = [_ask(scene, kind, rng.choice(LANGUAGES), rng)]
        while len(questions) < turns:
            follow_up = _follow_up(scene, questions, allowed, rng)
            if follow_up is None:
                break
            questions.append(follow_up)
        yield Sample(scene, tuple(questions))


def varied_heldout(per_kind: int, seed: int = 0) -> list[Sample]:
    """`per_kind` held-out conversations about varied pictures opening with each kind: the learning curve's
    second set, from training's own generator but pictures training never draws."""
    chosen: list[Sample] = []
    for kind in QuestionKind:
        chosen += islice(conversations(Split.HELDOUT, seed, [kind], classic_share=0.0), per_kind)
    return chosen


def image_tokens(sample: Sample) -> int:
    """About how many image tokens the processor makes of the sample's picture (scaled down to at most
    `DEMO_MAX_PIXELS`)."""
    if isinstance(sample.scene, Scene):
        return _CLASSIC_IMAGE_TOKENS
    return max(16, round(min(sample.scene.look.width * sample.scene.look.height, DEMO_MAX_PIXELS) / _PIXELS_PER_TOKEN))


def cost_sorted_batches(samples: list[Sample], max_rows: int, token_budget: int) -> list[list[Sample]]:
    """`samples` cut into batches of similar pictures: sorted by image tokens, a batch grows until another
    row would take its padded size (rows x the largest picture's tokens) past `token_budget`, or it holds
    `max_rows`."""
    batches: list[list[Sample]] = [[]]
    for sample in sorted(samples, key=image_tokens):
        batch = batches[-1]
        if batch and (len(batch) == max_rows or (len(batch) + 1) * image_tokens(sample) > token_budget):
            batches.append(batch := [])
        batch.append(sample)
    return batches


def _varied_scene(kind: QuestionKind, rng: random.Random) -> VariedScene:
    if kind in (QuestionKind.COLOUR, QuestionKind.SHAPE, QuestionKind.COUNT):
        return random_varied_shapes(rng, mixed=rng.random() < MIXED_SHARE)
    if kind in (QuestionKind.NUMBER, QuestionKind.WORD):
        return random_varied_text(rng, number=kind is QuestionKind.NUMBER)
    return random_varied_receipt(rng)


def _ask(scene: Scene | VariedScene, kind: QuestionKind, language: str, rng: random.Random) -> Question:
    if isinstance(scene, Scene):
        return ask(scene, kind, language, rng)
    if rng.random() < UNANSWERABLE_SHARE:
        return ask_unanswerable(scene, language, rng)
    return ask_varied(scene, kind, language, rng)


def _follow_up(
    scene: Scene | VariedScene, asked: list[Question], allowed: tuple[QuestionKind, ...], rng: random.Random
) -> Question | None:
    answerable = [
        k for k in (kinds_for(scene) if isinstance(scene, Scene) else varied_kinds_for(scene)) if k in allowed
    ]
    fresh = [k for k in answerable if k not in {question.kind for question in asked}]
    if fresh:
        return _ask(scene, rng.choice(fresh), rng.choice(LANGUAGES), rng)
    pairs = {(question.kind, question.language) for question in asked}
    unasked = [(k, language) for k in answerable for language in LANGUAGES if (k, language) not in pairs]
    return _ask(scene, *rng.choice(unasked), rng) if unasked else None
