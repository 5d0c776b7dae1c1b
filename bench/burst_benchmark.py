"""The overload benchmark: far more requests at once than the local stack can hold, refused or served fast.

`python -m bench.burst_benchmark [--requests 300] [--max-tokens 48]` starts serve_config.yaml's application
on a local Ray with the shipped demo model (as `flashvqa serve` does), warms it up, then sends every request
at the same instant, each with a picture of its own (256x192 JPEG, so no cache answers it) and greedy
`--max-tokens` answers. It prints, as JSON, how many were answered and refused, the refusals' latency P50/P99
(target: P99 under 0.5 s), the answered requests' latency P50/P99, and anything that was neither (a 5xx, a
504, a client timeout) or a refusal not in the OpenAI error form.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from bench.timing import say
from loadtest.burst import fire
from loadtest.images import ImageSize, picture
from loadtest.local_stack import LocalStack
from loadtest.payloads import chat_body, user_message
from services.demo.shipped import DEMO_MODEL

BURST_PICTURE = ImageSize.THUMBNAIL  # what a phone's gallery sends; the 256x192 is close
REFUSAL_P99_TARGET_S = 0.5


def burst_bodies(count: int, max_tokens: int, first_seed: int = 1000) -> list[bytes]:
    return [
        chat_body([user_message(picture(first_seed + index, BURST_PICTURE), "What is in the picture?")], max_tokens)
        for index in range(count)
    ]


async def run(url: str, requests: int, max_tokens: int, timeout_s: float) -> dict[str, object]:
    await fire(url, burst_bodies(4, max_tokens, first_seed=1), timeout_s)  # compile and warm every path
    summary = await fire(url, burst_bodies(requests, max_tokens), timeout_s)
    figures: dict[str, object] = dict(summary.figures())
    refusal_p99 = figures.get("refusal_p99_s")
    figures["refusal_p99_target_s"] = REFUSAL_P99_TARGET_S
    figures["refusal_p99_met"] = isinstance(refusal_p99, float) and refusal_p99 < REFUSAL_P99_TARGET_S
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--timeout-s", type=float, default=60, help="the client's timeout per request")
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("--url", help="an already running server instead of a local stack")
    args = parser.parse_args()
    if args.url:
        figures = asyncio.run(run(args.url, args.requests, args.max_tokens, args.timeout_s))
    else:
        with tempfile.TemporaryDirectory() as folder, LocalStack(args.model, {}, Path(folder) / "stack.log") as url:
            figures = asyncio.run(run(url, args.requests, args.max_tokens, args.timeout_s))
    say(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
