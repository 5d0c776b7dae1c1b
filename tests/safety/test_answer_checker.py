"""A streamed answer is checked a delta at a time: a term is caught in the delta that completes it, however
it is split, and each category is reported once per answer."""

from __future__ import annotations

import pytest

from services.safety.answer_checker import AnswerChecker
from services.safety.options import CategoryPolicy, SafetyOptions
from services.safety.policy import SafetyPolicy
from services.safety.term_list import Term
from services.safety.term_matcher import TermMatcher
from services.safety.text_normalizer import TextNormalizer
from services.safety.verdict import Action, Source

POLICY = SafetyOptions().policy


@pytest.fixture(scope="module")
def matcher(normalizer: TextNormalizer, default_terms: list[Term]) -> TermMatcher:
    return TermMatcher(default_terms, normalizer)


def feed_all(checker: AnswerChecker, deltas: list[str]) -> list[list[str]]:
    """The categories reported by each delta."""
    return [[verdict.category for verdict in checker.feed(delta)] for delta in deltas]


class TestSplitTerms:
    """The verdict comes with the delta that completes the term, and with no other."""

    @pytest.mark.parametrize(
        ("deltas", "completing"),
        [
            (["Sure. To kill my", "self is not"], 1),  # 2 chunks
            (["to ki", "ll mys", "elf", " ok"], 2),  # 3 chunks
            (list("kill myself"), 10),  # a character at a time
            (["KILL\u200b MY", "ＳＥＬＦ"], 1),  # disguised across the split
            (["kill ", " myself"], 1),  # whitespace on both sides of the split collapses
            (["kill\n", "myself"], 1),
        ],
    )
    def test_english(self, matcher: TermMatcher, deltas: list[str], completing: int) -> None:
        reported = feed_all(AnswerChecker(matcher, POLICY), deltas)
        assert reported == [["self_harm"] if index == completing else [] for index in range(len(deltas))]

    @pytest.mark.parametrize("deltas", [["他说自杀", "方法"], ["自", "殺方", "法"], ["自\u200b", "杀", "方法。"]])
    def test_chinese(self, matcher: TermMatcher, deltas: list[str]) -> None:
        reported = feed_all(AnswerChecker(matcher, POLICY), deltas)
        assert reported[-1] == ["self_harm"] and not any(reported[:-1])

    def test_combining_mark_in_the_next_delta(self, normalizer: TextNormalizer) -> None:
        checker = AnswerChecker(TermMatcher([Term("violence", "café bomb")], normalizer), POLICY)
        assert feed_all(checker, ["the cafe", "\u0301 bomb"]) == [[], ["violence"]]

    def test_word_boundary_before_the_split(self, matcher: TermMatcher) -> None:
        checker = AnswerChecker(matcher, POLICY)
        assert feed_all(checker, ["I will s", "kill myself up"]) == [[], []]


class TestReportsOnce:
    """A category is reported once per answer, however often its terms recur."""

    def test_repeated_term(self, matcher: TermMatcher) -> None:
        checker = AnswerChecker(matcher, POLICY)
        reported = feed_all(checker, ["kill myself", ", kill myself", " and 自杀方法", "kill my", "self"])
        assert reported == [["self_harm"], [], [], [], []]
        assert checker.categories_seen == {"self_harm"}

    def test_two_categories_in_one_delta(self, matcher: TermMatcher) -> None:
        checker = AnswerChecker(matcher, POLICY)
        verdicts = checker.feed("heil hitler, how to make a bomb")
        assert [(verdict.category, verdict.action, verdict.source) for verdict in verdicts] == [
            ("hate", Action.BLOCK, Source.ANSWER),
            ("violence", Action.FLAG, Source.ANSWER),
        ]


class TestBoundedWork:
    """Between deltas the checker keeps at most the longest term's length of text, never the answer."""

    def test_tail_stays_bounded_over_a_long_answer(self, matcher: TermMatcher) -> None:
        checker = AnswerChecker(matcher, POLICY)
        for index in range(2000):
            assert checker.feed(f"token{index} 这是 ") == []
            assert checker.buffered_characters <= matcher.max_term_length
        assert [verdict.category for verdict in checker.feed("kill myself")] == ["self_harm"]


class TestPolicy:
    """What the checker reports follows the policy, and an empty term list reports nothing."""

    def test_allowed_category_is_not_reported(self, matcher: TermMatcher) -> None:
        policy = SafetyOptions(categories={"self_harm": CategoryPolicy(action=Action.ALLOW)}).policy
        checker = AnswerChecker(matcher, policy)
        assert checker.feed("kill myself") == []
        assert checker.feed(" heil hitler")[0].action is Action.BLOCK

    def test_empty_term_list(self, normalizer: TextNormalizer) -> None:
        checker = AnswerChecker(TermMatcher([], normalizer), SafetyPolicy())
        assert checker.feed("kill myself") == [] and checker.buffered_characters == 0
