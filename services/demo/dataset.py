"""The synthetic question answering set: deterministic from a seed, with a held-out split of pictures.

A picture belongs to the held-out split when a hash of its spec says so, whatever seed drew it: the two
splits can never share a picture, and the held-out set is the same for every training seed.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice

from PIL import Image

from services.demo.drawing import render
from services.demo.questions import LANGUAGES, Question, QuestionKind, ask
from services.demo.scene import Scene, random_number, random_receipt, random_shapes, random_word
from services.demo.varied_drawing import render_varied
from services.demo.varied_scene import VariedScene


class Split(StrEnum):
    TRAIN = "train"
    HELDOUT = "heldout"


HELDOUT_PERCENT = 10

SCENE_FOR_KIND: dict[QuestionKind, Callable[[random.Random], Scene]] = {
    QuestionKind.COLOUR: random_shapes,
    QuestionKind.SHAPE: random_shapes,
    QuestionKind.COUNT: random_shapes,
    QuestionKind.NUMBER: random_number,
    QuestionKind.WORD: random_word,
    QuestionKind.TOTAL: random_receipt,
    QuestionKind.TRAVEL: random_receipt,
}


@dataclass(frozen=True)
class Sample:
    """A conversation about one picture: a classic scene's or a varied one's, one to three questions."""

    scene: Scene | VariedScene
    questions: tuple[Question, ...]

    @property
    def question(self) -> Question:
        """The first question: the only one of a held-out sample."""
        return self.questions[0]

    @property
    def image(self) -> Image.Image:
        if isinstance(self.scene, Scene):
            return render(self.scene)
        return render_varied(self.scene)


def split_of(scene: Scene | VariedScene) -> Split:
    digest = hashlib.blake2b(repr(scene).encode(), digest_size=8).digest()
    return Split.HELDOUT if int.from_bytes(digest, "big") % 100 < HELDOUT_PERCENT else Split.TRAIN


def samples(
    split: Split,
    seed: int,
    kinds: Iterable[QuestionKind] = tuple(QuestionKind),
    weights: Mapping[QuestionKind, float] | None = None,
) -> Iterator[Sample]:
    """An endless stream of `split`'s samples: kinds drawn in proportion to `weights` (default: uniformly),
    languages uniformly."""
    rng = random.Random(f"flashvqa-demo:{seed}:{split.value}")
    kind_choices = tuple(kinds)
    kind_weights = [weights[kind] if weights else 1.0 for kind in kind_choices]
    while True:
        (kind,) = rng.choices(kind_choices, kind_weights)
        language = rng.choice(LANGUAGES)
        scene = SCENE_FOR_KIND[kind](rng)
        if split_of(scene) is split:
            yield Sample(scene, (ask(scene, kind, language, rng),))


def balanced_heldout(per_group: int, seed: int = 0) -> list[Sample]:
    """`per_group` held-out samples for every (kind, language): the evaluation set."""
    chosen: list[Sample] = []
    for kind in QuestionKind:
        for language in LANGUAGES:
            stream = (s for s in samples(Split.HELDOUT, seed, [kind]) if s.question.language == language)
            chosen.extend(islice(stream, per_group))
    return chosen
