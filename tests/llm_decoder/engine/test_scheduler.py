"""Continuous batching within a token budget: decodes first, prompt chunks in what is left, no starvation;
admission by free slots, free KV blocks and the waiting bound; preemption of the newest when blocks run out."""

from __future__ import annotations

import random
import zlib

import pytest
import torch

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.scheduler import ScheduledStep, Scheduler
from services.llm_decoder.engine.sequence import Sequence, SequenceStatus
from services.messages import QueueFullError, SamplingParams
from services.models.language_half import Prompt

BLOCK = 16


def sequence(name: str, prompt_tokens: int, max_tokens: int = 8) -> Sequence:
    """A prompt of its own (its first token differs from every other name's: no prefix blocks are shared)."""
    token_ids = [zlib.crc32(name.encode())] + [0] * (prompt_tokens - 1)
    prompt = Prompt(token_ids, (), torch.zeros(3, prompt_tokens, dtype=torch.long), 0)
    return Sequence(name, prompt, [], SamplingParams(), max_tokens=max_tokens)


def scheduler(num_blocks: int = 4096, **sizes: int) -> Scheduler:
    return Scheduler(EngineConfig(**sizes).for_device("cpu"), num_blocks, block_size=BLOCK)


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
        [(0, 64, False)],
        [(64, 64, False)],
        [(128, 22, True)],
    ]
    assert names(step(running).decodes) == ["long"]  # then it decodes, one token a step


def test_a_started_prompt_goes_before_newer_ones() -> None:
    running = scheduler(max_num_seqs=4, max_num_batched_tokens=64)
    running.add(sequence("first", 100))
    step(running)
    running.add(sequence("second", 30))
    scheduled = step(running)
    assert [(c.sequence.request_id, c.start, c.length) for c in scheduled.prefills] == [
        ("first", 64, 36),
        ("second", 0, 28),
    ]


@pytest.mark.parametrize("num_blocks", [4096, 40], ids=["plenty_of_blocks", "preempting"])
def test_budget_decodes_and_fairness_under_random_arrivals(num_blocks: int) -> None:
    """Thousands of steps of random arrivals and lengths: no step exceeds the budget, every decoding
    sequence gets its token in every step (unless preempted in it), the blocks held are those the running
    sequences' tokens need, and every request is admitted and finishes (no starvation, no leak)."""
    rng = random.Random(0)
    budget, max_num_seqs = 48, 6
    running = scheduler(
        num_blocks, max_num_seqs=max_num_seqs, max_num_batched_tokens=budget, max_waiting=1000, max_model_len=256
    )
    added: list[Sequence] = []
    for index in range(10_000):  # arrivals for 2,500 steps, then until every request is done
        if index >= 2500 and not (running.waiting or running.running):
            break
        if index < 2500 and rng.random() < 0.3:
            added.append(sequence(f"r{index}", rng.randint(1, 200), max_tokens=rng.randint(1, 40)))
            running.add(added[-1])
        decoding = {s.request_id for s in running.running if not s.is_prefilling}
        preemptions = running.num_preemptions
        scheduled = step(running)
        assert scheduled.num_tokens <= budget
        if running.num_preemptions == preemptions:
            assert set(names(scheduled.decodes)) == decoding
        else:
            assert set(names(scheduled.decodes)) <= decoding
        assert all(chunk.length >= 1 for chunk in scheduled.chunks)
        assert len(running.running) <= max_num_seqs
        # Every running sequence holds the blocks of its computed tokens, and no block is held by nobody.
        assert all(len(s.block_table) * BLOCK >= s.num_computed_tokens for s in running.running)
        assert running.blocks.num_used_blocks == len({b for s in running.running for b in s.block_table})
    assert added and all(s.status is SequenceStatus.FINISHED for s in added)
    assert all(s.num_output_tokens == s.max_tokens for s in added)
    assert running.blocks.num_free_blocks == num_blocks
    assert (running.num_preemptions > 0) == (num_blocks == 40)


def test_the_budget_must_cover_every_decoding_sequence() -> None:
    with pytest.raises(ValueError, match="max_num_batched_tokens"):
        EngineConfig(max_num_seqs=16, max_num_batched_tokens=8)
    assert EngineConfig(max_num_seqs=600).for_device("cpu").token_budget == 600


def test_a_sequence_holds_the_blocks_its_tokens_fill_and_frees_them() -> None:
    running = scheduler(num_blocks=16, max_num_seqs=4, max_model_len=64)
    running.add(sequence("a", 20, max_tokens=20))
    step(running)  # the prompt: 20 tokens in two blocks
    a = running.running[0]
    assert len(a.block_table) == 2 and running.blocks.num_free_blocks == 14
    for _ in range(12):  # decodes up to position 31: still two blocks
        step(running)
    assert (a.num_computed_tokens, len(a.block_table)) == (32, 2)
    step(running)  # position 32 starts a third block
    assert len(a.block_table) == 3 and running.blocks.num_free_blocks == 13
    running.free(a)
    assert a.status is SequenceStatus.FINISHED and a.block_table == []
    assert running.blocks.num_free_blocks == 16


def test_a_prompt_waits_until_blocks_for_all_of_it_are_free() -> None:
    running = scheduler(num_blocks=8, max_num_seqs=4, max_model_len=128, max_num_batched_tokens=256)
    running.add(sequence("big", 100, max_tokens=4))  # 7 blocks
    running.add(sequence("next", 30))  # 2 blocks: waits for big's
    assert names(step(running).prefills) == ["big"]
    while running.running and running.running[0].request_id == "big":
        assert names(step(running).prefills) == []
    assert names(step(running).prefills) == ["next"]


def test_out_of_blocks_the_newest_is_preempted_and_resumed_first() -> None:
    running = scheduler(num_blocks=6, max_num_seqs=4, max_model_len=96, max_num_batched_tokens=256)
    for name in ["old", "new"]:
        running.add(sequence(name, 48, max_tokens=40))  # three blocks each: the pool is full
    step(running)
    new = running.running[1]
    running.add(sequence("later", 10))
    scheduled = step(running)  # old's next token starts a fourth block: new gives its blocks up
    assert names(scheduled.decodes) == ["old"] and scheduled.prefills == []  # nothing admitted in that step
    assert new.status is SequenceStatus.WAITING and new.num_computed_tokens == 0 and new.block_table == []
    assert [s.request_id for s in running.waiting] == ["new", "later"]
    assert new.num_output_tokens == 1  # kept: its prompt and output are computed again on resumption
    later = running.waiting[1]
    while new.status is SequenceStatus.WAITING:
        assert later.status is SequenceStatus.WAITING  # nobody overtakes the preempted sequence
        step(running)
    assert running.num_preemptions == 1


def test_a_resumed_sequence_computes_its_prompt_and_output_then_samples() -> None:
    running = scheduler(num_blocks=6, max_num_seqs=4, max_model_len=96, max_num_batched_tokens=256)
    for name in ["old", "new"]:
        running.add(sequence(name, 48, max_tokens=40))
    step(running)
    old, new = running.running
    step(running)  # new is preempted, with one output token
    while not old.is_finished:
        step(running)
    scheduled = step(running)
    assert [(c.sequence.request_id, c.start, c.length, c.samples) for c in scheduled.prefills] == [
        ("new", 0, 49, True)
    ]  # its 48 prompt tokens and its first output token, in one chunk that samples
    assert new.num_output_tokens == 2 and new.num_preemptions == 1
    assert scheduled.started == []  # not a new request


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
