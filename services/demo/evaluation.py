"""Exact-match accuracy per question kind and language, for first questions and follow-ups, through `flashvqa
ask`'s own pipeline: what this reports is what the main command answers.

The unit is a conversation about one picture: a held-out sample is one question long, the second renderer's
conversations are two or three. A follow-up is asked after the model's own earlier replies, as the web page
sends them, so an early mistake stays in the conversation as it would for a user."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from services.demo.dataset import balanced_heldout
from services.demo.questions import LANGUAGES, Question, QuestionKind, in_answer_vocabulary
from services.demo.second_renderer.conversations import balanced_conversations
from services.local_pipeline import LocalPipeline, image_question
from services.messages import SamplingParams


class Conversation(Protocol):
    """Questions asked one after another about one picture."""

    @property
    def image(self) -> Image.Image: ...

    @property
    def questions(self) -> Sequence[Question]: ...


class Turn(StrEnum):
    FIRST = "first"
    FOLLOW_UP = "follow-up"


@dataclass(frozen=True)
class Prompt:
    """What an answerer is asked: a question about `image` after the earlier (question, reply) turns."""

    image: Image.Image
    earlier: tuple[tuple[str, str], ...]
    question: Question

    def messages(self) -> list[dict[str, Any]]:
        """The web page's conversation: the picture with the first question, then plain text turns."""
        questions = [question for question, _ in self.earlier] + [self.question.text]
        messages = image_question(questions[0], 1)
        for (_, reply), question in zip(self.earlier, questions[1:], strict=True):
            messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": question}]
        return messages


Answerer = Callable[[Prompt], str]


@dataclass
class Score:
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class Report:
    scores: dict[tuple[QuestionKind, str, Turn], Score] = field(default_factory=dict)
    outside_vocabulary: Counter[str] = field(default_factory=Counter)  # replies no training answer is, counted

    def add(self, question: Question, predicted: str, turn: Turn) -> None:
        score = self.scores.setdefault((question.kind, question.language, turn), Score())
        score.total += 1
        score.correct += is_exact_match(predicted, question.answer)
        if not in_answer_vocabulary(predicted):
            self.outside_vocabulary[predicted.strip()] += 1

    def accuracy(self, kind: QuestionKind, language: str, turn: Turn = Turn.FIRST) -> float:
        return self.scores[(kind, language, turn)].accuracy

    def overall(self, turn: Turn = Turn.FIRST, language: str | None = None) -> float:
        """Exact match over every kind (and language, unless one is named) of `turn`'s questions."""
        chosen = [
            score for (_, lang, t), score in self.scores.items() if t is turn and (language is None or lang == language)
        ]
        return Score(sum(s.correct for s in chosen), sum(s.total for s in chosen)).accuracy

    @property
    def answers(self) -> int:
        return sum(score.total for score in self.scores.values())

    def as_table(self) -> str:
        """A Markdown table: one row per kind and one for all, a column per language (and turn, when there
        are follow-ups), then how many questions each row holds."""
        turns = [turn for turn in Turn if any(t is turn for _, _, t in self.scores)]
        columns = [(turn, language) for turn in turns for language in LANGUAGES]
        names = [language if turn is Turn.FIRST else f"{language} {turn}" for turn, language in columns]
        counted = "samples" if turns == [Turn.FIRST] else " / ".join(f"{turn}" for turn in turns)
        lines = ["| question | " + " | ".join(names) + f" | {counted} |", "|---|" + "---|" * (len(columns) + 1)]
        kinds = [kind for kind in QuestionKind if any(k is kind for k, _, _ in self.scores)]
        for kind in kinds:
            cells = [f"{self._score(kind, language, turn).accuracy:.1%}" for turn, language in columns]
            counts = [sum(self._score(kind, language, turn).total for language in LANGUAGES) for turn in turns]
            lines.append(f"| {kind.value} | " + " | ".join(cells) + f" | {' / '.join(map(str, counts))} |")
        cells = [f"{self.overall(turn, language):.1%}" for turn, language in columns]
        counts = [sum(s.total for (_, _, t), s in self.scores.items() if t is turn) for turn in turns]
        lines.append("| all | " + " | ".join(cells) + f" | {' / '.join(map(str, counts))} |")
        return "\n".join(lines)

    def vocabulary_line(self) -> str:
        """How many replies were no answer training teaches (pieces of words, made-up ones), the commonest
        named."""
        outside = sum(self.outside_vocabulary.values())
        line = f"replies outside the answer vocabulary: {outside} of {self.answers} ({outside / self.answers:.1%})"
        common = ", ".join(f"{reply!r} x{count}" for reply, count in self.outside_vocabulary.most_common(5))
        return line + (f", e.g. {common}" if common else "")

    def _score(self, kind: QuestionKind, language: str, turn: Turn) -> Score:
        return self.scores.get((kind, language, turn), Score())


def is_exact_match(predicted: str, expected: str) -> bool:
    return predicted.strip() == expected


def evaluate(answerer: Answerer, conversations: Iterable[Conversation]) -> Report:
    report = Report()
    for conversation in conversations:
        image = conversation.image
        earlier: tuple[tuple[str, str], ...] = ()
        for question in conversation.questions:
            reply = answerer(Prompt(image, earlier, question))
            report.add(question, reply, Turn.FOLLOW_UP if earlier else Turn.FIRST)
            earlier += ((question.text, reply),)
    return report


def pipeline_answerer(model_dir: Path, max_tokens: int = 16) -> Answerer:
    """Greedy answers from the local pipeline, thinking off: exactly `flashvqa ask`."""
    pipeline = LocalPipeline(model_dir)
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)

    def answer(prompt: Prompt) -> str:
        return "".join(output.text for output in pipeline.generate(prompt.messages(), [prompt.image], params))

    return answer


def demo_summary(model_dir: Path, per_group: int, second_renderer_per_group: int, seed: int = 0) -> str:
    """`flashvqa eval-demo`'s report: the held-out table, then (unless its count is 0) the second renderer's,
    each with its replies outside the answer vocabulary."""
    answerer = pipeline_answerer(model_dir)
    heldout = evaluate(answerer, balanced_heldout(per_group, seed))
    parts = [
        "Held-out pictures (training's own renderer, pictures training never saw): exact match",
        heldout.as_table(),
        heldout.vocabulary_line(),
    ]
    if second_renderer_per_group:
        second = evaluate(answerer, balanced_conversations(second_renderer_per_group, seed))
        parts += [
            "",
            "Second renderer (other drawing code, canvases, backgrounds and wordings; 2-3 questions a picture,"
            " each follow-up after the model's own replies): exact match",
            second.as_table(),
            second.vocabulary_line(),
        ]
    return "\n".join(parts)
