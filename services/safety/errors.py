"""What the safety filter raises, for the gateway to map to HTTP."""

from __future__ import annotations

from collections.abc import Iterable

from services.safety.verdict import SafetyVerdict, worst


class SafetyUnavailableError(RuntimeError):
    """The image safety model could not load (or run) and the filter fails closed: answer 503."""


class ModelLoadError(RuntimeError):
    """An image safety model file is missing, corrupt, or not the model we expect."""


class ContentPolicyViolation(Exception):
    """A request or answer that the policy blocks: answer 400 `content_policy_violation`. The message
    names the category and what carried it, never the score."""

    def __init__(self, verdict: SafetyVerdict, param: str | None = "messages") -> None:
        super().__init__(f"the {verdict.source} was refused by the content policy (category: {verdict.category})")
        self.verdict = verdict
        self.param = param


def raise_if_blocked(verdicts: Iterable[SafetyVerdict], param: str | None = "messages") -> None:
    verdict = worst(verdicts)
    if verdict is not None and verdict.is_blocking:
        raise ContentPolicyViolation(verdict, param)
