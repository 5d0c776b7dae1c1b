"""Serving benchmark: the split app (Ray Serve: gateway, encoder, decoder) at concurrency 1, 4 and 16,
and the same model whole in one process at concurrency 1, measured in one run.

    .venv/bin/python bench/serving_benchmark.py [--requests-per-level 16] [--max-tokens 64]

Prints requests/s, output tokens/s, P50/P99 time to first token and per output token, then
(a) continuous batching: tokens/s at concurrency 16 / tokens/s at concurrency 1 (target >= 4x) and
(b) the split's added latency at concurrency 1 against one process (target <= 10% of end to end).
Results also go to bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass
class RequestTiming:
    ttft_s: float
    e2e_s: float
    output_tokens: int

    @property
    def tpot_s(self) -> float:
        return (self.e2e_s - self.ttft_s) / max(self.output_tokens - 1, 1)


@dataclass
class LevelResult:
    backend: str
    concurrency: int
    requests: int
    requests_per_s: float
    output_tokens_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    e2e_p50_ms: float


def _image_url(seed: int, size: int = 256) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


async def _one_request(client: httpx.AsyncClient, image_url: str, max_tokens: int) -> RequestTiming:
    body = {
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": "Describe the picture."},
        ]}],
        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    tokens = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
    end = time.perf_counter()
    return RequestTiming(ttft_s=(first or end) - start, e2e_s=end - start, output_tokens=tokens)


async def _run_level(
    url: str, backend: str, concurrency: int, requests: int, max_tokens: int, seed: int
) -> LevelResult:
    images = [_image_url(seed + index) for index in range(requests)]  # distinct: every request is cold
    queue: asyncio.Queue[str] = asyncio.Queue()
    for image in images:
        queue.put_nowait(image)
    timings: list[RequestTiming] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            timings.append(await _one_request(client, queue.get_nowait(), max_tokens))

    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await _one_request(client, _image_url(10**6 + seed), max_tokens)  # warm-up, not counted
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) * 1000

    ttft = [t.ttft_s for t in timings]
    tpot = [t.tpot_s for t in timings]
    return LevelResult(
        backend=backend, concurrency=concurrency, requests=len(timings),
        requests_per_s=len(timings) / elapsed,
        output_tokens_per_s=sum(t.output_tokens for t in timings) / elapsed,
        ttft_p50_ms=pct(ttft, 50), ttft_p99_ms=pct(ttft, 99), tpot_p50_ms=pct(tpot, 50), tpot_p99_ms=pct(tpot, 99),
        e2e_p50_ms=statistics.median(t.e2e_s for t in timings) * 1000,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Server:
    def __init__(self, command: list[str], port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, cwd=ROOT)

    def __enter__(self) -> _Server:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise RuntimeError("server did not start")

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def _model_dir(size: str) -> Path:
    model = ROOT / "models" / f"{size}-glm4v"
    if not (model / "config.json").is_file():
        subprocess.run([sys.executable, "-m", "services.cli", "build-tiny-model", "--family", "glm4v",
                        "--size", size, "--out", str(model)], check=True, cwd=ROOT)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--requests-per-level", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    model = _model_dir(args.size)
    flashvqa = str(Path(sys.executable).parent / "flashvqa")
    results: list[LevelResult] = []

    port = _free_port()
    with _Server([flashvqa, "serve", "--model", str(model), "--port", str(port)], port) as split:
        for concurrency in args.concurrency:
            requests = max(args.requests_per_level, 2 * concurrency)
            results.append(asyncio.run(_run_level(split.url, "split", concurrency, requests, args.max_tokens, 0)))
            _print(results[-1])
    port = _free_port()
    with _Server([sys.executable, "bench/in_process_server.py", str(model), str(port)], port) as whole:
        results.append(asyncio.run(_run_level(whole.url, "one-process", 1, args.requests_per_level,
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
