"""Samples -> one padded training batch: prompt exactly as the serving path renders it, answer, stop token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from services.demo.dataset import Sample
from services.local_pipeline import image_question

IGNORE = -100


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [B, S], right-padded
    attention_mask: torch.Tensor  # [B, S]
    labels: torch.Tensor  # [B, S]: answer tokens and the stop token, IGNORE elsewhere
    mm_token_type_ids: torch.Tensor  # [B, S]: 1 on image tokens
    pixel_values: torch.Tensor  # [patches, C * T * P * P]
    image_grid_thw: torch.Tensor  # [B, 3]
    samples: tuple[Sample, ...]


def make_batch(processor: Any, samples: list[Sample], stop_token_id: int, pad_token_id: int) -> Batch:
    rows: list[tuple[list[int], list[int], list[int]]] = []
    pixel_values, grids = [], []
    for sample in samples:
        prompt = processor.apply_chat_template(
            image_question(sample.question.text, 1), add_generation_prompt=True, enable_thinking=False, tokenize=False
        )
        encoded = processor(text=[prompt], images=[sample.image], return_tensors="pt")
        prompt_ids: list[int] = encoded["input_ids"][0].tolist()
        answer_ids: list[int] = processor.tokenizer(sample.question.answer, add_special_tokens=False)["input_ids"]
        ids = prompt_ids + answer_ids + [stop_token_id]
        labels = [IGNORE] * len(prompt_ids) + answer_ids + [stop_token_id]
        types = encoded["mm_token_type_ids"][0].tolist() + [0] * (len(answer_ids) + 1)
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
