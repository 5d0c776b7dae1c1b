"""Continuous batching gives every request the tokens it would get alone, and frees what it no longer needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.scheduler import ScheduledStep
from services.local_pipeline import image_question
from services.messages import ContextLengthError, PromptError, QueueFullError, RawImage, RequestOutput, SamplingParams
from services.models.kv_cache import BLOCK_SIZE
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf
from tests.conftest import FAMILY_NAMES, noise_image
from tests.llm_decoder.engine.engine_runs import output_token_ids, run_to_completion

CPU = torch.device("cpu")
GREEDY = SamplingParams(max_tokens=10, temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def halves(tiny_model_dirs: dict[str, Path]) -> dict[str, tuple[VisionHalf, LanguageHalf]]:
    return {name: (VisionHalf(path, CPU), LanguageHalf(path, CPU)) for name, path in tiny_model_dirs.items()}


def _requests(vision: VisionHalf, count: int) -> list[tuple[list[dict], list[ImageEmbedding]]]:
    """`count` different requests: images of several sizes (and one text-only), different questions."""
    requests = []
    for index in range(count):
        if index % 4 == 3:
            requests.append((image_question(f"Question {index}: tell me a story.", 0), []))
        else:
            image = RawImage.from_image(noise_image(56 + 28 * index, 84 + 14 * (index % 3), seed=index))
            requests.append((image_question(f"What is in picture {index}?", 1), vision.encode([image])))
    return requests


def _alone(
    language: LanguageHalf, messages: list[dict], images: list[ImageEmbedding], params: SamplingParams
) -> list[int]:
    engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024))
    engine.add_request("alone", messages, images, params)
    return output_token_ids(run_to_completion(engine)["alone"])


def _recording_steps(engine: LLMEngine) -> list[ScheduledStep]:
    """The steps the engine's scheduler gives from now on, one per engine step."""
    steps: list[ScheduledStep] = []
    schedule = engine.scheduler.schedule

    def recorded() -> ScheduledStep:
        steps.append(schedule())
        return steps[-1]

    engine.scheduler.schedule = recorded  # type: ignore[method-assign]
    return steps


class TestContinuousBatching:
    """A request's greedy tokens do not depend on what else is in the batch, or when it joined."""

    # The device's budget: every prompt in one chunk. 13: prompts cut into chunks (through their images) that
    # are prefilled beside other sequences' decodes and other prompts' chunks. A step time target no step can
    # meet: once the step cost model has seen a few steps, each step's first chunk gets a block, the rest none.
    @pytest.mark.parametrize(
        "sizes",
        [{}, {"max_num_batched_tokens": 13}, {"step_time_target_ms": 1e-6}],
        ids=["whole_prompts", "chunked_prompts", "time_cut_prompts"],
    )
    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_eight_concurrent_requests_match_their_solo_runs(self, family: str, sizes: dict, halves: dict) -> None:
        vision, language = halves[family]
        requests = _requests(vision, 8)
        # Different lengths, so sequences finish at different steps and slots get compacted mid-batch.
        params = [SamplingParams(max_tokens=4 + 2 * i, temperature=0.0, ignore_eos=True) for i in range(8)]
        expected = [_alone(language, m, imgs, p) for (m, imgs), p in zip(requests, params, strict=True)]

        engine = LLMEngine(language, EngineConfig(max_num_seqs=8, max_model_len=1024, **sizes))
        for index in range(4):
            engine.add_request(f"r{index}", *requests[index], params[index])
        outputs: dict[str, list[RequestOutput]] = {}
        steps = _recording_steps(engine)
        for step in range(200):
            if step == 5:  # the rest join while three of the first four are decoding
                for index in range(4, 8):
                    engine.add_request(f"r{index}", *requests[index], params[index])
            for output in engine.step():
                outputs.setdefault(output.request_id, []).append(output)
            if step > 5 and not engine.has_work:
                break

        assert [output_token_ids(outputs[f"r{i}"]) for i in range(8)] == expected
        if "step_time_target_ms" in sizes:
            prefilled = [sum(chunk.length for chunk in scheduled.prefills) for scheduled in steps[5:]]
            assert max(prefilled) == BLOCK_SIZE, "past the target, each step's first chunk gets one block"
            assert prefilled.count(BLOCK_SIZE) >= 4, "every joiner's prompt took steps of its own"
        assert all(len(tokens) == p.max_tokens for tokens, p in zip(expected, params, strict=True))

    def test_more_requests_than_slots_wait_their_turn(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        requests = _requests(vision, 5)
        engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=1024, max_waiting=8))
        for index, request in enumerate(requests):
            engine.add_request(f"r{index}", *request, GREEDY)
        first_step = engine.step()
        assert (engine.stats().num_running, engine.stats().num_waiting) == (2, 3)
        assert {output.request_id for output in first_step} == {"r0", "r1"}
        outputs = run_to_completion(engine)
        for output in first_step:
            outputs[output.request_id].insert(0, output)
        alone = [_alone(language, *r, GREEDY) for r in requests]
        assert [output_token_ids(outputs[f"r{i}"]) for i in range(5)] == alone


