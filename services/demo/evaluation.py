"""Exact-match accuracy per question kind and language on the held-out split, through `flashvqa ask`'s
own pipeline: what this reports is what the main command answers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from services.demo.dataset import Sample, balanced_heldout
from services.demo.questions import LANGUAGES, QuestionKind
from services.local_pipeline import LocalPipeline, image_question
from services.messages import SamplingParams

Answerer = Callable[[Sample], str]


@dataclass
class Score:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class Report:
    scores: dict[tuple[QuestionKind, str], Score] = field(default_factory=dict)

    def add(self, sample: Sample, predicted: str) -> None:
        key = (sample.question.kind, sample.question.language)
        score = self.scores.setdefault(key, Score())
        score.total += 1
        score.correct += is_exact_match(predicted, sample.question.answer)

    def accuracy(self, kind: QuestionKind, language: str) -> float:
        return self.scores[(kind, language)].accuracy

    def as_table(self) -> str:
        """A Markdown table: one row per kind, one column per language (held-out exact match)."""
        lines = ["| question | " + " | ".join(LANGUAGES) + " | samples |", "|---|" + "---|" * (len(LANGUAGES) + 1)]
        for kind in QuestionKind:
            cells = [f"{self.accuracy(kind, language):.1%}" for language in LANGUAGES]
            samples = sum(self.scores[(kind, language)].total for language in LANGUAGES)
            lines.append(f"| {kind.value} | " + " | ".join(cells) + f" | {samples} |")
        return "\n".join(lines)


def is_exact_match(predicted: str, expected: str) -> bool:
    return predicted.strip() == expected


def evaluate(answerer: Answerer, heldout: Iterable[Sample]) -> Report:
    report = Report()
    for sample in heldout:
        report.add(sample, answerer(sample))
    return report


def pipeline_answerer(model_dir: Path, max_tokens: int = 16) -> Answerer:
    """Greedy answers from the local pipeline, thinking off: exactly `flashvqa ask`."""
    pipeline = LocalPipeline(model_dir)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)

    def answer(sample: Sample) -> str:
        messages = image_question(sample.question.text, 1)
        return "".join(output.text for output in pipeline.generate(messages, [sample.image], params))

    return answer


def evaluate_model(model_dir: Path, per_group: int, seed: int = 0) -> Report:
    return evaluate(pipeline_answerer(model_dir), balanced_heldout(per_group, seed))
