"""The batched sampler on extreme but valid sampling values: none may produce an invalid distribution
(that would fail the engine step, and with it every sequence in the batch)."""

from __future__ import annotations

import pytest
import torch

from services.llm_decoder.engine.sampler import sample
from services.messages import SamplingParams


def _logits(rows: int, vocab: int = 64) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 30


@pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-6])
def test_vanishing_temperature_is_greedy(temperature: float) -> None:
    logits = _logits(2)
    params = [SamplingParams(temperature=temperature), SamplingParams(temperature=1.0, seed=1)]
    tokens = sample(logits, params, [None, torch.Generator().manual_seed(1)])
    assert tokens[0] == int(logits[0].argmax())


@pytest.mark.parametrize(("temperature", "top_p"), [(1e-5, 1.0), (2.0, 1e-9), (1e-5, 1e-9), (1.0, 5e-324)])
def test_extreme_temperature_and_top_p_sample_a_real_token(temperature: float, top_p: float) -> None:
    logits = _logits(3)
    params = [SamplingParams(temperature=temperature, top_p=top_p)] * 3
    tokens = sample(logits, params, [None] * 3)
    assert all(0 <= token < logits.shape[1] for token in tokens)


def test_tiny_top_p_keeps_only_the_most_likely_token() -> None:
    logits = _logits(1)
    assert sample(logits, [SamplingParams(temperature=1.0, top_p=1e-9)], [None]) == [int(logits[0].argmax())]
