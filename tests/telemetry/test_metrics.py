"""`GET /metrics` after a few requests: each counter and histogram moved by exactly what they did."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.options import AuthOptions, GatewayOptions, RateLimitOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.conftest import noise_image
from tests.http_server import serve_in_thread

CHAT = "/v1/chat/completions"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: httpx.Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def image_request(seed: int, stream: bool = False) -> dict:
    buffer = io.BytesIO()
    noise_image(96, 64, seed=seed).save(buffer, format="PNG")
    url = f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"
    return {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Count me"}],
            }
        ],
        "max_tokens": 4,
        "ignore_eos": True,
        "temperature": 0,
        "stream": stream,
    }


def test_requests_move_every_metric_by_their_amounts(client: httpx.Client) -> None:
    before = scrape(client)
    for body in (image_request(seed=301), image_request(seed=301), image_request(seed=302, stream=True)):
        response = client.post(CHAT, json=body)
        assert response.status_code == 200, response.text
    assert client.post(CHAT, json={"messages": "not a list"}).status_code == 400
    after = scrape(client)

    def count(name: str, **labels: str) -> float:
        return moved(before, after, name, **labels)

    assert count("flashvqa_requests_total", route=CHAT, status="200", model="tiny") == 3
    assert count("flashvqa_requests_total", route=CHAT, status="400", model="") == 1  # refused before a model
    assert count("flashvqa_request_duration_seconds_count", route=CHAT) == 4
    assert count("flashvqa_time_to_first_token_seconds_count", model="tiny") == 3
    assert count("flashvqa_time_per_output_token_seconds_count", model="tiny") == 3
    assert count("flashvqa_completion_tokens_sum", model="tiny") == 12
    assert count("flashvqa_prompt_tokens_count", model="tiny") == 3
    assert count("flashvqa_image_pixels_sum") == 3 * 96 * 64
    assert count("flashvqa_gateway_stage_seconds_count", stage="image.decode") == 3
    assert count("flashvqa_response_cache_lookups_total", result="miss") == 2  # the second request is a hit
    assert count("flashvqa_response_cache_lookups_total", result="hit") == 1
    assert count("flashvqa_provenance_verdicts_total", action="allow") == 3
    assert count("flashvqa_embedding_cache_lookups_total", result="miss") == 2
    for name in (
        "flashvqa_encoder_queue_seconds_count",
        "flashvqa_encode_seconds_count",
        "flashvqa_encoder_batch_size_count",
        "flashvqa_decoder_queue_seconds_count",
        "flashvqa_prefill_seconds_count",
        "flashvqa_image_tokens_count",
    ):
        assert count(name) == 2, name
    assert count("flashvqa_encoder_batch_size_sum") == 2  # in process, each image is its own batch
    for gauge in (
        "flashvqa_decoder_running_sequences",
        "flashvqa_decoder_waiting_sequences",
        "flashvqa_kv_cache_usage_ratio",
    ):
        assert after[(gauge, frozenset({("replica", "local")}))] == 0, gauge


@pytest.fixture(scope="module")
def limited(tiny_model_dirs: dict[str, Path]) -> Iterator[httpx.Client]:
    options = GatewayOptions(
        model_name="tiny", auth=AuthOptions(allow_anonymous=True), rate_limits=RateLimitOptions(requests_per_minute=1)
    )
    app: FastAPI = build_in_process_app(
        tiny_model_dirs["glm4v"], EngineConfig(max_num_seqs=2, max_model_len=512), options
    )
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_refusals_are_counted_by_status_and_limit(limited: httpx.Client) -> None:
    before = scrape(limited)
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    assert [limited.post(CHAT, json=body).status_code for _ in range(2)] == [200, 429]
    after = scrape(limited)
    assert moved(before, after, "flashvqa_rate_limit_refusals_total", limit="requests") == 1
    assert moved(before, after, "flashvqa_requests_total", route=CHAT, status="429", model="") == 1
