"""The async driver never leaves a client hanging: a failing engine ends every stream with an error."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.decode_timings import DecodeTimings
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.scheduler import ScheduledStep
from services.llm_decoder.engine.sequence import Sequence
from services.local_pipeline import image_question
from services.messages import DecodeRequest, EngineDeadError, QueueFullError, RequestOutput, SamplingParams, StepError
from services.models.language_half import LanguageHalf

GREEDY = SamplingParams(max_tokens=4, temperature=0, ignore_eos=True)


@pytest.fixture(scope="module")
def language(tiny_model_dirs: dict[str, Path]) -> LanguageHalf:
    return LanguageHalf(tiny_model_dirs["glm4v"], torch.device("cpu"))


def _request(request_id: str) -> DecodeRequest:
    return DecodeRequest(request_id, image_question("hello", 0), GREEDY)


async def test_streams_every_output_until_finished(language: LanguageHalf) -> None:
    engine = AsyncLLMEngine(LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256)), stream_interval_s=0)
    outputs = [output async for output in engine.generate(_request("a"), [])]
    assert [output.num_output_tokens for output in outputs] == [1, 2, 3, 4]
    assert outputs[-1].finish_reason == "length"


async def test_prompts_are_prepared_off_the_event_loop(language: LanguageHalf, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendering a long prompt must not hold up the streams the event loop is sending."""
    llm_engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256))
    threads: list[threading.Thread] = []
    prepare = llm_engine.prepare

    def recording_prepare(*args: object) -> Sequence:
        threads.append(threading.current_thread())
        return prepare(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(llm_engine, "prepare", recording_prepare)
    outputs = await _drain(AsyncLLMEngine(llm_engine).generate(_request("a"), []))
    assert outputs[-1].finish_reason == "length"
    assert len(threads) == 1 and threads[0] is not threading.current_thread()


async def test_a_chunked_prefill_is_timed_from_its_first_chunk_to_its_first_token(
    language: LanguageHalf, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm_engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=256, max_num_batched_tokens=3))
    forwards: list[tuple[int, int]] = []  # (started, ended) of each forward
    run = llm_engine.runner.run

    def timed_run(step: ScheduledStep) -> torch.Tensor:
        started = time.time_ns()
        logits = run(step)
        forwards.append((started, time.time_ns()))
        return logits

    monkeypatch.setattr(llm_engine.runner, "run", timed_run)
    request = _request("a")
    prompt_tokens = llm_engine.prepare(request, []).num_prompt_tokens
    timings = DecodeTimings()
    outputs = [
        output async for output in AsyncLLMEngine(llm_engine, stream_interval_s=0).generate(request, [], timings)
    ]
    chunks = -(-prompt_tokens // 3)
    assert chunks >= 3 and len(forwards) == chunks + len(outputs) - 1
    assert timings.prefill_started_ns is not None and timings.prefill_finished_ns is not None
    assert timings.arrived_ns <= timings.prefill_started_ns <= forwards[0][0]
    assert forwards[chunks - 1][1] <= timings.prefill_finished_ns <= forwards[chunks][0]


async def test_a_failing_step_fails_the_streams_and_the_health_check(
    language: LanguageHalf, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm_engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256))

    def broken_step() -> list:
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(llm_engine, "step_tokens", broken_step)
    engine = AsyncLLMEngine(llm_engine)
    with pytest.raises(EngineDeadError, match="device-side assert"):
        async for _ in engine.generate(_request("a"), []):
            pass
    assert not engine.is_healthy
    with pytest.raises(EngineDeadError):
        async for _ in engine.generate(_request("b"), []):
            pass


async def test_refuses_at_once_when_the_queue_is_full(language: LanguageHalf) -> None:
    engine = AsyncLLMEngine(LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=256, max_waiting=0)))
    first = engine.generate(DecodeRequest("a", image_question("hello", 0), SamplingParams(max_tokens=100)), [])
    await anext(first)
    with pytest.raises(QueueFullError):
        await anext(engine.generate(_request("b"), []))
    await first.aclose()


