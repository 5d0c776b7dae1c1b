"""Aho-Corasick over the normalised term list: every term in a text, in one pass over it."""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick

from services.safety.term_list import Term
from services.safety.text_normalizer import TextNormalizer


@dataclass(frozen=True, slots=True)
class TermHit:
    categories: frozenset[str]
    term: str  # normalised
    end: int  # index just past the term in the normalised text


class TermMatcher:
    """Finds the terms in normalised text. A term that starts or ends with a letter or digit of a script
    written with spaces must start or end on a word boundary ("kill myself" is not in "skill myself");
    Chinese terms match anywhere. The end of the text counts as a boundary."""

    def __init__(self, terms: Iterable[Term], normalizer: TextNormalizer) -> None:
        self.normalizer = normalizer
        categories: dict[str, set[str]] = defaultdict(set)
        for term in terms:
            key = normalizer.normalize(term.text).strip()
            if not key:
                raise ValueError(f"term {term.text!r} ({term.category}) is empty once normalised")
            categories[key].add(term.category)
        self._automaton = ahocorasick.Automaton()
        for key, names in categories.items():
            self._automaton.add_word(key, (key, frozenset(names)))
        if categories:
            self._automaton.make_automaton()
        self.num_terms = len(categories)
        self.max_term_length = max(map(len, categories), default=0)

    @property
    def is_empty(self) -> bool:
        return self.num_terms == 0

    def normalize(self, text: str) -> str:
        return self.normalizer.normalize(text)

    def find(self, text: str, *, ends_after: int = 0) -> list[TermHit]:
        """The terms in normalised `text` that end past index `ends_after`, overlapping ones included."""
        if self.is_empty or len(text) <= ends_after:
            return []
        start = max(0, ends_after - self.max_term_length + 1)
        hits = []
        for last, (key, names) in self._automaton.iter(text, start):
            end = last + 1
            if end > ends_after and _on_word_boundaries(text, end - len(key), end):
                hits.append(TermHit(names, key, end))
        return hits

    def categories_in(self, text: str) -> set[str]:
        """The categories of the terms in raw `text`."""
        return {name for hit in self.find(self.normalize(text)) for name in hit.categories}


def _on_word_boundaries(text: str, start: int, end: int) -> bool:
    if _is_word_character(text[start]) and start > 0 and _is_word_character(text[start - 1]):
        return False
    return not (_is_word_character(text[end - 1]) and end < len(text) and _is_word_character(text[end]))


def _is_word_character(character: str) -> bool:
    # Wide characters (Chinese, Japanese) belong to scripts written without spaces: no word boundaries.
    return character.isalnum() and unicodedata.east_asian_width(character) not in ("W", "F")
