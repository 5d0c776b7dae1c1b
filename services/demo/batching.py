"""Samples -> one padded training batch: each conversation exactly as the serving path renders it, the
loss on every answer and the token that ends it.

The chat template follows an assistant turn with `<|user|>` (one of the model's stop tokens), so that is
what ends every answer: a follow-up's context then holds the earlier answers as the web page sends them,
and generation stops where the next turn would begin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from services.demo.dataset import Sample
from services.local_pipeline import image_question

IGNORE = -100
ANSWER_END = "<|user|>"


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, S], right-padded
    attention_mask: torch.Tensor  # [B, S]
    labels: torch.Tensor  # [B, S]: answer tokens and the token ending each, IGNORE elsewhere
    mm_token_type_ids: torch.Tensor  # [B, S]: 1 on image tokens
    pixel_values: torch.Tensor  # [patches, C * T * P * P]
    image_grid_thw: torch.Tensor  # [B, 3]
    samples: tuple[Sample, ...]


def answer_end_id(processor: Any) -> int:
    return int(processor.tokenizer.convert_tokens_to_ids(ANSWER_END))


def conversation_prompts(sample: Sample, processor: Any) -> list[str]:
    """The prompt text before each answer: the picture and first question, then each earlier answer and
    the next question, rendered by the chat template as the serving path renders them."""
    messages = image_question(sample.questions[0].text, 1)
    prompts = []
    for index, question in enumerate(sample.questions):
        if index:
            messages += [
                {"role": "assistant", "content": sample.questions[index - 1].answer},
                {"role": "user", "content": question.text},
            ]
        prompts.append(
            processor.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=False, tokenize=False)
        )
    return prompts


def make_batch(processor: Any, samples: list[Sample], pad_token_id: int) -> Batch:
    end_id = answer_end_id(processor)
    rows: list[tuple[list[int], list[int], list[int]]] = []
    pixel_values, grids = [], []
    for sample in samples:
        prompts = conversation_prompts(sample, processor)
        encoded = processor(text=[prompts[0]], images=[sample.image], return_tensors="pt")
        ids: list[int] = encoded["input_ids"][0].tolist()
        labels = [IGNORE] * len(ids)
        types: list[int] = encoded["mm_token_type_ids"][0].tolist()
        for index, question in enumerate(sample.questions):
            if index:  # the text between the earlier answer's end and this answer: the next question
                between = prompts[index].removeprefix(prompts[index - 1] + sample.questions[index - 1].answer)
                assert between.startswith(ANSWER_END), "the chat template must end an answer with <|user|>"
                follow = processor.tokenizer(between.removeprefix(ANSWER_END), add_special_tokens=False)["input_ids"]
                ids += follow
                labels += [IGNORE] * len(follow)
                types += [0] * len(follow)
            answer = processor.tokenizer(question.answer, add_special_tokens=False)["input_ids"] + [end_id]
            ids += answer
            labels += answer
            types += [0] * len(answer)
        rows.append((ids, labels, types))
        pixel_values.append(encoded["pixel_values"])
        grids.append(encoded["image_grid_thw"])
    length = max(len(ids) for ids, _, _ in rows)

    def padded(column: int, fill: int) -> torch.Tensor:
        return torch.tensor([row[column] + [fill] * (length - len(row[column])) for row in rows])

    input_ids = padded(0, pad_token_id)
    attention_mask = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids, _, _ in rows])
    return Batch(
        input_ids,
        attention_mask,
        padded(1, IGNORE),
        padded(2, 0),
        torch.cat(pixel_values),
        torch.cat(grids),
        tuple(samples),
    )
