"""What the gateway adds per request, stage by stage, for a 512x512 and a 4000x3000 JPEG; and the latency
of a response-cache hit through the whole gateway (in process, no HTTP).

Stages on the critical path: base64 decode, image decode + resize (JPEG draft mode), content hash,
prompt check, cache lookup (in-process and, when `redis-server` is installed, a local Redis). The image
safety check and the provenance check (watermark, C2PA, metadata) run beside the vision encoder, off the
critical path of a miss; they are reported too. On a cache hit the provenance check of a repeated upload
is a digest and a lookup.

    .venv/bin/python -m bench.gateway_benchmark [--repeats 200]   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from bench.timing import percentile, timed_seconds
from services.common.image_input import ImageLimits, load_image
from services.gateway.admission.auth import Tenant
from services.gateway.api.protocol import ChatCompletionRequest
from services.gateway.api.request_report import RequestReport
from services.gateway.cache.redis_response_cache import RedisResponseCache
from services.gateway.cache.response_cache import InMemoryResponseCache
from services.gateway.images.provenance_gate import ProvenanceGate, Upload
from services.gateway.options import AuthOptions, GatewayOptions
from services.gateway.redis_connection import RedisConnection
from services.in_process_app import build_in_process_app
from services.messages import RawImage
from services.provenance import ProvenanceChecker, ProvenanceOptions
from services.safety import SafetyFilter, SafetyOptions
from services.tiny_models.model_builder import build_tiny_model
from tests.redis_server import RedisServer  # the same real redis-server the tests start

PROMPT = "Is this receipt a travel expense? Answer yes or no and give the total."


def photo_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG: smooth gradients plus sensor-like noise (JPEG size and decode cost like a photo)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 180, (x + y) / (width + height) * 220], axis=-1)
    pixels = np.clip(base + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def percentiles(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """P50 and P99 in milliseconds."""
    times = timed_seconds(run, repeats)
    return statistics.median(times) * 1000, percentile(times, 0.99) * 1000


def row(name: str, p50: float, p99: float) -> None:
    sys.stdout.write(f"| {name} | {p50:.2f} | {p99:.2f} |\n")


def stages(jpeg: bytes, label: str, safety: SafetyFilter, repeats: int) -> None:
    provenance = ProvenanceChecker()
    gate = ProvenanceGate(ProvenanceOptions())
    loop = asyncio.new_event_loop()
    encoded = base64.b64encode(jpeg)
    limits = ImageLimits()
    image = load_image(jpeg, limits)
    raw = RawImage.from_image(image)
    sys.stdout.write(
        f"\n{label}: {len(jpeg) / 1e6:.2f} MB JPEG -> {image.width}x{image.height}\n\n"
        "| stage | P50 ms | P99 ms |\n|---|---|---|\n"
    )
    row("base64 decode", *percentiles(lambda: base64.b64decode(encoded, validate=True), repeats))
    row("decode + resize (draft)", *percentiles(lambda: load_image(jpeg, limits), repeats))
    row("content hash + RawImage", *percentiles(lambda: RawImage.from_image(image), repeats))
    row("prompt safety check", *percentiles(lambda: safety.check_prompt(PROMPT), repeats))
    row("image safety check (beside the encoder)", *percentiles(lambda: safety.check_image(raw.to_image()), repeats))
    row("provenance check (beside the encoder)", *percentiles(lambda: provenance.check(jpeg), repeats))

    def repeated_upload() -> object:
        return loop.run_until_complete(gate.check([Upload.of(jpeg, "image")]))

    row("provenance check, repeated upload (digest + lookup)", *percentiles(repeated_upload, repeats))


def cache_lookups(repeats: int) -> None:
    sys.stdout.write("\n| cache lookup (hit, 1 kB answer) | P50 ms | P99 ms |\n|---|---|---|\n")
    value = b"x" * 1024
    memory = InMemoryResponseCache(1 << 20, 60)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(memory.put("k", value))
    row("in-process", *percentiles(lambda: loop.run_until_complete(memory.get("k")), repeats))
    redis_server = _start_redis()
    if redis_server is None:
        sys.stdout.write("| redis (not installed) | - | - |\n")
        return
    try:
        cache = RedisResponseCache(RedisConnection(redis_server.url, timeout_ms=100), ttl_s=60)
        loop.run_until_complete(cache.put("k", value))
        row("local redis", *percentiles(lambda: loop.run_until_complete(cache.get("k")), repeats))
    finally:
        redis_server.kill()


def _start_redis() -> RedisServer | None:
    try:
        server = RedisServer(Path(tempfile.mkdtemp()))
    except AssertionError:  # redis-server is not installed
        return None
    server.start()
    return server


def cache_hit_end_to_end(repeats: int) -> None:
    """Validation, prompt check, image decode and hash, provenance of the repeated upload, cache lookup and
    replay, through ChatService."""
    model_dir = build_tiny_model("glm4v", Path(tempfile.mkdtemp()) / "tiny")
    options = GatewayOptions(
        model_name="tiny", auth=AuthOptions(allow_anonymous=True), safety=SafetyOptions(check_image=False)
    )
    gateway = build_in_process_app(model_dir, options=options).state.gateway
    url = "data:image/jpeg;base64," + base64.b64encode(photo_jpeg(512, 512)).decode()
    request = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": PROMPT}],
                }
            ],
            "temperature": 0,
            "max_tokens": 8,
        }
    )
    loop = asyncio.new_event_loop()

    async def answer() -> None:
        deadline = asyncio.get_running_loop().time() + 30
        async for _ in gateway.chat.outputs(request, "bench", Tenant(name="bench"), deadline, RequestReport()):
            pass

    loop.run_until_complete(answer())  # the miss that fills the cache
    p50, p99 = percentiles(lambda: loop.run_until_complete(answer()), repeats)
    sys.stdout.write(
        f"\ncache hit through the gateway (512x512 JPEG, in process): P50 {p50:.2f} ms, P99 {p99:.2f} ms\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    safety = SafetyFilter.from_options(SafetyOptions())
    stages(photo_jpeg(512, 512), "512x512", safety, args.repeats)
    stages(photo_jpeg(4000, 3000), "4000x3000", safety, max(10, args.repeats // 10))
    cache_lookups(args.repeats)
    cache_hit_end_to_end(args.repeats)


if __name__ == "__main__":
    main()
