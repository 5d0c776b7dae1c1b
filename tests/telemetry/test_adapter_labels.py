"""A LoRA adapter's requests are told apart in metrics, traces and log lines by the model id that answered."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.http_server import serve_in_thread
from tests.models.lora_adapters import make_adapter
from tests.telemetry.conftest import spans_of_trace
from tests.telemetry.test_metrics import CHAT, moved, scrape
from tests.telemetry.test_request_log import LOGGER, logged
from tests.telemetry.test_request_trace import trace_id_of, tree


@pytest.fixture(scope="module")
def client(
    tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, span_exporter: InMemorySpanExporter
) -> Iterator[httpx.Client]:
    adapter = make_adapter(tiny_model_dirs["glm4v"], tmp_path_factory.mktemp("labels") / "receipts", rank=4, seed=7)
    app = build_in_process_app(
        tiny_model_dirs["glm4v"],
        EngineConfig(max_num_seqs=2, max_model_len=512, max_loras=1, max_lora_rank=4),
        GatewayOptions(model_name="tiny", auth=AuthOptions(allow_anonymous=True)),
        lora_adapters={"receipts": adapter},
    )
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def ask(client: httpx.Client, model: str) -> httpx.Response:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": f"Labelled {model}?"}],
        "max_tokens": 3,
        "ignore_eos": True,
    }
    response = client.post(CHAT, json=body)
    assert response.status_code == 200, response.text
    return response


def test_metrics_count_each_models_requests_apart(client: httpx.Client) -> None:
    before = scrape(client)
    ask(client, "receipts")
    ask(client, "receipts")
    ask(client, "tiny")
    after = scrape(client)
    for model, requests in [("receipts", 2), ("tiny", 1)]:
        assert moved(before, after, "flashvqa_requests_total", route=CHAT, status="200", model=model) == requests
        assert moved(before, after, "flashvqa_time_to_first_token_seconds_count", model=model) == requests
        assert moved(before, after, "flashvqa_completion_tokens_sum", model=model) == 3 * requests


def test_the_trace_and_the_log_line_name_the_adapter(
    client: httpx.Client, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        response = ask(client, "receipts")
    [line] = logged(caplog)
    assert line["model"] == "receipts"
    root, children = tree(spans_of_trace(span_exporter, trace_id_of(response)))
    assert root.attributes is not None and root.attributes["flashvqa.model"] == "receipts"
    [decoder] = [span for spans in children.values() for span in spans if span.name == "llm_decoder"]
    assert decoder.attributes is not None and str(decoder.attributes["flashvqa.adapter"]).startswith("receipts@")
