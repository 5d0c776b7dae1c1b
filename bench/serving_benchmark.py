"""Serving benchmark: the split app (Ray Serve: gateway, encoder, decoder) at concurrency 1, 4 and 16,
and the same model whole in one process at concurrency 1, measured in one run.

    .venv/bin/python -m bench.serving_benchmark [--requests-per-level 16] [--max-tokens 64]   (from the repository root)

Prints requests/s, output tokens/s, P50/P99 time to first token and per output token, then
(a) continuous batching: tokens/s at concurrency 16 / tokens/s at concurrency 1 (target >= 4x) and
(b) the split's added latency at concurrency 1 against one process (target <= 10% of end to end).
Results also go to bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path

from bench.serving_load import ROOT, LevelResult, Server, model_dir, run_level
from loadtest.server_process import free_port

RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--requests-per-level", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    model = model_dir(args.size)
    flashvqa = str(Path(sys.executable).parent / "flashvqa")
    results: list[LevelResult] = []

    port = free_port()
    with Server([flashvqa, "serve", "--model", str(model), "--port", str(port)], port) as split:
        for concurrency in args.concurrency:
            requests = max(args.requests_per_level, 2 * concurrency)
            results.append(asyncio.run(run_level(split.url, "split", concurrency, requests, args.max_tokens, 0)))
            _print(results[-1])
    port = free_port()
    with Server([sys.executable, "bench/in_process_server.py", str(model), str(port)], port) as whole:
        results.append(asyncio.run(run_level(whole.url, "one-process", 1, args.requests_per_level,
                                              args.max_tokens, 0)))
        _print(results[-1])

    split = {r.concurrency: r for r in results if r.backend == "split"}
    baseline = next(r for r in results if r.backend == "one-process")
    summary = {"model": model.name, "max_tokens": args.max_tokens, "levels": [asdict(r) for r in results]}
    if 1 in split and max(split) > 1:
        top = max(split)
        ratio = split[top].output_tokens_per_s / split[1].output_tokens_per_s
        summary[f"batching_ratio_c{top}_vs_c1"] = ratio
        _say(f"(a) continuous batching: {ratio:.2f}x output tokens/s at concurrency {top} vs 1 (target >= 4x)")
    if 1 in split:
        overhead = (split[1].e2e_p50_ms - baseline.e2e_p50_ms) / baseline.e2e_p50_ms
        ttft_added = split[1].ttft_p50_ms - baseline.ttft_p50_ms
        summary["split_overhead_e2e_fraction_c1"] = overhead
        summary["split_added_ttft_ms_c1"] = ttft_added
        _say(f"(b) split overhead at concurrency 1: {overhead * 100:+.1f}% of end-to-end p50 "
             f"({ttft_added:+.1f} ms on TTFT p50) (target <= 10%)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(summary, indent=2))


def _print(result: LevelResult) -> None:
    _say(f"{result.backend:>11} c={result.concurrency:<3} {result.requests_per_s:6.2f} req/s "
         f"{result.output_tokens_per_s:7.1f} tok/s  TTFT p50 {result.ttft_p50_ms:7.1f} "
         f"p99 {result.ttft_p99_ms:7.1f} ms  TPOT p50 {result.tpot_p50_ms:6.1f} p99 {result.tpot_p99_ms:6.1f} ms")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