async def test_a_slow_consumer_gets_the_backlog_in_one_output(language: LanguageHalf) -> None:
    engine = AsyncLLMEngine(LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256)))
    params = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    stream = engine.generate(DecodeRequest("slow", image_question("hello", 0), params), [])
    first = await anext(stream)
    while engine.stats().output_tokens < 12:  # let the engine run ahead of this consumer
        await asyncio.sleep(0.01)
    rest = [output async for output in stream]
    assert len(rest) == 1
    assert first.num_output_tokens + len(rest[0].token_ids) == 12
    assert rest[0].finish_reason == "length"
    assert rest[0].num_output_tokens == 12


async def test_a_stream_sends_its_first_and_last_output_at_once_and_merges_between(language: LanguageHalf) -> None:
    # An hour between messages: a stream that waited out its interval before the last output would time out.
    engine = AsyncLLMEngine(
        LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256)), stream_interval_s=3600
    )
    params = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)

    async def collect() -> list[RequestOutput]:
        request = DecodeRequest("batched", image_question("hi", 0), params)
        return [output async for output in engine.generate(request, [])]

    outputs = await asyncio.wait_for(collect(), timeout=60)
    assert [len(output.token_ids) for output in outputs] == [1, 11]
    assert outputs[-1].finish_reason == "length"
    assert outputs[-1].num_output_tokens == 12


async def test_a_stream_cancelled_while_it_waits_for_its_interval_frees_its_sequence(language: LanguageHalf) -> None:
    llm_engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=4096))
    engine = AsyncLLMEngine(llm_engine, stream_interval_s=3600)
    params = SamplingParams(max_tokens=4000, temperature=0, ignore_eos=True)  # seconds of steps: cut short here
    stream = engine.generate(DecodeRequest("gone", image_question("hi", 0), params), [])
    await anext(stream)
    waiting = asyncio.create_task(anext(stream))  # holds the next outputs back for the interval
    while llm_engine.stats().output_tokens < 3:
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    async with asyncio.timeout(60):
        while llm_engine.stats().num_running or llm_engine.stats().num_aborted != 1:
            await asyncio.sleep(0.01)


class FailingForward:
    """Stands in for a model runner's forward: fails the next `times` calls, then runs the real one."""

    def __init__(self, forward: object, times: int) -> None:
        self.forward = forward
        self.times = times

    def __call__(self, step: ScheduledStep) -> torch.Tensor:
        if self.times > 0:
            self.times -= 1
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.forward(step)  # type: ignore[operator]


async def _drain(stream: object) -> list[RequestOutput]:
    return [output async for output in stream]  # type: ignore[attr-defined]


def _failing_engine(
    language: LanguageHalf, monkeypatch: pytest.MonkeyPatch, max_num_seqs: int, times: int
) -> AsyncLLMEngine:
    """An engine whose runner's forward fails its next `times` calls."""
    llm_engine = LLMEngine(language, EngineConfig(max_num_seqs=max_num_seqs, max_model_len=256))
    monkeypatch.setattr(llm_engine.runner, "run", FailingForward(llm_engine.runner.run, times))
    return AsyncLLMEngine(llm_engine)


