"""Decode-only steps at the CUDA graphs' fixed shapes (run eagerly here: capturing needs CUDA) give the tokens
the ordinary step gives: rows padded to a batch bucket, block tables padded to a width bucket, the padding
rows' keys written to a block no sequence is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.decode_graphs import DecodeGraphs, buckets
from services.local_pipeline import image_question
from services.messages import RawImage, SamplingParams
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf
from tests.conftest import FAMILY_NAMES, noise_image
from tests.llm_decoder.engine.engine_runs import output_token_ids, run_to_completion

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def halves(tiny_model_dirs: dict[str, Path]) -> dict[str, tuple[VisionHalf, LanguageHalf]]:
    return {name: (VisionHalf(path, CPU), LanguageHalf(path, CPU)) for name, path in tiny_model_dirs.items()}


def test_buckets_double_up_to_the_largest() -> None:
    assert buckets(1) == [1]
    assert buckets(16) == [1, 2, 4, 8, 16]
    assert buckets(24) == [1, 2, 4, 8, 16, 24]
    assert buckets(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]


def test_the_modes_follow_the_device() -> None:
    assert EngineConfig().decode_graph_mode("cuda") == "captured"
    assert EngineConfig().decode_graph_mode("cpu") is None
    assert EngineConfig(decode_graphs="off").decode_graph_mode("cuda") is None
    assert EngineConfig(decode_graphs="uncaptured").decode_graph_mode("cpu") == "uncaptured"
    with pytest.raises(ValueError, match="decode_graphs"):
        EngineConfig(decode_graphs="always")  # type: ignore[arg-type]


def _run(
    language: LanguageHalf, requests: list[Any], mode: str, monkeypatch: pytest.MonkeyPatch, **sizes: Any
) -> tuple[list[list[int]], LLMEngine, list[tuple[int, int]]]:
    engine = LLMEngine(language, EngineConfig(decode_graphs=mode, **sizes))  # type: ignore[arg-type]
    shapes: list[tuple[int, int]] = []
    graphs = engine.runner.decode_graphs
    if graphs is not None:
        run = graphs.run

        def recording_run(step: Any, shape: tuple[int, int]) -> torch.Tensor:
            shapes.append(shape)
            return run(step, shape)

        monkeypatch.setattr(graphs, "run", recording_run)
    params = [SamplingParams(max_tokens=50 + 4 * index, temperature=0.0, ignore_eos=True) for index in range(6)]
    for index, (messages, images) in enumerate(requests):
        engine.add_request(f"r{index}", messages, images, params[index])
    outputs = run_to_completion(engine)
    return [output_token_ids(outputs[f"r{index}"]) for index in range(len(requests))], engine, shapes


def _requests(vision: VisionHalf) -> list[Any]:
    requests = []
    for index in range(6):
        image = RawImage.from_image(noise_image(56 + 28 * index, 84, seed=index))
        requests.append((image_question(f"What is in picture {index}?", 1), vision.encode([image])))
    return requests


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_graph_shapes_give_the_eager_tokens_across_buckets_and_preemption(
    family: str, halves: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    vision, language = halves[family]
    requests = _requests(vision)
    # 24 blocks of 16 tokens: six prompts of ~35 tokens growing by 50-70 do not all fit, so some are
    # preempted and resumed; a budget of 32 mixes prompt chunks into some steps and leaves others decode-only.
    pool = 24 * language.kv_shape.bytes_per_block()
    sizes = {"max_num_seqs": 6, "max_model_len": 160, "max_num_batched_tokens": 32}
    eager, _, _ = _run(language, requests, "off", monkeypatch, kv_cache_bytes=pool, **sizes)
    # One block more, for the graphs' padding rows: the sequences get the same 24.
    padded, engine, shapes = _run(
        language,
        requests,
        "uncaptured",
        monkeypatch,
        kv_cache_bytes=pool + language.kv_shape.bytes_per_block(),
        **sizes,
    )
    assert padded == eager
    stats = engine.stats()
    assert stats.num_kv_blocks == 24 and stats.num_preemptions > 0
    graphs = engine.runner.decode_graphs
    assert isinstance(graphs, DecodeGraphs) and graphs.num_graphs == 0  # nothing is captured on a CPU
    assert graphs.batch_sizes == [1, 2, 4, 6] and graphs.widths == [1, 2, 4, 8, 10]
    # Decode-only steps ran at several batch and width buckets, padded rows among them.
    assert len({rows for rows, _ in shapes}) >= 2 and len({width for _, width in shapes}) >= 2
    assert {rows for rows, _ in shapes} <= set(graphs.batch_sizes)


def test_steps_with_prompt_chunks_and_empty_steps_run_eagerly(halves: dict) -> None:
    vision, language = halves["glm4v"]
    engine = LLMEngine(language, EngineConfig(decode_graphs="uncaptured", max_num_seqs=2, max_model_len=256))
    graphs = engine.runner.decode_graphs
    assert graphs is not None
    messages, images = _requests(vision)[0]
    sequence = engine.add_request("r", messages, images, SamplingParams(max_tokens=3, temperature=0.0))
    scheduled = engine.scheduler.schedule()
    assert scheduled.prefills and graphs.shape_for(scheduled) is None
    engine.runner.run(scheduled)
    engine.scheduler.finish_chunks(scheduled)
    sequence.output_token_ids.append(5)
    decode_only = engine.scheduler.schedule()
    assert not decode_only.prefills
    assert graphs.shape_for(decode_only) == (1, -(-(sequence.num_tokens) // 16))
