"""The evaluation: exact match per kind and language, first questions and follow-ups apart, through the same
pipeline as `flashvqa ask`, with the conversation the web page sends."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from services.cli import main
from services.demo.dataset import balanced_heldout
from services.demo.evaluation import Prompt, Turn, evaluate, is_exact_match, pipeline_answerer
from services.demo.questions import LANGUAGES, Question, QuestionKind
from services.demo.second_renderer.conversations import balanced_conversations


class TestScoring:
    """An oracle scores 100% everywhere, a wrong answerer 0%, and only the exact answer counts."""

    def test_oracle_and_wrong_answers(self) -> None:
        heldout = balanced_heldout(2)
        oracle = evaluate(lambda sample: sample.question.answer, heldout)
        wrong = evaluate(lambda sample: sample.question.answer + "0", heldout)
        for kind in QuestionKind:
            for language in LANGUAGES:
                assert oracle.accuracy(kind, language) == 1.0
                assert wrong.accuracy(kind, language) == 0.0

    def test_one_kind_right_shows_only_in_its_row(self) -> None:
        def colour_only(prompt: Prompt) -> str:
            return prompt.question.answer if prompt.question.kind is QuestionKind.COLOUR else "?"

        report = evaluate(colour_only, balanced_heldout(2))
        assert report.accuracy(QuestionKind.COLOUR, "zh") == 1.0
        assert report.accuracy(QuestionKind.TOTAL, "en") == 0.0
        assert "| colour | 100.0% | 100.0% | 4 |" in report.as_table()
        assert f"| all | {1 / 7:.1%} | {1 / 7:.1%} | 28 |" in report.as_table()

    @pytest.mark.parametrize(
        ("predicted", "expected", "matches"),
        [(" red\n", "red", True), ("Red", "red", False), ("red.", "red", False), ("12.5", "12.50", False)],
    )
    def test_exact_match_ignores_only_surrounding_space(self, predicted: str, expected: str, matches: bool) -> None:
        assert is_exact_match(predicted, expected) is matches


def test_a_random_model_is_evaluated_on_every_group(tiny_model_dirs: dict[str, Path]) -> None:
    report = evaluate(pipeline_answerer(tiny_model_dirs["glm4v"]), balanced_heldout(2))
    assert {score.total for score in report.scores.values()} == {2}
    assert len(report.scores) == len(QuestionKind) * len(LANGUAGES)


class TestConversations:
    """A follow-up is asked after the answerer's own earlier replies, in the web page's messages, and is
    scored apart from first questions."""

    def test_follow_ups_come_after_the_earlier_replies_as_the_web_page_sends_them(self) -> None:
        question = Question(QuestionKind.COUNT, "zh", "有几个图形？", "3")
        prompt = Prompt(Image.new("RGB", (112, 112)), (("What colour?", "red"), ("What shape?", "ue")), question)
        assert prompt.messages() == [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]},
            {"role": "assistant", "content": "red"},
            {"role": "user", "content": "What shape?"},
            {"role": "assistant", "content": "ue"},
            {"role": "user", "content": "有几个图形？"},
        ]

    def test_each_turn_sees_the_replies_given_before_it(self) -> None:
        prompts: list[Prompt] = []

        def recording(prompt: Prompt) -> str:
            prompts.append(prompt)
            return f"reply {len(prompts)}"

        conversations = balanced_conversations(1)
        evaluate(recording, conversations)
        assert len(prompts) == sum(len(c.questions) for c in conversations)
        for number, prompt in enumerate(prompts, 1):
            replies = [reply for _, reply in prompt.earlier]
            assert replies == [f"reply {number - len(replies) + k}" for k in range(len(replies))]

    def test_first_questions_and_follow_ups_are_scored_apart(self) -> None:
        report = evaluate(lambda p: "" if p.earlier else p.question.answer, balanced_conversations(2))
        assert report.overall(Turn.FIRST) == 1.0 and report.overall(Turn.FOLLOW_UP) == 0.0
        assert all(report.accuracy(kind, language) == 1.0 for kind in QuestionKind for language in LANGUAGES)
        table = report.as_table()
        assert table.startswith("| question | en | zh | en follow-up | zh follow-up | first / follow-up |")
        assert "| all | 100.0% | 100.0% | 0.0% | 0.0% | 28 / " in table


def test_replies_outside_the_answer_vocabulary_are_counted() -> None:
    """A piece of a word counts; a wrong answer that is some answer ("star" for a colour) does not."""

    def fragments(prompt: Prompt) -> str:
        return {QuestionKind.COLOUR: "ue", QuestionKind.SHAPE: "star"}.get(prompt.question.kind, prompt.question.answer)

    report = evaluate(fragments, balanced_heldout(2))
    assert report.outside_vocabulary == {"ue": 4}
    assert report.vocabulary_line() == "replies outside the answer vocabulary: 4 of 28 (14.3%), e.g. 'ue' x4"


def test_eval_demo_command_prints_both_tables(
    tiny_model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end on a random model: a held-out question and a second-renderer conversation per group."""
    argv = [
        "eval-demo",
        "--model",
        str(tiny_model_dirs["glm4v"]),
        "--per-group",
        "1",
        "--second-renderer-per-group",
        "1",
    ]
    assert main(argv) == 0
    heldout, second = capsys.readouterr().out.split("\n\n")
    assert heldout.startswith("Held-out pictures") and second.startswith("Second renderer")
    assert "| question | en | zh | samples |" in heldout and "| all |" in heldout
    assert "| question | en | zh | en follow-up | zh follow-up | first / follow-up |" in second
    assert all(f"| {kind.value} |" in table for kind in QuestionKind for table in (heldout, second))
    assert "| all | " in second and "replies outside the answer vocabulary:" in second
