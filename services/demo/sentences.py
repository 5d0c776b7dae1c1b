"""The demo adapter's answers: the demo model's exact answer, then a fixed tail per question kind and
language that makes it a short sentence ("red" -> "red is the colour.", "268.00" -> "268.00是总金额。").

The answer comes first on purpose. The demo model's output layer was trained on answer tokens alone: any
other token (" the", " colour", "。") it can make the most likely one by a margin of about 2 nats at best,
at ~2% probability, whatever an adapter does to the layers below. An answer moved behind a prefix would
need such tokens for every word (" red" is not "red") and would be read from positions the model never
read at; a tail after the base's own answer is the same few tokens for every picture of a kind."""

from __future__ import annotations

from dataclasses import replace

from services.demo.dataset import Sample
from services.demo.questions import QuestionKind

_TAILS: dict[QuestionKind, dict[str, str]] = {
    QuestionKind.COLOUR: {"en": " is the colour.", "zh": "是它的颜色。"},
    QuestionKind.SHAPE: {"en": " is the shape.", "zh": "是它的形状。"},
    QuestionKind.COUNT: {"en": " is the count.", "zh": "个图形。"},
    QuestionKind.NUMBER: {"en": " is the number.", "zh": "是图中的数字。"},
    QuestionKind.WORD: {"en": " is the word.", "zh": "是图中的单词。"},
    QuestionKind.TOTAL: {"en": " is the total.", "zh": "是总金额。"},
}
_TRAVEL: dict[str, str] = {
    "yes": "yes, it is.",
    "no": "no, it is not.",
    "是": "是，这是差旅费。",
    "否": "否，这不是差旅费。",
}


def as_sentence(kind: QuestionKind, language: str, answer: str) -> str:
    if kind is QuestionKind.TRAVEL:
        return _TRAVEL[answer]
    return answer + _TAILS[kind][language]


def in_sentences(sample: Sample) -> Sample:
    """The same picture and questions, answered with sentences."""
    return Sample(
        sample.scene,
        tuple(replace(q, answer=as_sentence(q.kind, q.language, q.answer)) for q in sample.questions),
    )
