"""Checks an answer while it streams, a delta at a time, without re-reading what came before."""

from __future__ import annotations

import unicodedata

from services.safety.policy import SafetyPolicy
from services.safety.term_matcher import TermMatcher
from services.safety.verdict import SafetyVerdict, Source


class AnswerChecker:
    """One per streamed answer. `feed(delta)` returns the verdicts of categories first seen in that delta,
    so a term is caught in the delta that completes it, before the gateway forwards it; a term split
    across deltas is caught once, and a category is reported once per answer.

    Only the last `max_term_length` normalised characters are kept between deltas: a term that ends in
    the new delta needs at most `max_term_length - 1` of them, plus one to see the word boundary before
    it. Each delta is normalised on its own; OpenCC converts some multi-character phrases as a unit,
    and one split across deltas is converted character by character, which these terms do not mind.
    """

    def __init__(self, matcher: TermMatcher, policy: SafetyPolicy) -> None:
        self._matcher = matcher
        self._policy = policy
        self._tail = ""
        self._seen: set[str] = set()

    def feed(self, delta: str) -> list[SafetyVerdict]:
        if self._matcher.is_empty or not delta:
            return []
        if self._tail and unicodedata.combining(delta[0]):
            # A combining mark composes with the character before it, which the last delta normalised alone.
            delta = self._tail[-1] + delta
            self._tail = self._tail[:-1]
        piece = self._matcher.normalize(delta)
        if piece.startswith(" ") and self._tail.endswith(" "):
            piece = piece[1:]
        text = self._tail + piece
        hits = self._matcher.find(text, ends_after=len(self._tail))
        self._tail = text[-self._matcher.max_term_length :]
        verdicts = []
        for category in sorted({name for hit in hits for name in hit.categories} - self._seen):
            self._seen.add(category)
            verdict = self._policy.verdict(category, 1.0, Source.ANSWER)
            if verdict is not None:
                verdicts.append(verdict)
        return verdicts

    @property
    def buffered_characters(self) -> int:
        """Normalised characters kept between deltas: at most the longest term's length."""
        return len(self._tail)

    @property
    def categories_seen(self) -> frozenset[str]:
        return frozenset(self._seen)
