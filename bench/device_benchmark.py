"""The one-shot GPU benchmark: GLM-4.6V-Flash's dimensions with random weights, the engine on one device.

    .venv/bin/python -m bench.device_benchmark --out device.json           # a CUDA host; under 9 min on one H100
    .venv/bin/python -m bench.device_benchmark --smoke --out smoke.json    # any host: tiny dimensions, seconds

It needs nothing but the working tree: the model directory (config, the project's tokenizer, the real
processor) is written to a temporary directory and both halves are made on the device in bf16 with random
weights (`weights="random"`), nothing downloaded or read. In order, each figure measured in this one run:

1. `self_check`: the engine's incremental decode against a full forward (the start-up check), its largest
   relative logit difference.
2. `decode`: with decode graphs off and on (CUDA graphs; on a CPU their shapes, eagerly), for each batch
   size and context length, the inter-token latency P50/P99 (one engine step per token for every row) and
   the tokens per second, each row a picture (its 512-px image tokens) and text up to the context.
3. `ttft`: a 512-px picture and a question, one at a time: vision tower (processor included) through the
   first token, P50/P99, and the vision part alone.
4. `arrivals` (and `arrivals_with_graphs`): streams decoding at 600 tokens of context, ITL P50/P99 and
   worst/median gap before and while a burst of picture questions arrives at once (their prompts prefilled
   in the same steps as the decodes).
5. `lora`: tokens/s of `lora_batch` rows decoding at 600 tokens of context, all on the base model, then
   spread evenly over 4 random rank-16 LoRA adapters on every attention and MLP projection (one engine with 4
   slots for both), and their ratio (issue 25's target: at least 0.7). Run last: the adapter wrappers stay on
   the language model's layers once an engine with slots has made them.
6. `memory`: the KV blocks and bytes a replica would get beside the weights (`gpu_memory_utilization`), bytes
   per token, the most 600-token questions they hold at once, and the device's peak allocation. The engines
   here get a fixed 16 GiB, so that both (graphs off, then on) get the same.

Graphs off runs first, so that if capturing fails on a host its error is recorded beside the eager figures.

`--smoke` runs the same code at the `tiny` dimensions on the CPU with fewer and smaller cases: the tests run it,
so the benchmark cannot rot between the rare runs on a GPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image

from bench.timing import percentile, say
from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.llm_decoder.engine.config import DecodeGraphs
from services.llm_decoder.engine.model_runner import kv_cache_blocks
from services.llm_decoder.engine.self_check import SelfCheckError, check_incremental_decode
from services.local_pipeline import image_question
from services.messages import RawImage, SamplingParams
from services.models.kv_cache import BLOCK_SIZE
from services.models.language_half import LanguageHalf
from services.models.lora import LoRAAdapter
from services.models.lora.peft_adapter import LoRAWeights
from services.models.vision_half import VisionHalf
from services.tiny_models.model_builder import DIMS, FULL_GLM4V_DIMS, ModelDims, write_model_files

IMAGE_PIXELS = 512  # 512x512: 324 image tokens after the processor's resize and the 2x2 merge


@dataclass(frozen=True)
class Plan:
    dims: ModelDims
    dtype: torch.dtype
    batch_sizes: tuple[int, ...]
    contexts: tuple[int, ...]
    decode_steps: int
    ttft_requests: int
    arrival_streams: int
    arrivals: int
    max_num_seqs: int
    max_model_len: int
    kv_cache_bytes: int | None  # fixed, so that the second engine gets what the first had
    lora_batch: int


# 16 GiB of KV: 400k tokens, three times what 64 rows of 2,000 tokens hold.
FULL = Plan(
    FULL_GLM4V_DIMS,
    torch.bfloat16,
    batch_sizes=(1, 16, 64),
    contexts=(600, 2000),
    decode_steps=64,
    ttft_requests=20,
    arrival_streams=16,
    arrivals=8,
    max_num_seqs=64,
    max_model_len=4096,
    kv_cache_bytes=16 << 30,
    lora_batch=16,
)
SMOKE = Plan(
    DIMS["tiny"],
    torch.float32,
    batch_sizes=(1, 4),
    contexts=(400, 600),
    decode_steps=6,
    ttft_requests=3,
    arrival_streams=4,
    arrivals=2,
    max_num_seqs=8,
    max_model_len=1024,
    kv_cache_bytes=None,
    lora_batch=4,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny dimensions, few cases (the tests' run)")
    parser.add_argument("--device", help="default: cuda for the full run, cpu for --smoke")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON figures go")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    device = torch.device(args.device or ("cpu" if args.smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: run with --smoke (or --device cpu)")
    results = run(plan, device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    say(f"figures written to {args.out}")


def run(plan: Plan, device: torch.device) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {"environment": _environment(device), "plan": _plan_summary(plan)}
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch) / "glm4v"
        write_model_files("glm4v", model_dir, plan.dims)
        loading = time.perf_counter()
        language = LanguageHalf(model_dir, device, plan.dtype, weights="random")
        vision = VisionHalf(model_dir, device, plan.dtype, weights="random")
        results["load_s"] = round(time.perf_counter() - loading, 1)
        say(f"random weights made on {device} in {results['load_s']} s")
        results["weights_bytes"] = (
            sum(
                p.numel() * p.element_size()
                for module in (language.text_model, vision.tower)
                for p in module.parameters()
            )
            + language.lm_head_weight.nbytes
        )
        results["memory"] = _memory(language, device)
        # Decode graphs off first: if capturing fails on this host, the eager figures are in already.
        engine, start_s = _engine(language, plan, "off")
        results["self_check"] = _self_check(engine)
        results["decode"] = {"off": {"engine_start_s": start_s, "cases": _decode_cases(engine, plan)}}
        results["ttft"] = _ttft(engine, vision, plan)
        results["arrivals"] = _arrivals(engine, vision, plan)
        del engine
        _release(device)
        try:
            engine, start_s = _engine(language, plan, "auto" if device.type == "cuda" else "uncaptured")
        except Exception as error:  # reported in the figures: the run is one-shot, the rest must survive
            say(f"decode graphs failed to start: {error!r}")
            results["decode"]["on"] = {"error": repr(error)}
        else:
            results["self_check_with_graphs"] = _self_check(engine)
            results["decode"]["on"] = {
                "engine_start_s": start_s,
                "num_graphs": _num_graphs(engine),
                "cases": _decode_cases(engine, plan),
            }
            results["decode_graph_speedup"] = _speedups(results["decode"])
            results["arrivals_with_graphs"] = _arrivals(engine, vision, plan)
            del engine
            _release(device)
        # Last: the adapter wrappers stay on the language model's layers once an engine with slots has made them.
        results["lora"] = _lora(language, plan)
        if device.type == "cuda":
            results["memory"]["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
    results["total_s"] = round(time.perf_counter() - started, 1)
    return results


def _engine(
    language: LanguageHalf, plan: Plan, decode_graphs: DecodeGraphs, max_loras: int = 0
) -> tuple[LLMEngine, float]:
    started = time.perf_counter()
    config = EngineConfig(
        max_num_seqs=plan.max_num_seqs,
        max_model_len=plan.max_model_len,
        max_waiting=256,
        kv_cache_bytes=plan.kv_cache_bytes,
        decode_graphs=decode_graphs,
        startup_self_check=False,
        max_loras=max_loras,
        max_lora_rank=LORA_RANK,
    )
    engine = LLMEngine(language, config)
    seconds = round(time.perf_counter() - started, 1)
    say(f"engine with decode graphs {decode_graphs}: started in {seconds} s, {_num_graphs(engine)} graphs captured")
    return engine, seconds


def _num_graphs(engine: LLMEngine) -> int:
    graphs = engine.runner.decode_graphs
    return 0 if graphs is None else graphs.num_graphs


def _self_check(engine: LLMEngine) -> dict[str, Any]:
    try:
        difference = check_incremental_decode(engine.runner, engine.config.token_budget)
    except SelfCheckError as error:
        say(f"self-check FAILED: {error}")
        return {"passed": False, "error": str(error)}
    say(f"self-check passed: largest relative logit difference {difference:.2e}")
    return {"passed": True, "relative_difference": difference}


# -- decode ---------------------------------------------------------------------------------------------------


def _decode_cases(engine: LLMEngine, plan: Plan) -> list[dict[str, Any]]:
    cases = []
    for context in plan.contexts:
        question = _question(engine.language, context)
        for batch in plan.batch_sizes:
            names = _start(engine, question, batch, plan.decode_steps + 8, tag=f"decode-{context}-{batch}")
            gaps = _timed_steps(engine, plan.decode_steps)
            _abort(engine, names)
            case = {
                "batch": batch,
                "context_tokens": context,
                **_gap_figures(gaps),
                "tokens_per_s": round(batch * len(gaps) / sum(gaps), 1),
            }
            say(
                f"decode graphs {engine.config.decode_graphs}: batch {batch:3d}, context {context}: "
                f"ITL p50 {case['itl_p50_ms']} ms, p99 {case['itl_p99_ms']} ms, {case['tokens_per_s']} tokens/s"
            )
            cases.append(case)
    return cases


def _question(language: LanguageHalf, context: int) -> list[dict[str, Any]]:
    """A picture question whose prompt (with the picture's tokens) is at most `context` tokens, close to it."""
    grid = _image_grid(language)

    def length(words: int) -> int:
        return language.render_prompt(_words(words), [grid]).num_tokens

    base, per_word = length(0), (length(64) - length(0)) / 64
    words = max(0, int((context - base) / per_word))
    while words and length(words) > context:
        words -= 1
    return _words(words)


def _words(count: int) -> list[dict[str, Any]]:
    return image_question("What is in this picture? " + "Look closely at it. " * count, 1)


def _image_grid(language: LanguageHalf) -> tuple[int, int, int]:
    patches = IMAGE_PIXELS // 14 // language.merge_size * language.merge_size
    return (1, patches, patches)


def _embedding(language: LanguageHalf, name: str) -> ImageEmbedding:
    """Random rows in place of a 512-px picture's embedding: the decoder's cost does not depend on them."""
    grid = _image_grid(language)
    rows = grid[1] * grid[2] // language.merge_size**2
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    embeds = torch.randn(rows, language.hidden_size, generator=generator) * 0.02
    return ImageEmbedding(name, grid, embeds.to(language.lm_head_weight.dtype))


def _start(
    engine: LLMEngine,
    question: list[dict[str, Any]],
    count: int,
    max_tokens: int,
    tag: str,
    adapters: list[str | None] | None = None,
) -> list[str]:
    """Queue `count` requests (a picture each; request i answered by `adapters[i % len(adapters)]`, the base by
    default) and step until every one of them is decoding."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    names = [f"{tag}-{index}" for index in range(count)]
    answering = adapters or [None]
    for index, name in enumerate(names):
        adapter = answering[index % len(answering)]
        engine.add_request(name, question, [_embedding(engine.language, name)], params, adapter=adapter)
    while engine.scheduler.waiting or any(sequence.is_prefilling for sequence in engine.scheduler.running):
        engine.step()
    return names


def _timed_steps(engine: LLMEngine, steps: int) -> list[float]:
    """Seconds of each of `steps` engine steps (a step returns after its sampled tokens reached the host)."""
    gaps = []
    for _ in range(steps):
        started = time.perf_counter()
        engine.step()
        gaps.append(time.perf_counter() - started)
    return gaps


def _gap_figures(gaps: list[float]) -> dict[str, float]:
    ordered = sorted(gaps)
    median = percentile(ordered, 0.5)
    return {
        "itl_p50_ms": round(median * 1000, 2),
        "itl_p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "worst_over_median": round(ordered[-1] / median, 2),
    }


def _abort(engine: LLMEngine, names: list[str]) -> None:
    for name in names:
        engine.abort(name)


def _speedups(decode: dict[str, Any]) -> list[dict[str, Any]]:
    """Tokens/s with decode graphs over without, case by case."""
    return [
        {
            "batch": on["batch"],
            "context_tokens": on["context_tokens"],
            "tokens_per_s_ratio": round(on["tokens_per_s"] / off["tokens_per_s"], 2),
        }
        for on, off in zip(decode["on"]["cases"], decode["off"]["cases"], strict=True)
    ]


# -- time to first token, arrivals ------------------------------------------------------------------------------


# -- LoRA -----------------------------------------------------------------------------------------------------

LORA_RANK = 16
LORA_ADAPTERS = 4


def _lora(language: LanguageHalf, plan: Plan) -> dict[str, Any]:
    engine, _ = _engine(language, plan, "off", max_loras=LORA_ADAPTERS)
    names = [f"adapter-{index}" for index in range(LORA_ADAPTERS)]
    for index, name in enumerate(names):
        engine.register_adapter(_random_adapter(engine, name, seed=index))
    question = _question(language, 600)
    figures: dict[str, Any] = {"batch": plan.lora_batch, "adapters": LORA_ADAPTERS, "rank": LORA_RANK}
    for label, adapters in [("base", None), ("mixed", [*names])]:
        started = _start(engine, question, plan.lora_batch, plan.decode_steps + 8, f"lora-{label}", adapters)
        gaps = _timed_steps(engine, plan.decode_steps)
        _abort(engine, started)
        figures[label] = {**_gap_figures(gaps), "tokens_per_s": round(plan.lora_batch * len(gaps) / sum(gaps), 1)}
    figures["mixed_over_base"] = round(figures["mixed"]["tokens_per_s"] / figures["base"]["tokens_per_s"], 3)
    say(
        f"LoRA: batch {plan.lora_batch}, {figures['base']['tokens_per_s']} tokens/s on the base, "
        f"{figures['mixed']['tokens_per_s']} over {LORA_ADAPTERS} adapters: {figures['mixed_over_base']}x"
    )
    del engine
    return figures


def _random_adapter(engine: LLMEngine, name: str, seed: int) -> LoRAAdapter:
    """Rank-16 updates on every layer the engine adapts, made on the device: nothing is read."""
    pool = engine.runner.adapters
    assert pool is not None
    generator = torch.Generator().manual_seed(seed)
    dtype = engine.language.lm_head_weight.dtype
    device = engine.language.device
    weights = {}
    for module, layer in pool.layers.items():
        a = torch.randn(LORA_RANK, layer.base.in_features, generator=generator) * 0.01
        b = torch.randn(layer.base.out_features, LORA_RANK, generator=generator) * 0.01
        weights[module] = LoRAWeights(a.to(device, dtype), b.to(device, dtype))
    return LoRAAdapter(name, LORA_RANK, zlib.crc32(name.encode()).to_bytes(16, "big"), weights)


def _ttft(engine: LLMEngine, vision: VisionHalf, plan: Plan) -> dict[str, Any]:
    """Picture questions one at a time: pixels through the vision tower, the prompt's prefill, the first token."""
    generator = np.random.default_rng(0)
    totals, vision_times = [], []
    params = SamplingParams(max_tokens=1, temperature=0.0, ignore_eos=True)
    for index in range(plan.ttft_requests + 1):  # the first one warms the tower up and is not counted
        pixels = generator.integers(0, 256, size=(IMAGE_PIXELS, IMAGE_PIXELS, 3), dtype=np.uint8)
        image = RawImage.from_image(Image.fromarray(pixels, "RGB"))
        started = time.perf_counter()
        embedding = vision.encode([image])
        encoded = time.perf_counter()
        engine.add_request(f"ttft-{index}", image_question("What is in this picture?", 1), embedding, params)
        while engine.has_work:
            engine.step()
        if index:
            totals.append(time.perf_counter() - started)
            vision_times.append(encoded - started)
    totals.sort()
    vision_times.sort()
    figures = {
        "requests": len(totals),
        "image_pixels": f"{IMAGE_PIXELS}x{IMAGE_PIXELS}",
        "ttft_p50_ms": _ms(percentile(totals, 0.5)),
        "ttft_p99_ms": _ms(percentile(totals, 0.99)),
        "vision_p50_ms": _ms(percentile(vision_times, 0.5)),
    }
    say(
        f"TTFT {figures['image_pixels']}: p50 {figures['ttft_p50_ms']} ms, p99 {figures['ttft_p99_ms']} ms "
        f"(vision p50 {figures['vision_p50_ms']} ms)"
    )
    return figures


def _arrivals(engine: LLMEngine, vision: VisionHalf, plan: Plan) -> dict[str, Any]:
    """Running streams' step gaps before and while a burst of picture questions is prefilled beside them."""
    question = _question(engine.language, 600)
    streams = _start(engine, question, plan.arrival_streams, 4 * plan.decode_steps + 64, tag="stream")
    steady = _timed_steps(engine, plan.decode_steps)
    params = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
    arrivals = [f"arrival-{index}" for index in range(plan.arrivals)]
    for name in arrivals:
        engine.add_request(
            name, image_question("What is in this picture?", 1), [_embedding(engine.language, name)], params
        )
    during: list[float] = []
    while engine.scheduler.waiting or any(
        s.request_id in arrivals and s.is_prefilling for s in engine.scheduler.running
    ):
        during += _timed_steps(engine, 1)
    during += _timed_steps(engine, max(0, plan.decode_steps - len(during)))
    _abort(engine, streams + arrivals)
    figures: dict[str, Any] = {
        "streams": plan.arrival_streams,
        "arrivals": plan.arrivals,
        "without_arrivals": _gap_figures(steady),
        "with_arrivals": _gap_figures(during),
        "worst_gap_over_steady_median": round(max(during) / percentile(sorted(steady), 0.5), 2),
    }
    say(
        f"arrivals: {plan.arrivals} picture questions beside {plan.arrival_streams} streams: ITL p99 "
        f"{figures['without_arrivals']['itl_p99_ms']} -> {figures['with_arrivals']['itl_p99_ms']} ms, worst gap "
        f"{figures['worst_gap_over_steady_median']}x the steady median"
    )
    return figures


# -- memory ---------------------------------------------------------------------------------------------------


def _memory(language: LanguageHalf, device: torch.device) -> dict[str, Any]:
    """What a replica's KV cache would be here (the engine's own rule: `gpu_memory_utilization` of the GPU after
    the weights; on a CPU, none is sized by memory) and how many 600-token questions it holds at once."""
    shape = language.kv_shape
    figures: dict[str, Any] = {"kv_bytes_per_token": shape.bytes_per_token(), "block_tokens": BLOCK_SIZE}
    if device.type == "cuda":
        blocks = kv_cache_blocks(shape, EngineConfig(), device)
        question_blocks = -(-(600 + 64) // BLOCK_SIZE)  # a 600-token question and a 64-token answer
        figures.update(
            kv_blocks=blocks,
            kv_bytes=blocks * shape.bytes_per_block(),
            most_resident_600_token_questions=blocks // question_blocks,
            device_total_bytes=torch.cuda.get_device_properties(device).total_memory,
        )
        say(
            f"memory: {figures['kv_bytes'] / 2**30:.1f} GiB of KV would fit beside the weights, "
            f"{figures['most_resident_600_token_questions']} questions of 600 tokens resident at once"
        )
    return figures


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _environment(device: torch.device) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "device": name,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
    }


def _plan_summary(plan: Plan) -> dict[str, Any]:
    summary = asdict(plan)
    summary["dtype"] = str(plan.dtype).removeprefix("torch.")
    return summary


if __name__ == "__main__":
    main()
