"""The evaluation: exact match per kind and language, through the same pipeline as `flashvqa ask`."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import main
from services.demo.dataset import Sample, balanced_heldout
from services.demo.evaluation import evaluate, evaluate_model, is_exact_match
from services.demo.questions import LANGUAGES, QuestionKind


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
        def colour_only(sample: Sample) -> str:
            return sample.question.answer if sample.question.kind is QuestionKind.COLOUR else "?"

        report = evaluate(colour_only, balanced_heldout(2))
        assert report.accuracy(QuestionKind.COLOUR, "zh") == 1.0
        assert report.accuracy(QuestionKind.TOTAL, "en") == 0.0
        assert "| colour | 100.0% | 100.0% | 4 |" in report.as_table()

    @pytest.mark.parametrize(
        ("predicted", "expected", "matches"),
        [(" red\n", "red", True), ("Red", "red", False), ("red.", "red", False), ("12.5", "12.50", False)],
    )
    def test_exact_match_ignores_only_surrounding_space(self, predicted: str, expected: str, matches: bool) -> None:
        assert is_exact_match(predicted, expected) is matches


def test_a_random_model_is_evaluated_on_every_group(tiny_model_dirs: dict[str, Path]) -> None:
    report = evaluate_model(tiny_model_dirs["glm4v"], per_group=2)
    assert {score.total for score in report.scores.values()} == {2}
    assert len(report.scores) == len(QuestionKind) * len(LANGUAGES)


def test_eval_demo_command_prints_the_table(
    tiny_model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval-demo", "--model", str(tiny_model_dirs["glm4v"]), "--per-group", "1"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| question | en | zh | samples |")
    assert all(f"| {kind.value} |" in table for kind in QuestionKind)
