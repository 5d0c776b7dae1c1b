"""Every listed term in a text is found, in any spelling the normaliser folds, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.safety.options import SafetyOptions
from services.safety.term_list import Term, read_terms
from services.safety.term_matcher import TermMatcher
from services.safety.text_normalizer import TextNormalizer


@pytest.fixture(scope="module")
def matcher(normalizer: TextNormalizer, default_terms: list[Term]) -> TermMatcher:
    return TermMatcher(default_terms, normalizer)


class TestFindsTerms:
    """A text with a listed term yields its category; a clean text yields none."""

    @pytest.mark.parametrize(
        ("text", "categories"),
        [
            ("How do I kill myself?", {"self_harm"}),
            ("HOW TO MAKE A BOMB", {"violence"}),
            ("请告诉我自杀方法", {"self_harm"}),
            ("教我製造炸彈", {"violence"}),  # traditional text, simplified term
            ("ｈｅｉｌ ｈｉｔｌｅｒ", {"hate"}),
            ("heil\u200b hitler and how to make a bomb", {"hate", "violence"}),
            ("What is on this receipt?", set()),
            ("这张图片里有什么？", set()),
        ],
    )
    def test_default_list(self, matcher: TermMatcher, text: str, categories: set[str]) -> None:
        assert matcher.categories_in(text) == categories

    def test_every_default_term_matches_itself(self, matcher: TermMatcher, default_terms: list[Term]) -> None:
        for term in default_terms:
            assert term.category in matcher.categories_in(f"... {term.text} ..."), term

    def test_default_categories_all_have_a_policy(self, default_terms: list[Term]) -> None:
        assert {term.category for term in default_terms} <= set(SafetyOptions().categories)


class TestOverlappingTerms:
    """Terms that overlap or contain one another are all found."""

    def test_overlapping_and_nested(self, normalizer: TextNormalizer) -> None:
        terms = [Term("a", "red fox"), Term("b", "fox jumps"), Term("c", "自杀"), Term("d", "自杀方法")]
        matcher = TermMatcher(terms, normalizer)
        hits = matcher.find(normalizer.normalize("the red fox jumps; 自杀方法"))
        assert sorted((hit.term, set(hit.categories)) for hit in hits) == [
            ("fox jumps", {"b"}),
            ("red fox", {"a"}),
            ("自杀", {"c"}),
            ("自杀方法", {"d"}),
        ]

    def test_one_term_in_two_categories(self, normalizer: TextNormalizer) -> None:
        matcher = TermMatcher([Term("hate", "Example Slur"), Term("violence", "example slur")], normalizer)
        assert matcher.num_terms == 1
        assert matcher.categories_in("an EXAMPLE SLUR here") == {"hate", "violence"}

    def test_ends_after_skips_hits_already_seen(self, normalizer: TextNormalizer) -> None:
        matcher = TermMatcher([Term("a", "abc")], normalizer)
        assert [hit.end for hit in matcher.find("abc abc")] == [3, 7]
        assert [hit.end for hit in matcher.find("abc abc", ends_after=3)] == [7]


class TestWordBoundaries:
    """A Latin term matches whole words only; a Chinese term matches inside running text."""

    @pytest.mark.parametrize(
        ("text", "found"),
        [
            ("i will skill myself up", False),
            ("kill myselfie", False),
            ("kill myself.", True),
            ("(kill myself)", True),
            ("kill myself", True),
            ("我要kill myself了", True),  # Chinese characters next to a Latin term are boundaries
            ("child pornography", True),
        ],
    )
    def test_latin(self, matcher: TermMatcher, text: str, found: bool) -> None:
        assert bool(matcher.categories_in(text)) is found

    def test_chinese_inside_a_sentence(self, matcher: TermMatcher) -> None:
        assert matcher.categories_in("他问我自杀方法是什么") == {"self_harm"}


class TestTermList:
    """The list file parses to terms, and a malformed line names its file and line."""

    def test_comments_and_blank_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "terms.tsv"
        path.write_text("# comment\n\nviolence\tSmash It\n  # indented comment\nhate\t仇恨言论\n", encoding="utf-8")
        assert read_terms(path) == [Term("violence", "Smash It"), Term("hate", "仇恨言论")]

    @pytest.mark.parametrize("line", ["no tab here", "\tterm without category", "category\t  "])
    def test_malformed_line(self, tmp_path: Path, line: str) -> None:
        path = tmp_path / "terms.tsv"
        path.write_text(f"violence\tok\n{line}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=r"terms\.tsv:2"):
            read_terms(path)

    def test_term_that_normalises_to_nothing(self, normalizer: TextNormalizer) -> None:
        with pytest.raises(ValueError, match="empty once normalised"):
            TermMatcher([Term("hate", "\u200b\u200b")], normalizer)

    def test_empty_matcher_finds_nothing(self, normalizer: TextNormalizer) -> None:
        matcher = TermMatcher([], normalizer)
        assert matcher.is_empty and matcher.max_term_length == 0
        assert matcher.categories_in("kill myself") == set()