class TestPagedKV:
    """Sequences hold only the KV blocks their tokens fill, share the blocks of a common prefix while both run,
    and, when blocks run out, the newest are preempted and later resume with the tokens they would have got."""

    @pytest.mark.parametrize("budget", [None, 13], ids=["whole_prompts", "chunked_prompts"])
    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_preempted_sequences_resume_with_identical_output(
        self, family: str, budget: int | None, halves: dict
    ) -> None:
        vision, language = halves[family]
        requests = _requests(vision, 6)
        params = SamplingParams(max_tokens=30, temperature=0.0, ignore_eos=True)
        expected = [_alone(language, *request, params) for request in requests]
        pool = 8 * language.kv_shape.bytes_per_block()  # 128 tokens: one sequence of max_model_len
        engine = LLMEngine(
            language,
            EngineConfig(max_num_seqs=6, max_model_len=128, kv_cache_bytes=pool, max_num_batched_tokens=budget),
        )
        for index, request in enumerate(requests):
            engine.add_request(f"r{index}", *request, params)
        outputs = run_to_completion(engine)
        assert [output_token_ids(outputs[f"r{index}"]) for index in range(6)] == expected
        stats = engine.stats()
        assert stats.num_preemptions > 0
        assert stats.num_free_kv_blocks == stats.num_kv_blocks == 8

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_concurrent_questions_about_one_image_share_its_blocks(self, family: str, halves: dict) -> None:
        vision, language = halves[family]
        image = vision.encode([RawImage.from_image(noise_image(112, 112, seed=5))])
        questions = [(image_question(f"What is in this picture? Answer {index}.", 1), image) for index in range(2)]
        expected = [_alone(language, *question, GREEDY) for question in questions]
        # A budget of 16 puts the first prompt alone in its first steps: the second is admitted while the first
        # is still running, after its image's blocks are computed.
        engine = LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=1024, max_num_batched_tokens=16))
        first = engine.add_request("first", *questions[0], GREEDY)
        second = engine.add_request("second", *questions[1], GREEDY)
        outputs: dict[str, list[RequestOutput]] = {}
        while not second.block_table:
            for output in engine.step():
                outputs.setdefault(output.request_id, []).append(output)
        shared = second.num_reused_tokens // 16
        assert shared > 0 and not first.is_finished
        assert second.block_table[:shared] == first.block_table[:shared]
        assert all(engine.scheduler.blocks.ref_count(block) == 2 for block in first.block_table[:shared])
        for request_id, rest in run_to_completion(engine).items():
            outputs.setdefault(request_id, []).extend(rest)
        assert [output_token_ids(outputs[name]) for name in ["first", "second"]] == expected


