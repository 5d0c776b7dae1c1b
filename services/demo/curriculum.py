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
    Stage(0.15, (QuestionKind.NUMBER, QuestionKind.WORD, QuestionKind.TOTAL)),
)


def kinds_at(progress: float, curriculum: tuple[Stage, ...] = DEFAULT_CURRICULUM) -> tuple[QuestionKind, ...]:
    """All kinds of the stages started by `progress` (0 to 1)."""
    return tuple(kind for stage in curriculum if stage.starts_at <= progress for kind in stage.kinds)
