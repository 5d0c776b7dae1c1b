"""The async driver counts each prefilled prompt's tokens, and those the prefix cache held, per replica."""

from __future__ import annotations

from pathlib import Path

import prometheus_client
import pytest
import torch

from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import DecodeRequest, RequestOutput, SamplingParams
from services.models.kv_cache import BLOCK_SIZE
from services.models.language_half import LanguageHalf
from services.telemetry.metrics import metrics

GREEDY = SamplingParams(max_tokens=4, temperature=0, ignore_eos=True)
QUESTION = image_question("What colour is the red shape? Describe the image.", 0)


@pytest.fixture(scope="module")
def language(tiny_model_dirs: dict[str, Path]) -> LanguageHalf:
    return LanguageHalf(tiny_model_dirs["glm4v"], torch.device("cpu"))


def _counted(name: str, replica: str) -> float:
    metrics()  # registers the metrics in the default registry if no test did yet
    return prometheus_client.REGISTRY.get_sample_value(name, {"replica": replica}) or 0.0


async def _ask(engine: AsyncLLMEngine, request_id: str) -> list[RequestOutput]:
    return [output async for output in engine.generate(DecodeRequest(request_id, QUESTION, GREEDY), [])]


async def test_hit_and_queried_tokens_are_counted(language: LanguageHalf) -> None:
    engine = AsyncLLMEngine(LLMEngine(language, EngineConfig(max_num_seqs=2, max_model_len=256)), replica="reusing")
    first, again = await _ask(engine, "first"), await _ask(engine, "again")
    prompt_tokens = first[-1].num_prompt_tokens
    reusable = (prompt_tokens - 1) // BLOCK_SIZE * BLOCK_SIZE  # whole blocks, the last token computed again
    assert reusable > 0
    assert (first[-1].num_reused_tokens, again[-1].num_reused_tokens) == (0, reusable)
    assert _counted("flashvqa_prefix_cache_queried_tokens_total", "reusing") == 2 * prompt_tokens
    assert _counted("flashvqa_prefix_cache_hit_tokens_total", "reusing") == reusable
    assert engine.stats().prefix_cache_hit_rate == pytest.approx(reusable / (2 * prompt_tokens))


async def test_nothing_is_counted_when_prefix_caching_is_off(language: LanguageHalf) -> None:
    config = EngineConfig(max_num_seqs=2, max_model_len=256, enable_prefix_caching=False)
    engine = AsyncLLMEngine(LLMEngine(language, config), replica="not-reusing")
    await _ask(engine, "first")
    await _ask(engine, "again")
    assert _counted("flashvqa_prefix_cache_queried_tokens_total", "not-reusing") == 0
