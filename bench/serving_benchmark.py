"""Serving benchmark: the split app (Ray Serve: gateway, encoder, decoder) at concurrency 1, 4 and 16,
and the same model whole in one process at concurrency 1, measured in one run.

    .venv/bin/python -m bench.serving_benchmark [--rounds 6] [--requests-per-user 8] [--max-tokens 64] [--dtype auto]

Both servers run side by side, and the one not being measured is paused (SIGSTOP to its whole session).
Concurrency 1 is measured in rounds that alternate between them (the same pictures for both in a round,
the order swapped every round), so that the shared host's slow swings fall on both alike; the split's
overhead is the median of the rounds' paired ratios. Every request of the run carries a picture of its own,
so none is answered from the encoder's or the decoder's caches. Prints requests/s, output tokens/s, P50/P99
time to first token and per output token, where each level's CPU went (milliseconds per request, by process),
then
(a) continuous batching: tokens/s at concurrency 16 / tokens/s at concurrency 1 (target >= 4x) and
(b) the split's added latency at concurrency 1 against one process (target <= 10% of end to end),
and the CPU the paused Ray stack used while the one-process baseline ran (about 0: the pause works).
Results also go to bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import get_args

from bench.serving_load import (
    ROOT,
    LevelResult,
    Server,
    model_dir,
    run_level,
    session_cpu_by_process,
    session_cpu_seconds,
)
from loadtest.server_process import free_port
from services.common.device import default_device
from services.common.dtype_name import DTypeName
from services.models.checkpoint import checkpoint_dtype, model_dtype

RESULTS = ROOT / "bench" / "results"
# Seeds of the pictures: run_level draws seed, seed + 1, ... (and 10**6 + seed for its warm-up), so these
# bases keep every round's and every level's pictures apart.
ROUND_SEEDS = 1_000
LEVEL_SEEDS = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--rounds", type=int, default=6, help="alternating split/one-process rounds at concurrency 1")
    parser.add_argument("--requests-per-round", type=int, default=8)
    parser.add_argument(
        "--requests-per-user",
        type=int,
        default=8,
        help="at each concurrency above 1: enough that ramp-up and drain are a small part",
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16], help="levels above 1")
    parser.add_argument("--dtype", choices=get_args(DTypeName), default="auto", help="as `flashvqa serve --dtype`")
    args = parser.parse_args()
    model = model_dir(args.size)
    flashvqa = str(Path(sys.executable).parent / "flashvqa")
    split_port, whole_port = free_port(), free_port()
    dtype = model_dtype(model, default_device(), args.dtype)  # the device both servers pick
    _say(f"{model.name}: checkpoint {checkpoint_dtype(model)}, served in {dtype} (--dtype {args.dtype})")
    with (
        Server(
            [flashvqa, "serve", "--model", str(model), "--port", str(split_port), "--dtype", args.dtype], split_port
        ) as split,
        Server(
            [sys.executable, "bench/in_process_server.py", str(model), str(whole_port), args.dtype], whole_port
        ) as whole,
    ):
        rounds: list[dict[str, LevelResult]] = []
        idle_ray_cpu_s = baseline_wall_s = 0.0
        for index in range(args.rounds):
            order = [("split", split), ("one-process", whole)]
            measured: dict[str, LevelResult] = {}
            for backend, server in order if index % 2 == 0 else order[::-1]:
                other = whole if server is split else split
                ray_cpu_before, started = session_cpu_seconds(split.process.pid), time.perf_counter()
                with other.paused():
                    measured[backend] = asyncio.run(
                        run_level(
                            server.url, backend, 1, args.requests_per_round, args.max_tokens, seed=ROUND_SEEDS * index
                        )
                    )
                if backend == "one-process":
                    idle_ray_cpu_s += session_cpu_seconds(split.process.pid) - ray_cpu_before
                    baseline_wall_s += time.perf_counter() - started
                _print(measured[backend], f"round {index + 1}")
            rounds.append(measured)
        higher, cpu_by_level = [], []
        for level, concurrency in enumerate(args.concurrency):
            requests = args.requests_per_user * concurrency
            with whole.paused():
                cpu_before = session_cpu_by_process(split.process.pid)
                higher.append(
                    asyncio.run(
                        run_level(
                            split.url, "split", concurrency, requests, args.max_tokens, seed=LEVEL_SEEDS * (level + 1)
                        )
                    )
                )
                cpu_by_level.append(
                    _cpu_ms_per_request(cpu_before, session_cpu_by_process(split.process.pid), requests + 1)
                )  # and the level's warm-up request
            _print(higher[-1], "")
            cpu = ", ".join(f"{name} {ms:.0f}" for name, ms in cpu_by_level[-1].items())
            _say(f"         CPU per request (ms): {cpu}")

    overheads = [(r["split"].e2e_p50_ms - r["one-process"].e2e_p50_ms) / r["one-process"].e2e_p50_ms for r in rounds]
    ttft_added = [r["split"].ttft_p50_ms - r["one-process"].ttft_p50_ms for r in rounds]
    c1_tokens_per_s = statistics.median(r["split"].output_tokens_per_s for r in rounds)
    top = max(higher, key=lambda r: r.concurrency)
    ratio = top.output_tokens_per_s / c1_tokens_per_s
    overhead = statistics.median(overheads)
    idle_share = idle_ray_cpu_s / baseline_wall_s
    _say(
        f"(a) continuous batching: {ratio:.2f}x output tokens/s at concurrency {top.concurrency} vs 1 "
        f"(median round at 1: {c1_tokens_per_s:.1f} tok/s) (target >= 4x)"
    )
    _say(
        f"(b) split overhead at concurrency 1: {overhead * 100:+.1f}% of end-to-end p50, median of {len(rounds)} "
        f"paired rounds (each: {', '.join(f'{o * 100:+.1f}%' for o in overheads)}); "
        f"{statistics.median(ttft_added):+.1f} ms on TTFT p50 (target <= 10%)"
    )
    _say(f"    the paused Ray stack used {idle_share * 100:.1f}% of one core while the one-process baseline ran")
    summary = {
        "model": model.name,
        "dtype": str(dtype),
        "max_tokens": args.max_tokens,
        "requests_per_user": args.requests_per_user,
        "rounds_c1": [{name: asdict(level) for name, level in r.items()} for r in rounds],
        "levels": [asdict(r) for r in higher],
        f"batching_ratio_c{top.concurrency}_vs_c1": ratio,
        "split_overhead_e2e_fraction_c1": overhead,
        "split_overhead_per_round": overheads,
        "split_added_ttft_ms_c1": statistics.median(ttft_added),
        "idle_ray_cpu_share_during_baseline": idle_share,
        "cpu_ms_per_request_by_level": {str(r.concurrency): cpu for r, cpu in zip(higher, cpu_by_level, strict=True)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps(summary, indent=2))


def _cpu_ms_per_request(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], requests: int
) -> dict[str, float]:
    """CPU milliseconds per request by process role, largest first (processes under 1 ms/request left out)."""
    by_role: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        used = seconds - before.get(pid, (role, 0.0))[1]
        name = role.removeprefix("ray::ServeReplica:flashvqa:")
        by_role[name] = by_role.get(name, 0.0) + used * 1000 / requests
    total = sum(by_role.values())
    kept = {role: ms for role, ms in sorted(by_role.items(), key=lambda item: -item[1]) if ms >= 1}
    return {**kept, "total": total}


def _print(result: LevelResult, label: str) -> None:
    _say(
        f"{label:>8} {result.backend:>11} c={result.concurrency:<3} {result.requests_per_s:6.2f} req/s "
        f"{result.output_tokens_per_s:7.1f} tok/s  TTFT p50 {result.ttft_p50_ms:7.1f} "
        f"p99 {result.ttft_p99_ms:7.1f} ms  TPOT p50 {result.tpot_p50_ms:6.1f} p99 {result.tpot_p99_ms:6.1f} ms"
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
