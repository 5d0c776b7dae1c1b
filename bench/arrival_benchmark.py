"""A running stream while new prompts arrive at once: how long its longest silence gets.

    .venv/bin/python -m bench.arrival_benchmark [--size small] [--budgets 192 8192] [--arrivals 8]
        [--step-time-target-ms 0]

For each decoder token budget (`max_num_batched_tokens`), a local stack (Ray Serve: gateway, encoder,
decoder) is started with it, and then, twice, one answer streams while `--arrivals` requests arrive together:
first requests with a 512-px picture each (their embeddings already in the encoder's cache, so the decoder's
prefill is what they cost), then requests with ~2.6k tokens of text each. Every arrival's prompt is its own
from its first tokens on, so the decoder's prefix cache saves none of it. The stream's gaps between events
are compared: the median before the arrivals against the longest from the arrivals until the last of them has
its first token (target: at most 3x). Then output tokens/s at concurrency 16 (every request with a picture of
its own). A budget larger than every burst (8192 by default) prefills each newcomer's whole prompt in one
step: the behaviour of an engine without chunked prefill, measured in the same run. Results go to
bench/results/arrivals.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import httpx

from bench.serving_load import ROOT, image_url, model_dir, run_level, stream_chunks
from loadtest.local_stack import LocalStack

RESULTS = ROOT / "bench" / "results"
STREAM_TOKENS = 3000  # the running answer: longer than any measurement window
BASELINE_S = 3.0  # of the stream's events before the arrivals
TEXT_PROMPT_TOKENS = 2600


@dataclass
class ArrivalResult:
    budget: int
    prompts: str
    arrivals: int
    prompt_tokens: int  # of one arrival
    median_gap_ms: float  # the running stream's, before the arrivals
    worst_gap_ms: float  # the running stream's, while the arrivals were prefilled
    ratio: float
    arrivals_ttft_max_ms: float


@dataclass
class BudgetResult:
    budget: int
    arrivals: list[ArrivalResult]
    tokens_per_s_c16: float


def _content(messages_text: str, image: str | None) -> list[dict[str, Any]]:
    # Text first: each arrival's prompt differs from its first tokens on, so no prefix is reused.
    parts: list[dict[str, Any]] = [{"type": "text", "text": messages_text}]
    if image is not None:
        parts.append({"type": "image_url", "image_url": {"url": image}})
    return parts


def _body(text: str, image: str | None, max_tokens: int) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": _content(text, image)}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _stream(client: httpx.AsyncClient, body: dict[str, Any], events: list[float]) -> int:
    """Append the time of every content event to `events`; the prompt's token count."""
    prompt_tokens = 0
    async for chunk in stream_chunks(client, body):
        if chunk.get("usage"):
            prompt_tokens = chunk["usage"]["prompt_tokens"]
        elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
            events.append(time.perf_counter())
    return prompt_tokens


def _text(seed: int, words: int) -> str:
    rng = random.Random(seed)
    vocabulary = [
        "receipt",
        "total",
        "blue",
        "square",
        "travel",
        "price",
        "shape",
        "colour",
        "number",
        "photo",
        "circle",
        "brand",
        "green",
        "amount",
        "paper",
        "table",
        "window",
        "river",
        "light",
        "small",
    ]
    return f"Note {seed}: " + " ".join(rng.choice(vocabulary) for _ in range(words))


async def _words_for(client: httpx.AsyncClient, tokens: int) -> int:
    """How many of `_text`'s words make a prompt of about `tokens` tokens with this tokenizer."""
    probe_words = 400
    measured = await _stream(client, _body(_text(0, probe_words), None, 1), [])
    return max(1, round(probe_words * tokens / measured))


