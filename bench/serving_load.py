"""Loading an HTTP endpoint of ours with streamed image questions, and starting the servers to load: what
the serving benchmarks share."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from loadtest.server_process import wait_healthy

ROOT = Path(__file__).resolve().parents[1]


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


def image_url(seed: int, size: int = 256) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


async def stream_chunks(client: httpx.AsyncClient, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The parsed events of one streamed chat completion."""
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                yield json.loads(line[6:])


async def one_request(client: httpx.AsyncClient, image_url: str, max_tokens: int) -> RequestTiming:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": image_url}},
                    {"type": "text", "text": "Describe the picture."},
                ],
            }
        ],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = None
    tokens = 0
    async for chunk in stream_chunks(client, body):
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        elif first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            first = time.perf_counter()
    end = time.perf_counter()
    return RequestTiming(ttft_s=(first or end) - start, e2e_s=end - start, output_tokens=tokens)


async def run_level(url: str, backend: str, concurrency: int, requests: int, max_tokens: int, seed: int) -> LevelResult:
    images = [image_url(seed + index) for index in range(requests)]  # distinct: every request is cold
    queue: asyncio.Queue[str] = asyncio.Queue()
    for image in images:
        queue.put_nowait(image)
    timings: list[RequestTiming] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            timings.append(await one_request(client, queue.get_nowait(), max_tokens))

    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        await one_request(client, image_url(10**6 + seed), max_tokens)  # warm-up, not counted
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) * 1000

    ttft = [t.ttft_s for t in timings]
    tpot = [t.tpot_s for t in timings]
    return LevelResult(
        backend=backend,
        concurrency=concurrency,
        requests=len(timings),
        requests_per_s=len(timings) / elapsed,
        output_tokens_per_s=sum(t.output_tokens for t in timings) / elapsed,
        ttft_p50_ms=pct(ttft, 50),
        ttft_p99_ms=pct(ttft, 99),
        tpot_p50_ms=pct(tpot, 50),
        tpot_p99_ms=pct(tpot, 99),
        e2e_p50_ms=statistics.median(t.e2e_s for t in timings) * 1000,
    )


def _session_stats(session_id: int) -> dict[int, list[str]]:
    """pid -> /proc/pid/stat fields from the state on (field 3), for the live processes of a session: a
    server started with `start_new_session` and everything it spawned, in whatever process group."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[3]) == session_id:  # field 6, the session id
            stats[int(stat.parent.name)] = fields
    return stats


def session_cpu_seconds(session_id: int) -> float:
    """CPU time (user + system, fields 14 and 15) used so far by the live processes of a session."""
    return sum(seconds for _, seconds in session_cpu_by_process(session_id).values())


def session_cpu_by_process(session_id: int) -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds used so far) for the live processes of a session. Ray titles its processes
    by role (`ray::ServeReplica:flashvqa:llm_decoder`, `ray::ProxyActor`), with the running method appended."""
    processes = {}
    for pid, fields in _session_stats(session_id).items():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue  # it ended while we looked
        role = title.split(".", 1)[0] if title.startswith("ray::") else Path(title).name
        processes[pid] = (role, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    return processes


def _signal_session(session_id: int, signum: int) -> None:
    for pid in _session_stats(session_id):
        with suppress(ProcessLookupError):  # it ended while we looked
            os.kill(pid, signum)


class Server:
    def __init__(self, command: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=ROOT, env=env
        )

    def __enter__(self) -> Server:
        wait_healthy(self.url, self.process, timeout_s=300)
        return self

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Every process of the server's session stopped (SIGSTOP) for the block: a server that is not being
        measured then takes no CPU from one that is (an idle Ray stack polls: ~10% of a core here)."""
        _signal_session(self.process.pid, signal.SIGSTOP)  # Ray's workers have process groups of their own
        try:
            yield
        finally:
            _signal_session(self.process.pid, signal.SIGCONT)

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def model_dir(size: str) -> Path:
    model = ROOT / "models" / f"{size}-glm4v"
    if not (model / "config.json").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "services.cli",
                "build-tiny-model",
                "--family",
                "glm4v",
                "--size",
                size,
                "--out",
                str(model),
            ],
            check=True,
            cwd=ROOT,
        )
    return model
