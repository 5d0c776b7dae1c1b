"""The async driver exports the KV pool's state per replica: the share of blocks held, and preemptions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import prometheus_client
import torch

from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import DecodeRequest, RequestOutput, SamplingParams
from services.models.language_half import LanguageHalf
from services.telemetry.metrics import metrics

LONG = SamplingParams(max_tokens=40, temperature=0, ignore_eos=True)


def _sample(name: str, replica: str) -> float | None:
    metrics()  # registers the metrics in the default registry if no test did yet
    return prometheus_client.REGISTRY.get_sample_value(name, {"replica": replica})


async def _ask(engine: AsyncLLMEngine, request_id: str, question: str) -> list[RequestOutput]:
    request = DecodeRequest(request_id, image_question(question, 0), LONG)
    return [output async for output in engine.generate(request, [])]


async def test_preemptions_and_block_usage_are_exported(tiny_model_dirs: dict[str, Path]) -> None:
    language = LanguageHalf(tiny_model_dirs["glm4v"], torch.device("cpu"))
    pool = 8 * language.kv_shape.bytes_per_block()  # 128 tokens: four answers of ~70 tokens cannot all fit
    config = EngineConfig(max_num_seqs=4, max_model_len=128, kv_cache_bytes=pool)
    engine = AsyncLLMEngine(LLMEngine(language, config), replica="small-pool")
    answers = await asyncio.gather(
        *(_ask(engine, f"r{index}", f"Question {index}: tell me a story.") for index in range(4))
    )
    assert all(answer[-1].num_output_tokens == 40 for answer in answers)
    preemptions = engine.stats().num_preemptions
    assert preemptions > 0
    assert _sample("flashvqa_decoder_preemptions_total", "small-pool") == preemptions
    assert _sample("flashvqa_kv_cache_usage_ratio", "small-pool") == 0.0  # all finished: no block held
