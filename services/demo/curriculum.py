"""Which question kinds training draws from as it goes: easy visual attributes first, reading last.
Earlier kinds stay in the mix, so nothing is forgotten."""

from __future__ import annotations

from dataclasses import dataclass

from services.demo.questions import QuestionKind


@dataclass(frozen=True)
class Stage:
    starts_at: float  # fraction of the training steps
    kinds: tuple[QuestionKind, ...]


DEFAULT_CURRICULUM: tuple[Stage, ...] = (
    Stage(0.0, (QuestionKind.COLOUR, QuestionKind.SHAPE)),
    Stage(0.05, (QuestionKind.COUNT, QuestionKind.TRAVEL)),
    Stage(0.1, (QuestionKind.NUMBER, QuestionKind.WORD, QuestionKind.TOTAL)),
)


# How often each kind is drawn once it is in the mix. Colour, shape and travel are learnt from a few hundred
# answers; reading a total or a number digit by digit, and counting, take thousands (trained on totals and
# numbers alone, the decoder read only a total's first digit after 1,500 steps, 88% of totals after 2,700).
DRAW_WEIGHTS: dict[QuestionKind, float] = {
    QuestionKind.COLOUR: 1,
    QuestionKind.SHAPE: 1,
    QuestionKind.TRAVEL: 1,
    QuestionKind.WORD: 1,
    QuestionKind.COUNT: 2,
    QuestionKind.NUMBER: 4,
    QuestionKind.TOTAL: 4,
}


def kinds_at(progress: float, curriculum: tuple[Stage, ...] = DEFAULT_CURRICULUM) -> tuple[QuestionKind, ...]:
    """All kinds of the stages started by `progress` (0 to 1)."""
    return tuple(kind for stage in curriculum if stage.starts_at <= progress for kind in stage.kinds)