class TestFreeing:
    def test_abort_frees_the_slot_and_the_next_request_is_served(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        (first, second) = _requests(vision, 2)
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024, max_waiting=1))
        engine.add_request("long", *first, SamplingParams(max_tokens=500, temperature=0.0, ignore_eos=True))
        engine.step()
        assert engine.stats().num_running == 1

        assert engine.abort("long")
        assert engine.stats().num_running == 0
        assert engine.stats().num_aborted == 1
        assert not engine.abort("long")

        engine.add_request("next", *second, GREEDY)
        assert output_token_ids(run_to_completion(engine)["next"]) == _alone(language, *second, GREEDY)

    def test_finished_sequences_leave_the_batch(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        engine = LLMEngine(language, EngineConfig(max_num_seqs=4, max_model_len=1024))
        for index, request in enumerate(_requests(vision, 3)):
            engine.add_request(f"r{index}", *request, GREEDY)
        run_to_completion(engine)
        stats = engine.stats()
        assert (stats.num_running, stats.num_waiting, stats.num_free_slots, stats.num_finished) == (0, 0, 4, 3)
        assert stats.kv_cache_usage == 0


class TestRefusals:
    def test_full_waiting_queue_refuses_at_once(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        request = _requests(vision, 1)[0]
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024, max_waiting=1))
        engine.add_request("a", *request, GREEDY)  # takes the free slot at the next step
        engine.add_request("b", *request, GREEDY)  # waits
        with pytest.raises(QueueFullError):
            engine.add_request("c", *request, GREEDY)

    def test_prompt_longer_than_the_context(self, halves: dict) -> None:
        _, language = halves["glm4v"]
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=16))
        with pytest.raises(ContextLengthError, match="context"):
            engine.add_request("a", image_question("word " * 50, 0), [], GREEDY)

    def test_max_tokens_beyond_the_context(self, halves: dict) -> None:
        _, language = halves["glm4v"]
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=64))
        with pytest.raises(ContextLengthError) as raised:
            engine.add_request("a", image_question("hi", 0), [], SamplingParams(max_tokens=100))
        assert raised.value.param == "max_tokens"

    def test_images_that_do_not_match_the_messages(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024))
        embeddings = vision.encode([RawImage.from_image(noise_image(64, 64))])
        with pytest.raises(PromptError):
            engine.add_request("a", image_question("two?", 2), embeddings, GREEDY)


class TestStopping:
    def _solo_text(self, language: LanguageHalf, request: tuple) -> tuple[str, list[int]]:
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024))
        engine.add_request("x", *request, SamplingParams(max_tokens=30, temperature=0.0, ignore_eos=True))
        outputs = run_to_completion(engine)["x"]
        return "".join(o.text for o in outputs), output_token_ids(outputs)

    def test_max_tokens_ends_with_length(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024))
        engine.add_request("x", *_requests(vision, 1)[0], SamplingParams(max_tokens=5, temperature=0, ignore_eos=True))
        outputs = run_to_completion(engine)["x"]
        assert [o.finish_reason for o in outputs] == [None] * 4 + ["length"]
        assert outputs[-1].num_output_tokens == 5

    def test_stop_token_id_ends_with_stop(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        request = _requests(vision, 1)[0]
        _, tokens = self._solo_text(language, request)
        stop_at = tokens[4]
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024))
        params = SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, stop_token_ids=(stop_at,))
        engine.add_request("x", *request, params)
        outputs = run_to_completion(engine)["x"]
        assert output_token_ids(outputs) == tokens[: tokens.index(stop_at) + 1]
        assert outputs[-1].finish_reason == "stop"

    def test_stop_string_is_cut_and_never_streamed(self, halves: dict) -> None:
        vision, language = halves["qwen2_5_vl"]
        request = _requests(vision, 1)[0]
        text, _ = self._solo_text(language, request)
        stop = text[len(text) // 2 : len(text) // 2 + 3]
        assert len(stop) == 3
        engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024))
        engine.add_request("x", *request, SamplingParams(max_tokens=30, temperature=0, ignore_eos=True, stop=(stop,)))
        outputs = run_to_completion(engine)["x"]
        streamed = "".join(o.text for o in outputs)
        assert streamed == text[: text.index(stop)]
        assert outputs[-1].finish_reason == "stop"


class TestSampling:
    def test_a_seed_reproduces_whatever_the_batch(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        requests = _requests(vision, 3)
        seeded = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.95, seed=1234, ignore_eos=True)
        alone = _alone(language, *requests[0], seeded)

        engine = LLMEngine(language, EngineConfig(max_num_seqs=4, max_model_len=1024))
        engine.add_request("seeded", *requests[0], seeded)
        engine.add_request("other1", *requests[1], SamplingParams(max_tokens=12, temperature=1.0))
        engine.add_request("other2", *requests[2], SamplingParams(max_tokens=12, seed=99))
        assert output_token_ids(run_to_completion(engine)["seeded"]) == alone

    def test_other_seeds_give_other_answers(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        request = _requests(vision, 1)[0]
        params = [SamplingParams(max_tokens=12, temperature=1.5, seed=seed, ignore_eos=True) for seed in range(4)]
        answers = {tuple(_alone(language, *request, p)) for p in params}
        assert len(answers) > 1

    def test_top_k_one_is_greedy(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        request = _requests(vision, 1)[0]
        top1 = SamplingParams(max_tokens=10, temperature=1.0, top_k=1, ignore_eos=True)
        assert _alone(language, *request, top1) == _alone(language, *request, GREEDY)
