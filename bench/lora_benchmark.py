"""Multi-LoRA serving: output tokens/s of 16 concurrent requests on the base model against the same 16 spread
evenly over 4 LoRA adapters (rank 16, on every projection `ModelFamily.lora_targets` names), and their ratio.

    .venv/bin/python -m bench.lora_benchmark [--size small] [--dtype auto] [--max-tokens 64] [--repetitions 5]
        [--threads 1]

One engine serves both runs, its 4 adapter slots filled (`max_loras=4`, `max_lora_rank=16`), so that the only
difference between them is the adapter rows. Torch runs on one thread by default, as a CPU decoder replica does
(services/serve_config.py; two threads on a shared 2-core host also stall whenever one of them is preempted). A
run adds every request at once and steps the engine until all have finished (prefill and decode, `ignore_eos`);
tokens/s is its output tokens over its wall time. Prompts are text, as in bench/engine_decode_benchmark.py (~100
tokens, one word more per request), and the prefix cache is off, so every run prefills the same work. After a
warm-up run of each, the two take turns (the order swapped every repetition, so the host's slow swings fall on
both); each figure is the median over repetitions. The adapters are random and non-zero, built with `peft` into
a temporary directory. Prints every repetition, both medians, the ratio mixed/base against its target (>= 0.70)
and the adapter slots the steps carried; writes bench/results/lora.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import get_args

import torch

from bench.serving_load import ROOT, model_dir
from bench.timing import say
from services.common.device import set_torch_threads
from services.common.dtype_name import DTypeName
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import SamplingParams
from services.models.checkpoint import model_dtype
from services.models.language_half import LanguageHalf
from services.models.lora import LoRALinear
from tests.models.lora_adapters import make_adapter

RESULTS = ROOT / "bench" / "results"
CONCURRENCY = 16
ADAPTERS = 4
RANK = 16
TARGET = 0.70


@dataclass(frozen=True)
class BatchRun:
    output_tokens: int
    seconds: float
    adapter_slots: tuple[int, ...]  # the slots whose rows the run's steps carried, sorted

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds


@dataclass(frozen=True)
class Comparison:
    base: list[BatchRun]
    mixed: list[BatchRun]

    @property
    def base_tokens_per_s(self) -> float:
        return statistics.median(run.tokens_per_s for run in self.base)

    @property
    def mixed_tokens_per_s(self) -> float:
        return statistics.median(run.tokens_per_s for run in self.mixed)

    @property
    def ratio(self) -> float:
        return self.mixed_tokens_per_s / self.base_tokens_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--dtype", choices=get_args(DTypeName), default="auto", help="as `flashvqa serve --dtype`")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads: 1, as a CPU decoder replica runs (serve_config.py)"
    )
    args = parser.parse_args()
    set_torch_threads(args.threads)
    model = model_dir(args.size)
    dtype = model_dtype(model, torch.device("cpu"), args.dtype)
    language = LanguageHalf(model, torch.device("cpu"), dtype)
    with tempfile.TemporaryDirectory() as scratch:
        adapters = build_adapters(model, Path(scratch))
        say(
            f"{model.name} in {dtype} (--dtype {args.dtype}), CPU, {torch.get_num_threads()} torch threads; "
            f"{CONCURRENCY} requests of {args.max_tokens} tokens; {ADAPTERS} adapters of rank {RANK}; "
            f"{args.repetitions} repetitions after a warm-up"
        )
        comparison = compare(lora_engine(language, adapters), list(adapters), args.max_tokens, args.repetitions)
    for index, (base, mixed) in enumerate(zip(comparison.base, comparison.mixed, strict=True)):
        say(
            f"repetition {index + 1}: base {base.tokens_per_s:6.1f} tokens/s, mixed {mixed.tokens_per_s:6.1f} "
            f"tokens/s ({mixed.tokens_per_s / base.tokens_per_s:.2f})"
        )
    mixed_slots = sorted({slot for run in comparison.mixed for slot in run.adapter_slots})
    say(f"adapter slots in the steps: base {list(comparison.base[0].adapter_slots)}, mixed {mixed_slots}")
    say(f"base:  {comparison.base_tokens_per_s:6.1f} output tokens/s (median)")
    say(f"mixed: {comparison.mixed_tokens_per_s:6.1f} output tokens/s (median), {ADAPTERS} adapters")
    verdict = "met" if comparison.ratio >= TARGET else "NOT met"
    say(f"mixed/base: {comparison.ratio:.2f} (target >= {TARGET:.2f}: {verdict})")
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": model.name,
        "dtype": str(dtype),
        "torch_threads": torch.get_num_threads(),
        "concurrency": CONCURRENCY,
        "max_tokens": args.max_tokens,
        "adapters": ADAPTERS,
        "rank": RANK,
        "base_tokens_per_s": comparison.base_tokens_per_s,
        "mixed_tokens_per_s": comparison.mixed_tokens_per_s,
        "ratio": comparison.ratio,
        "base": [asdict(run) for run in comparison.base],
        "mixed": [asdict(run) for run in comparison.mixed],
    }
    (RESULTS / "lora.json").write_text(json.dumps(summary, indent=2))


def build_adapters(model: Path, out: Path) -> dict[str, Path]:
    return {
        f"adapter-{index}": make_adapter(model, out / f"adapter-{index}", RANK, seed=index) for index in range(ADAPTERS)
    }


def lora_engine(language: LanguageHalf, adapters: dict[str, Path]) -> LLMEngine:
    config = EngineConfig(
        max_num_seqs=CONCURRENCY,
        max_model_len=1024,
        enable_prefix_caching=False,
        max_loras=len(adapters),
        max_lora_rank=RANK,
    )
    engine = LLMEngine(language, config)
    for name, path in adapters.items():
        engine.load_adapter(name, path)
    return engine


def compare(engine: LLMEngine, adapters: list[str], max_tokens: int, repetitions: int) -> Comparison:
    """A warm-up run of each, then `repetitions` of each, taking turns."""
    spread: list[str | None] = [adapters[index % len(adapters)] for index in range(CONCURRENCY)]
    plans: dict[str, list[str | None]] = {"base": [None] * CONCURRENCY, "mixed": spread}
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    for plan in plans.values():
        run_batch(engine, plan, params)
    runs: dict[str, list[BatchRun]] = {"base": [], "mixed": []}
    for repetition in range(repetitions):
        order = list(plans) if repetition % 2 == 0 else list(plans)[::-1]
        for name in order:
            runs[name].append(run_batch(engine, plans[name], params))
    return Comparison(runs["base"], runs["mixed"])


def run_batch(engine: LLMEngine, adapters: list[str | None], params: SamplingParams) -> BatchRun:
    """One request per entry of `adapters` (None: the base), added at once and stepped until all have finished."""
    assert engine.runner.adapters is not None and not engine.has_work
    slots: set[int] = set()
    layer: LoRALinear = next(iter(engine.runner.adapters.layers.values()))
    # The adapter rows the forward really carries, read by one wrapped layer at every step.
    hook = layer.register_forward_pre_hook(lambda module, _: slots.update(slot for slot, _ in module.step.groups))
    try:
        start = time.perf_counter()
        for index, adapter in enumerate(adapters):
            engine.add_request(f"r{index}", image_question("word " * (90 + index), 0), [], params, adapter=adapter)
        output_tokens = 0
        while engine.has_work:
            output_tokens += sum(len(output.token_ids) for output in engine.step())
        seconds = time.perf_counter() - start
    finally:
        hook.remove()
    return BatchRun(output_tokens, seconds, tuple(sorted(slots)))


if __name__ == "__main__":
    main()
