"""Per-category rules that turn a score into a verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.safety.verdict import Action, SafetyVerdict, Source


@dataclass(frozen=True, slots=True)
class CategoryRule:
    action: Action
    threshold: float  # image scores at or above it trip the category; a term found in text scores 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.threshold <= 1.0):
            raise ValueError(f"a threshold is between 0 and 1, not {self.threshold}")


@dataclass(frozen=True)
class SafetyPolicy:
    """The rule of each named category, and `default` for categories named nowhere else (such as
    those an operator's terms file introduces)."""

    rules: Mapping[str, CategoryRule] = field(default_factory=dict)
    default: CategoryRule = CategoryRule(Action.FLAG, 0.8)

    def rule(self, category: str) -> CategoryRule:
        return self.rules.get(category, self.default)

    def verdict(self, category: str, score: float, source: Source) -> SafetyVerdict | None:
        """A verdict when the category trips and its action is not `allow`; None otherwise."""
        rule = self.rule(category)
        if score < rule.threshold or rule.action is Action.ALLOW:
            return None
        return SafetyVerdict(category, rule.action, source, score)