async def test_a_failed_step_ends_its_requests_with_an_error_and_the_engine_serves_on(
    language: LanguageHalf, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _failing_engine(language, monkeypatch, max_num_seqs=2, times=1)
    with pytest.raises(StepError, match="illegal memory access"):
        await _drain(engine.generate(_request("a"), []))
    assert engine.is_healthy
    stats = engine.stats()
    assert (stats.num_failed, stats.num_running, stats.num_free_slots) == (1, 0, 2)
    after = await _drain(engine.generate(_request("b"), []))
    assert after[-1].num_output_tokens == 4 and after[-1].finish_reason == "length"


async def test_a_failed_step_spares_the_requests_it_did_not_run(
    language: LanguageHalf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt that waits for a slot is not in the failing step: it is answered once the slot frees."""
    engine = _failing_engine(language, monkeypatch, max_num_seqs=1, times=1)
    failed, spared = await asyncio.gather(
        _drain(engine.generate(_request("a"), [])), _drain(engine.generate(_request("b"), [])), return_exceptions=True
    )
    assert isinstance(failed, StepError)
    assert isinstance(spared, list) and spared[-1].num_output_tokens == 4


async def test_steps_that_keep_failing_make_the_engine_unhealthy(
    language: LanguageHalf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lost device fails every forward."""
    engine = _failing_engine(language, monkeypatch, max_num_seqs=2, times=1000)
    for request_id in ("a", "b"):
        with pytest.raises(StepError):
            await _drain(engine.generate(_request(request_id), []))
    assert engine.is_healthy
    with pytest.raises(EngineDeadError):
        await _drain(engine.generate(_request("c"), []))
    assert not engine.is_healthy


async def test_text_is_made_on_the_event_loop_while_the_next_step_runs(
    language: LanguageHalf, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Detokenizing and stop strings are off the step's critical path: a step's tokens become text while the
    next step runs, on the event loop, and the step thread never touches the tokenizer."""
    llm_engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256))
    engine = AsyncLLMEngine(llm_engine, stream_interval_s=0)
    step_in_flight, processed = threading.Event(), threading.Event()
    overlapped: list[bool] = []  # for each step's tokens: whether a step was running while they became text
    step_threads: list[str] = []
    text_threads: list[str] = []
    step_tokens, process, submit = llm_engine.step_tokens, llm_engine.outputs.process, engine._stepper.submit

    def recording_submit(*args: Any, **kwargs: Any) -> Any:
        step_in_flight.set()
        return submit(*args, **kwargs)

    def recording_step() -> list:
        step_threads.append(threading.current_thread().name)
        tokens = step_tokens()
        if len(step_threads) > 1:  # the step ends only once the previous step's text is made (or never was)
            processed.wait(timeout=5)
            processed.clear()
        step_in_flight.clear()
        return tokens

    def recording_process(tokens: list) -> tuple:
        text_threads.append(threading.current_thread().name)
        overlapped.append(step_in_flight.is_set())
        processed.set()
        return process(tokens)

    def recording_decode(*args: object, **kwargs: object) -> str:
        text_threads.append(threading.current_thread().name)
        return decode(*args, **kwargs)

    decode = language.tokenizer.decode
    monkeypatch.setattr(engine._stepper, "submit", recording_submit)
    monkeypatch.setattr(llm_engine, "step_tokens", recording_step)
    monkeypatch.setattr(llm_engine.outputs, "process", recording_process)
    monkeypatch.setattr(language.tokenizer, "decode", recording_decode)
    outputs = await _drain(engine.generate(_request("a"), []))
    assert [output.num_output_tokens for output in outputs] == [1, 2, 3, 4]
    assert overlapped == [True, True, True, False]  # the last step's tokens, with nothing left to run
    assert step_threads and all(name.startswith("engine-step") for name in step_threads)
    assert text_threads and set(text_threads) == {threading.current_thread().name}


async def test_a_stop_string_found_after_its_step_ends_the_stream_and_then_the_sequence(
    language: LanguageHalf,
) -> None:
    llm_engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256))
    engine = AsyncLLMEngine(llm_engine)
    messages = image_question("hello", 0)
    unstopped = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
    text = "".join(o.text for o in await _drain(engine.generate(DecodeRequest("solo", messages, unstopped), [])))
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert len(stop) == 2
    stopped = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True, stop=(stop,))
    outputs = await _drain(engine.generate(DecodeRequest("x", messages, stopped), []))
    assert "".join(o.text for o in outputs) == text[: text.index(stop)]
    assert outputs[-1].finish_reason == "stop"
    for _ in range(100):  # the engine finishes the sequence between its next steps
        if llm_engine.stats().num_running == 0:
            break
        await asyncio.sleep(0.05)
    stats = llm_engine.stats()
    assert (stats.num_running, stats.num_finished, stats.num_aborted) == (0, 2, 0)