async def _arrivals_beside_a_stream(
    client: httpx.AsyncClient, budget: int, kind: str, bodies: list[dict[str, Any]]
) -> ArrivalResult:
    stream_events: list[float] = []
    running = asyncio.create_task(_stream(client, _body("Tell me a long story.", None, STREAM_TOKENS), stream_events))
    while len(stream_events) < 2 or stream_events[-1] - stream_events[0] < BASELINE_S:
        await asyncio.sleep(0.05)
    arrived = time.perf_counter()
    arrival_events: list[list[float]] = [[] for _ in bodies]
    arrivals = [
        asyncio.create_task(_stream(client, body, events)) for body, events in zip(bodies, arrival_events, strict=True)
    ]
    while not all(arrival_events):
        await asyncio.sleep(0.01)
    last_first_token = max(events[0] for events in arrival_events)
    # The gap that spans the last first token counts too: wait for the stream's event that ends it.
    while stream_events[-1] <= last_first_token:
        if running.done():
            raise RuntimeError("the running stream ended before the arrivals had their first tokens")
        await asyncio.sleep(0.01)
    prompt_tokens = (await asyncio.gather(*arrivals))[0]
    running.cancel()
    before = [t for t in stream_events if t < arrived]
    # The gap that spans the arrival counts: it is the first one the newcomers can stretch.
    during = [t for t in stream_events if t >= arrived and t <= last_first_token] + [
        next(t for t in stream_events if t > last_first_token)
    ]
    median_gap = statistics.median(b - a for a, b in pairwise(before))
    window = [before[-1], *during]
    worst_gap = max(b - a for a, b in pairwise(window))
    result = ArrivalResult(
        budget,
        kind,
        len(bodies),
        prompt_tokens,
        median_gap * 1000,
        worst_gap * 1000,
        worst_gap / median_gap,
        (last_first_token - arrived) * 1000,
    )
    _say(
        f"  {kind:>5} prompts ({prompt_tokens} tokens each) x {len(bodies)}: running stream's median gap "
        f"{result.median_gap_ms:.0f} ms, worst {result.worst_gap_ms:.0f} ms ({result.ratio:.1f}x); "
        f"last arrival's first token after {result.arrivals_ttft_max_ms:.0f} ms"
    )
    return result


async def _measure(url: str, budget: int, arrivals: int, requests_per_user: int) -> BudgetResult:
    # The running stream outlives the gateway's default 30 s deadline while long prompts are absorbed.
    async with httpx.AsyncClient(base_url=url, timeout=600, headers={"x-request-timeout": "300"}) as client:
        images = [image_url(seed, size=512) for seed in range(arrivals)]
        for image in images:  # into the encoder's cache: the arrivals then cost the decoder only
            await _stream(client, _body("Warm up.", image, 1), [])
        image_bodies = [
            _body(f"Question {index} about this picture: what is in it?", image, 16)
            for index, image in enumerate(images)
        ]
        words = await _words_for(client, TEXT_PROMPT_TOKENS)
        text_bodies = [_body(_text(100 + index, words), None, 16) for index in range(arrivals)]
        results = [
            await _arrivals_beside_a_stream(client, budget, "image", image_bodies),
            await _arrivals_beside_a_stream(client, budget, "text", text_bodies),
        ]
    level = await run_level(url, f"budget {budget}", 16, 16 * requests_per_user, 64, seed=budget * 1000)
    _say(f"  concurrency 16: {level.output_tokens_per_s:.1f} output tokens/s")
    return BudgetResult(budget, results, level.output_tokens_per_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="small")
    parser.add_argument("--budgets", type=int, nargs="+", default=[192, 8192])
    parser.add_argument("--arrivals", type=int, default=8)
    parser.add_argument(
        "--step-time-target-ms", type=float, default=0.0, help="decoder.step_time_target_ms (0: none, the default)"
    )
    parser.add_argument("--requests-per-user", type=int, default=4, help="of the concurrency-16 level")
    args = parser.parse_args()
    model = model_dir(args.size)
    RESULTS.mkdir(parents=True, exist_ok=True)
    measured = []
    for budget in args.budgets:
        _say(f"{model.name}, max_num_batched_tokens {budget}, step_time_target_ms {args.step_time_target_ms:g}:")
        decoder = {"max_num_batched_tokens": budget, "step_time_target_ms": args.step_time_target_ms, "max_waiting": 64}
        overrides = {"decoder": decoder}
        with LocalStack(model, overrides, RESULTS / f"arrivals-stack-{budget}.log") as url:
            measured.append(asyncio.run(_measure(url, budget, args.arrivals, args.requests_per_user)))
    for result in measured:
        worst = max(arrival.ratio for arrival in result.arrivals)
        _say(
            f"budget {result.budget}: worst gap / median gap {worst:.1f}x (target <= 3x), "
            f"{result.tokens_per_s_c16:.1f} tokens/s at concurrency 16"
        )
    (RESULTS / "arrivals.json").write_text(json.dumps([asdict(result) for result in measured], indent=2))


def _say(line: str) -> None:
    print(line, flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
