"""What the safety filter decides about one piece of content."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    ALLOW = "allow"
    FLAG = "flag"  # served, with a response header and a metric
    BLOCK = "block"  # refused: 400 content_policy_violation, naming the category but never the score

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.BLOCK: 2}


class Source(StrEnum):
    IMAGE = "image"
    PROMPT = "prompt"
    ANSWER = "answer"


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """A category that tripped, and what the policy says to do about it. `score` is the image model's
    probability, or 1.0 for a term found in text; it is for logs and metrics, never for the client."""

    category: str
    action: Action
    source: Source
    score: float

    @property
    def is_blocking(self) -> bool:
        return self.action is Action.BLOCK


def worst(verdicts: Iterable[SafetyVerdict]) -> SafetyVerdict | None:
    """The verdict with the most severe action (the first of equals), or None when there is none."""
    return max(verdicts, key=lambda verdict: verdict.action.severity, default=None)
