"""Follow-up questions reuse the KV blocks of the earlier turns: the same greedy tokens as without reuse, for
both families, with only the tokens after the last shared whole block prefilled, never across different
images, and never from blocks that were handed to another sequence since."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import RawImage, RequestOutput, SamplingParams
from services.models.kv_cache import BLOCK_SIZE
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf
from tests.conftest import FAMILY_NAMES, noise_image
from tests.llm_decoder.engine.engine_runs import output_token_ids, run_to_completion

CPU = torch.device("cpu")
GREEDY = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
WITH_REUSE = EngineConfig(max_num_seqs=4, max_model_len=1024)
WITHOUT_REUSE = EngineConfig(max_num_seqs=4, max_model_len=1024, enable_prefix_caching=False)
Messages = list[dict[str, Any]]


@pytest.fixture(scope="module")
def halves(tiny_model_dirs: dict[str, Path]) -> dict[str, tuple[VisionHalf, LanguageHalf]]:
    return {name: (VisionHalf(path, CPU), LanguageHalf(path, CPU)) for name, path in tiny_model_dirs.items()}


def _encode(vision: VisionHalf, seed: int, width: int = 112, height: int = 84) -> ImageEmbedding:
    return vision.encode([RawImage.from_image(noise_image(width, height, seed=seed))])[0]


def _ask(
    engine: LLMEngine,
    request_id: str,
    messages: Messages,
    images: list[ImageEmbedding],
    params: SamplingParams = GREEDY,
) -> list[RequestOutput]:
    engine.add_request(request_id, messages, images, params)
    return run_to_completion(engine)[request_id]


def _text(outputs: list[RequestOutput]) -> str:
    return "".join(output.text for output in outputs)


def _follow_up(messages: Messages, answer: str, question: str, new_images: int = 0) -> Messages:
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(new_images)]
    content.append({"type": "text", "text": question})
    return [*messages, {"role": "assistant", "content": answer}, {"role": "user", "content": content}]


def _block_reuse(cached: list[int], prompt: list[int]) -> int:
    """Prompt tokens a cache of `cached`'s KV gives: the whole blocks they share, short of the prompt's last
    token (always computed for its logits)."""
    differing = [index for index, (a, b) in enumerate(zip(cached, prompt, strict=False)) if a != b]
    shared = differing[0] if differing else min(len(cached), len(prompt))
    return min(shared, len(prompt) - 1) // BLOCK_SIZE * BLOCK_SIZE


def _record_logits(language: LanguageHalf, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Every forward's logits from now on (the language half's `forward`, wrapped for this test)."""
    recorded: list[torch.Tensor] = []
    forward = language.forward

    def recording_forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        logits = forward(*args, **kwargs)
        recorded.append(logits)
        return logits

    monkeypatch.setattr(language, "forward", recording_forward)
    return recorded


class TestFollowUpsGiveTheSameTokens:
    """With reuse, every turn of a conversation gets the logits, so the greedy tokens, it gets without (M-RoPE
    positions of the reused prefix and of the new tokens, a new image in a later turn included). Logits are
    compared, not only tokens: a tiny random model's argmax can survive wrong positions."""

    @pytest.mark.parametrize("new_image", [False, True], ids=["text_follow_up", "follow_up_with_new_image"])
    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_three_turns(self, family: str, new_image: bool, halves: dict, monkeypatch: pytest.MonkeyPatch) -> None:
        vision, language = halves[family]
        with_reuse, without_reuse = LLMEngine(language, WITH_REUSE), LLMEngine(language, WITHOUT_REUSE)
        logits = _record_logits(language, monkeypatch)  # after their start-up self-checks
        messages, images = image_question("What is in this picture?", 1), [_encode(vision, seed=1)]
        reused, expected_reuse, cached = [], [], []
        for turn, question in enumerate(["Describe the image.", "What colour is the red shape?", None]):
            expected = _ask(without_reuse, f"turn{turn}", messages, images)
            expected_logits = logits[:]
            logits.clear()
            outputs = _ask(with_reuse, f"turn{turn}", messages, images)
            assert output_token_ids(outputs) == output_token_ids(expected)
            assert len(logits) == len(expected_logits)
            for step, (got, want) in enumerate(zip(logits, expected_logits, strict=True)):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4, msg=f"turn {turn}, step {step}")
            logits.clear()
            assert expected[0].num_reused_tokens == 0
            prompt = language.render_prompt(messages, [image.grid_thw for image in images]).token_ids
            reused.append(outputs[0].num_reused_tokens)
            expected_reuse.append(_block_reuse(cached, prompt))
            cached = prompt + output_token_ids(outputs)[:-1]  # the last token's KV is never computed
            if question is not None:
                added = int(new_image and turn == 0)
                messages = _follow_up(messages, _text(outputs), question, new_images=added)
                images = images + [_encode(vision, seed=7, width=84, height=140)] * added
        assert reused == expected_reuse
        assert reused[0] == 0 and reused[1] >= BLOCK_SIZE and reused[2] >= reused[1]
        assert without_reuse.stats().prefix_cache_queried_tokens == 0


