"""The step cost model learns a step's time from its shape, and the scheduler cuts prompt chunks to a step time
target with it: fewer tokens deep into a long prompt, never past the token budget, never starving a prompt."""

from __future__ import annotations

import random

import pytest

from services.llm_decoder.engine.config import EngineConfig
from services.llm_decoder.engine.scheduler import Scheduler
from services.llm_decoder.engine.step_cost import StepCostModel, StepShape
from tests.llm_decoder.engine.test_scheduler import BLOCK, names, sequence, step


def cpu_like_seconds(shape: StepShape) -> float:
    """A step's time on a 2-core CPU host, about: 5 ms, 0.6 ms a token, 4 us a decode key, 0.2 us a pair."""
    return 0.005 + 6e-4 * shape.tokens + 4e-6 * shape.decode_keys + 2e-7 * shape.pairs


def random_shape(rng: random.Random, with_chunk: bool) -> StepShape:
    shape = StepShape()
    for _ in range(rng.randint(1, 6)):
        shape = shape.with_decode(rng.randint(20, 3000))
    if with_chunk:
        shape = shape.with_chunk(rng.randint(0, 2400), rng.randint(16, 192))
    return shape


def trained(observations: int = 40, seed: int = 0) -> StepCostModel:
    rng = random.Random(seed)
    model = StepCostModel()
    for index in range(observations):
        shape = random_shape(rng, with_chunk=index % 3 == 0)
        model.observe(shape, cpu_like_seconds(shape))
    return model


def test_it_learns_what_a_step_costs_from_steps_that_ran() -> None:
    model = trained()
    rng = random.Random(1)
    for _ in range(20):
        shape = random_shape(rng, with_chunk=True)
        assert model.predict(shape) == pytest.approx(cpu_like_seconds(shape), rel=1e-3)


def test_nothing_is_predicted_before_a_step_with_prompt_chunks_was_seen() -> None:
    model = StepCostModel(min_observations=2)
    decodes = StepShape().with_decode(100)
    for _ in range(10):
        model.observe(decodes, 0.01)
    assert model.predict(decodes) is None
    assert model.longest_chunk(decodes, 0, 192, 0.1) is None
    model.observe(decodes.with_chunk(0, 64), 0.05)
    assert model.predict(decodes) is not None


def test_a_long_run_of_decodes_does_not_push_out_what_chunks_cost() -> None:
    model = trained()
    rng = random.Random(2)
    for _ in range(200):
        shape = random_shape(rng, with_chunk=False)
        model.observe(shape, cpu_like_seconds(shape))
    chunk_step = StepShape().with_decode(2600).with_chunk(2400, 192)
    assert model.predict(chunk_step) == pytest.approx(cpu_like_seconds(chunk_step), rel=1e-3)


def test_the_longest_chunk_is_the_most_that_fits_the_target() -> None:
    model = trained()
    decodes = StepShape().with_decode(2600).with_decode(100)
    for start in (0, 1000, 2400):
        fits = model.longest_chunk(decodes, start, 192, 0.1)
        assert fits is not None and 0 < fits < 192
        assert cpu_like_seconds(decodes.with_chunk(start, fits)) <= 0.1 + 1e-4
        assert cpu_like_seconds(decodes.with_chunk(start, fits + 1)) > 0.1 - 1e-4
    assert model.longest_chunk(decodes, 0, 192, 0.001) == 0, "the decodes alone exceed the target"
    assert model.longest_chunk(decodes, 0, 40, 10.0) == 40, "never more than asked for"


def timed_scheduler(target_ms: float, **sizes: int) -> Scheduler:
    """A scheduler whose cost model has already seen 40 steps."""
    running = Scheduler(EngineConfig(step_time_target_ms=target_ms, **sizes).for_device("cpu"), 4096, BLOCK)
    running.step_cost = trained()
    return running


def test_a_chunk_deep_into_a_long_prompt_gets_fewer_tokens() -> None:
    running = timed_scheduler(100.0, max_num_seqs=4, max_num_batched_tokens=192)
    running.add(sequence("stream", 10, max_tokens=1000))
    step(running)
    running.add(sequence("long", 2600))
    lengths = []
    while running.prefilling or running.waiting:
        scheduled = step(running)
        assert names(scheduled.decodes) == ["stream"], "the running stream decodes in every step"
        assert scheduled.num_tokens <= 192
        predicted = running.step_cost.predict(scheduled.shape)
        assert predicted is not None and predicted <= 0.1 + 1e-9
        lengths.append(scheduled.prefills[0].length)
    assert sum(lengths) == 2600
    assert lengths[0] > 2 * lengths[-1], f"attention over a longer context leaves room for fewer tokens: {lengths}"


def test_past_the_target_each_step_still_prefills_a_block() -> None:
    running = timed_scheduler(1.0, max_num_seqs=4, max_num_batched_tokens=192)
    for name in ("first", "second"):
        running.add(sequence(name, 40))
    scheduled = [step(running) for _ in range(3)]
    assert [[(c.sequence.request_id, c.length) for c in s.prefills] for s in scheduled] == [
        [("first", BLOCK)],
        [("first", BLOCK)],
        [("first", 8)],
    ]
    assert names(step(running).prefills) == ["second"], "then the next prompt, in arrival order"


def test_without_a_target_the_budget_alone_sizes_chunks() -> None:
    running = timed_scheduler(0.0, max_num_seqs=4, max_num_batched_tokens=192)
    running.add(sequence("stream", 10, max_tokens=1000))
    step(running)
    running.add(sequence("long", 2600))
    assert [step(running).prefills[0].length for _ in range(3)] == [191, 191, 191]


def test_there_is_no_target_unless_configured() -> None:
    assert EngineConfig().for_device("cpu").step_time_target_ms == 0
    assert EngineConfig(step_time_target_ms=40).for_device("cuda").step_time_target_ms == 40
    with pytest.raises(ValueError, match="step_time_target_ms"):
        EngineConfig(step_time_target_ms=-1)
