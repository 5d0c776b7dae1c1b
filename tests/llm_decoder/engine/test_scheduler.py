"""Admission: free slots, the waiting bound, and the padded prefill budget."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.errors import QueueFullError
from services.llm_decoder.engine.sampling_params import SamplingParams
from services.llm_decoder.engine.scheduler import Scheduler
from services.llm_decoder.engine.sequence import Sequence, SequenceStatus
from services.models.language_half import Prompt


def sequence(name: str, prompt_tokens: int) -> Sequence:
    prompt = Prompt([0] * prompt_tokens, (), torch.zeros(3, prompt_tokens, dtype=torch.long), 0)
    output: Any = None  # the scheduler never looks at output processing
    return Sequence(name, prompt, [], SamplingParams(), max_tokens=8, output=output)


def test_prompts_batch_until_the_padded_budget_is_spent() -> None:
    scheduler = Scheduler(EngineConfig(max_num_seqs=8, max_prefill_tokens=1000))
    for name, tokens in [("a", 100), ("b", 300), ("c", 900), ("d", 50)]:
        scheduler.add(sequence(name, tokens))
    first = scheduler.schedule()
    assert [s.request_id for s in first.prefills] == ["a", "b"]  # a, b, c would pad to 3 x 900
    second = scheduler.schedule()
    assert [s.request_id for s in second.prefills] == ["c"]  # c, d would pad to 2 x 900
    assert [s.request_id for s in second.decodes] == ["a", "b"]
    assert [s.slot for s in scheduler.running] == [0, 1, 2]


def test_a_prompt_over_the_budget_is_admitted_alone() -> None:
    scheduler = Scheduler(EngineConfig(max_num_seqs=4, max_prefill_tokens=100))
    scheduler.add(sequence("long", 500))
    scheduler.add(sequence("short", 10))
    assert [s.request_id for s in scheduler.schedule().prefills] == ["long"]


def test_freeing_a_slot_moves_the_last_sequence_down() -> None:
    scheduler = Scheduler(EngineConfig(max_num_seqs=4))
    for name in "abc":
        scheduler.add(sequence(name, 10))
    scheduler.schedule()
    a = scheduler.running[0]
    move = scheduler.free(a)
    assert move is not None and (move.source, move.target) == (2, 0)
    assert [s.request_id for s in scheduler.running] == ["c", "b"]
    assert [s.slot for s in scheduler.running] == [0, 1]
    assert a.status is SequenceStatus.FINISHED and a.slot is None


def test_waiting_is_bounded_beyond_the_free_slots() -> None:
    scheduler = Scheduler(EngineConfig(max_num_seqs=2, max_waiting=1))
    for name in "abc":
        scheduler.add(sequence(name, 10))
    with pytest.raises(QueueFullError):
        scheduler.add(sequence("d", 10))