class TestOnlyNewTokensArePrefilled:
    """The second turn's prefill computes only the tokens after what the first turn left in the cache: the image
    it carries again is not even read (its embedding here is all NaN)."""

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_second_turn(self, family: str, halves: dict, monkeypatch: pytest.MonkeyPatch) -> None:
        vision, language = halves[family]
        engine = LLMEngine(language, WITH_REUSE)
        first, images = image_question("What is in this picture?", 1), [_encode(vision, seed=1)]
        answer = _ask(engine, "first", first, images)
        second = _follow_up(first, _text(answer), "Describe the image.")
        first_prompt = language.render_prompt(first, [images[0].grid_thw]).token_ids
        second_prompt = language.render_prompt(second, [images[0].grid_thw]).token_ids
        reusable = _block_reuse(first_prompt + output_token_ids(answer)[:-1], second_prompt)
        image_end = language.render_prompt(first, [images[0].grid_thw]).image_spans[0][1]
        assert reusable >= image_end  # the image and the first question at least
        expected = output_token_ids(_ask(LLMEngine(language, WITHOUT_REUSE), "second", second, images))
        image = images[0]
        unread = ImageEmbedding(image.content_hash, image.grid_thw, torch.full_like(image.embeds, torch.nan))

        prefilled: list[int] = []
        forward = language.forward

        def recording_forward(inputs_embeds: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            prefilled.append(inputs_embeds.shape[1])
            return forward(inputs_embeds, *args, **kwargs)

        monkeypatch.setattr(language, "forward", recording_forward)
        outputs = _ask(engine, "second", second, [unread])
        assert output_token_ids(outputs) == expected
        assert prefilled[0] == len(second_prompt) - reusable
        assert outputs[-1].num_reused_tokens == reusable
        stats = engine.stats()
        assert stats.prefix_cache_hit_tokens == reusable
        assert stats.prefix_cache_queried_tokens == len(first_prompt) + len(second_prompt)
        assert stats.prefix_cache_hit_rate == pytest.approx(reusable / (len(first_prompt) + len(second_prompt)))


class TestImagesAreKeyedByContent:
    """Two images with the same placeholder tokens never share KV; the same image again does."""

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_another_image_of_the_same_size(self, family: str, halves: dict) -> None:
        vision, language = halves[family]
        question = image_question("What is in this picture?", 1)
        first, other = _encode(vision, seed=1), _encode(vision, seed=2)
        assert first.grid_thw == other.grid_thw and first.content_hash != other.content_hash
        prompt = language.render_prompt(question, [first.grid_thw])
        engine = LLMEngine(language, WITH_REUSE)
        first_tokens = output_token_ids(_ask(engine, "first", question, [first]))

        outputs = _ask(engine, "other", question, [other])
        assert outputs[0].num_reused_tokens <= prompt.image_spans[0][0]
        without_reuse = _ask(LLMEngine(language, WITHOUT_REUSE), "other", question, [other])
        assert output_token_ids(outputs) == output_token_ids(without_reuse)

        again = _ask(engine, "again", question, [first])
        # Whole blocks, short of the last token: its logits give the first output token.
        assert again[0].num_reused_tokens == (prompt.num_tokens - 1) // BLOCK_SIZE * BLOCK_SIZE > 0
        assert output_token_ids(again) == first_tokens


class TestContinuousBatching:
    """Follow-ups and a new request are prefilled in the same forward (each from its own reused length) as
    another sequence's decode, and each gets the tokens it gets alone without reuse."""

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_mixed_prefill_beside_a_running_sequence(
        self, family: str, halves: dict, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        vision, language = halves[family]
        conversations = [
            (image_question(f"What is in picture {index}?", 1), [_encode(vision, 10 + index, 56 + 28 * index)])
            for index in range(3)
        ]
        engine = LLMEngine(language, WITH_REUSE)
        requests = []
        for index, (messages, images) in enumerate(conversations[:2]):
            answer = _ask(engine, f"first{index}", messages, images)
            requests.append((_follow_up(messages, _text(answer), "Describe the image."), images))
        requests.append(conversations[2])
        long_params = SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)
        long_request: tuple[Messages, list[ImageEmbedding]] = (image_question("Tell me a story.", 0), [])
        plain = LLMEngine(language, WITHOUT_REUSE)
        logits = _record_logits(language, monkeypatch)
        expected, expected_first_logits = [], []
        for index, request in enumerate(requests):
            logits.clear()
            expected.append(output_token_ids(_ask(plain, f"r{index}", *request)))
            expected_first_logits.append(logits[0][0])
        expected_long = output_token_ids(_ask(plain, "long", *long_request, long_params))

        new_messages, new_images = conversations[2]
        new_image_start = language.render_prompt(new_messages, [new_images[0].grid_thw]).image_spans[0][0]

        engine.add_request("long", *long_request, long_params)
        outputs: dict[str, list[RequestOutput]] = {}
        for step in range(100):
            if step == 2:
                for index, request in enumerate(requests):
                    engine.add_request(f"r{index}", *request, GREEDY)
            logits.clear()
            for output in engine.step():
                outputs.setdefault(output.request_id, []).append(output)
            if step == 2:  # all three prefilled in this step's forward, from different reused lengths
                reused = [outputs[f"r{index}"][0].num_reused_tokens for index in range(3)]
                assert reused[0] > 0 and reused[1] > 0 and reused[2] <= new_image_start
                assert len(logits) == 1  # one flat batch: the running sequence's decode row, then the prompts
                torch.testing.assert_close(logits[0][1:], torch.stack(expected_first_logits), rtol=1e-4, atol=1e-4)
            if step > 2 and not engine.has_work:
                break

        assert [output_token_ids(outputs[f"r{index}"]) for index in range(3)] == expected
        assert output_token_ids(outputs["long"]) == expected_long


class TestBlocksAreHandedOutAgain:
    """When the pool runs short, cached blocks nobody holds go to new sequences; blocks a running sequence
    shares are never handed out or written."""

    def test_a_running_sequences_shared_blocks_survive_a_full_pool(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        messages, images = image_question("What is in this picture?", 1), [_encode(vision, seed=1)]
        pool = 8 * language.kv_shape.bytes_per_block()  # 128 tokens: one sequence of max_model_len
        config = EngineConfig(max_num_seqs=4, max_model_len=128, kv_cache_bytes=pool)
        engine = LLMEngine(language, config)
        answer = _ask(engine, "first", messages, images)
        follow_up = _follow_up(messages, _text(answer), "Describe the image.")
        long_params = SamplingParams(max_tokens=24, temperature=0.0, ignore_eos=True)
        others = [
            (image_question("Describe the image.", 1), [_encode(vision, 20 + index, 140, 112)]) for index in range(3)
        ]
        plain = LLMEngine(language, EngineConfig(max_num_seqs=4, max_model_len=128, enable_prefix_caching=False))
        expected = output_token_ids(_ask(plain, "follow-up", follow_up, images, long_params))
        expected_others = [output_token_ids(_ask(plain, f"other{index}", *other)) for index, other in enumerate(others)]

        sequence = engine.add_request("follow-up", follow_up, images, long_params)
        outputs = engine.step()
        shared = sequence.block_table[: outputs[0].num_reused_tokens // BLOCK_SIZE]
        assert shared
        kv = engine.runner.kv.buffer
        shared_kv = kv[:, :, shared].clone()
        # Other questions about other pictures take every free block while the follow-up decodes.
        for index, other in enumerate(others):
            engine.add_request(f"other{index}", *other, GREEDY)
        least_free = engine.stats().num_free_kv_blocks
        while not sequence.is_finished:
            outputs += engine.step()
            least_free = min(least_free, engine.stats().num_free_kv_blocks)
            if not sequence.is_finished:
                assert all(engine.scheduler.blocks.ref_count(block) >= 1 for block in shared)
                assert torch.equal(kv[:, :, shared], shared_kv)
        assert least_free == 0  # the pool did run short
        outputs += [output for outputs_of_step in run_to_completion(engine).values() for output in outputs_of_step]
        by_request = {
            name: [o for o in outputs if o.request_id == name]
            for name in ["follow-up", *(f"other{index}" for index in range(3))]
        }
        assert output_token_ids(by_request["follow-up"]) == expected
        assert [output_token_ids(by_request[f"other{index}"]) for index in range(3)] == expected_others
        stats = engine.stats()
        assert stats.num_free_kv_blocks == stats.num_kv_blocks  # nothing leaked
        assert 0 < stats.prefix_cache_blocks <= stats.num_kv_blocks


class TestAbortedAnswers:
    def test_an_aborted_answer_is_reused(self, halves: dict) -> None:
        vision, language = halves["glm4v"]
        messages, images = image_question("What is in this picture?", 1), [_encode(vision, seed=3)]
        prompt_tokens = language.render_prompt(messages, [images[0].grid_thw]).num_tokens
        engine = LLMEngine(language, WITH_REUSE)
        engine.add_request("stopped", messages, images, SamplingParams(max_tokens=100, temperature=0.0))
        for _ in range(3):
            engine.step()
        assert engine.abort("stopped")
        outputs = _ask(engine, "retry", messages, images)
        assert outputs[0].num_reused_tokens == (prompt_tokens - 1) // BLOCK_SIZE * BLOCK_SIZE > 0
        without_reuse = _ask(LLMEngine(language, WITHOUT_REUSE), "retry", messages, images)
        assert output_token_ids(outputs) == output_token_ids(without_reuse)
