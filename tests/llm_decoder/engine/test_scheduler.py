"""Continuous batching within a token budget: decodes first, prompt chunks in what is left, no starvation;
admission by free slots and the waiting bound."""

from __future__ import annotations

import random

import pytest
import torch

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.errors import QueueFullError
from services.llm_decoder.engine.sampling_params import SamplingParams
from services.llm_decoder.engine.scheduler import ScheduledStep, Scheduler
from services.llm_decoder.engine.sequence import Sequence, SequenceStatus
from services.models.language_half import Prompt


def sequence(name: str, prompt_tokens: int, max_tokens: int = 8) -> Sequence:
    prompt = Prompt([0] * prompt_tokens, (), torch.zeros(3, prompt_tokens, dtype=torch.long), 0)
    return Sequence(name, prompt, [], SamplingParams(), max_tokens=max_tokens)


def scheduler(**sizes: int) -> Scheduler:
    return Scheduler(EngineConfig(**sizes).for_device("cpu"))


def step(scheduler: Scheduler) -> ScheduledStep:
    """Schedule, and do what the engine does after the forward: the chunks are computed, sampling chunks get
    a token, and sequences at their max_tokens leave."""
    scheduled = scheduler.schedule()
    scheduler.finish_chunks(scheduled)
    for chunk in scheduled.chunks:
        if chunk.samples:
            chunk.sequence.output_token_ids.append(1)
            if chunk.sequence.num_output_tokens == chunk.sequence.max_tokens:
                scheduler.free(chunk.sequence)
    return scheduled


def names(chunks: list) -> list[str]:
    return [chunk.sequence.request_id for chunk in chunks]


def test_decodes_come_first_and_prompts_fill_the_rest_of_the_budget() -> None:
    running = scheduler(max_num_seqs=8, max_num_batched_tokens=100)
    for name in "ab":
        running.add(sequence(name, 10))
    step(running)
    for name, tokens in [("c", 50), ("d", 60)]:
        running.add(sequence(name, tokens))
    scheduled = step(running)
    assert names(scheduled.decodes) == ["a", "b"]
    assert [(c.sequence.request_id, c.start, c.length) for c in scheduled.prefills] == [("c", 0, 50), ("d", 0, 48)]
    assert scheduled.num_tokens == 100
    assert [c.samples for c in scheduled.prefills] == [True, False]  # d's prompt is not all computed yet


def test_a_prompt_longer_than_the_budget_is_prefilled_over_several_steps() -> None:
    running = scheduler(max_num_seqs=4, max_num_batched_tokens=64)
    running.add(sequence("long", 150))
    chunks = [step(running).prefills for _ in range(3)]
    assert [[(c.start, c.length, c.samples) for c in step_chunks] for step_chunks in chunks] == [
        [(0, 64, False)], [(64, 64, False)], [(128, 22, True)]]
    assert names(step(running).decodes) == ["long"]  # then it decodes, one token a step


def test_a_started_prompt_goes_before_newer_ones() -> None:
    running = scheduler(max_num_seqs=4, max_num_batched_tokens=64)
    running.add(sequence("first", 100))
    step(running)
    running.add(sequence("second", 30))
    scheduled = step(running)
    assert [(c.sequence.request_id, c.start, c.length) for c in scheduled.prefills] == [
        ("first", 64, 36), ("second", 0, 28)]


def test_budget_decodes_and_fairness_under_random_arrivals() -> None:
    """Thousands of steps of random arrivals and lengths: no step exceeds the budget, every decoding
    sequence gets its token in every step, and every request is admitted and finishes (no starvation)."""
    rng = random.Random(0)
    budget, max_num_seqs = 48, 6
    running = scheduler(max_num_seqs=max_num_seqs, max_num_batched_tokens=budget, max_waiting=1000)
    added: list[Sequence] = []
    for index in range(3000):
        if index < 2500 and rng.random() < 0.3:
            added.append(sequence(f"r{index}", rng.randint(1, 200), max_tokens=rng.randint(1, 12)))
            running.add(added[-1])
        decoding = {s.request_id for s in running.running if not s.is_prefilling}
        scheduled = step(running)
        assert scheduled.num_tokens <= budget
        assert set(names(scheduled.decodes)) == decoding
        assert all(chunk.length >= 1 for chunk in scheduled.chunks)
        assert len(running.running) <= max_num_seqs
    assert added and all(s.status is SequenceStatus.FINISHED for s in added)
    assert all(s.num_computed_tokens == s.num_prompt_tokens + s.max_tokens - 1 for s in added)


def test_the_budget_must_cover_every_decoding_sequence() -> None:
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        EngineConfig(max_num_seqs=16, max_num_batched_tokens=8)
    assert EngineConfig(max_num_seqs=600).for_device("cpu").token_budget == 600


def test_freeing_a_slot_moves_the_last_sequence_down() -> None:
    running = scheduler(max_num_seqs=4)
    for name in "abc":
        running.add(sequence(name, 10))
    running.schedule()
    a = running.running[0]
    move = running.free(a)
    assert move is not None and (move.source, move.target) == (2, 0)
    assert [s.request_id for s in running.running] == ["c", "b"]
    assert [s.slot for s in running.running] == [0, 1]
    assert a.status is SequenceStatus.FINISHED and a.slot is None


def test_freeing_a_prompt_mid_prefill_stops_its_chunks() -> None:
    running = scheduler(max_num_seqs=4, max_num_batched_tokens=32)
    running.add(sequence("long", 100))
    running.add(sequence("next", 10))
    step(running)
    running.free(running.running[0])
    assert names(running.schedule().prefills) == ["next"]


def test_waiting_is_bounded_beyond_the_free_slots() -> None:
    running = scheduler(max_num_seqs=2, max_waiting=1)
    for name in "abc":
        running.add(sequence(name, 10))
    with pytest.raises(QueueFullError):
        running.add(sequence("d", 10))
