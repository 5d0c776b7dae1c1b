"""A request past its deadline ends with 504 (or an error event once streaming) and frees its sequence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.gateway.test_app import sse_events
from tests.http_server import serve_in_thread
from tests.waiting import wait_until_idle

LONG_ANSWER = {
    "messages": [{"role": "user", "content": "Tell me everything."}],
    "max_tokens": 1000,
    "ignore_eos": True,
    "temperature": 0,
}


@pytest.fixture(scope="module")
def app(tiny_model_dirs: dict[str, Path]) -> FastAPI:
    options = GatewayOptions(
        model_name="tiny", request_timeout_s=30, max_request_timeout_s=60, auth=AuthOptions(allow_anonymous=True)
    )
    return build_in_process_app(tiny_model_dirs["glm4v"], EngineConfig(max_num_seqs=2, max_model_len=2048), options)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


class TestDeadline:
    def test_non_streaming_past_deadline_is_504_and_aborts(self, app: FastAPI, client: httpx.Client) -> None:
        aborted = app.state.engine.stats().num_aborted
        response = client.post("/v1/chat/completions", json=LONG_ANSWER, headers={"x-request-timeout": "0.2"})
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "timeout"
        wait_until_idle(app)
        assert app.state.engine.stats().num_aborted == aborted + 1

    def test_streaming_past_deadline_ends_with_an_error_event(self, app: FastAPI, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions", json={**LONG_ANSWER, "stream": True}, headers={"x-request-timeout": "0.3"}
        )
        assert response.status_code == 200
        events = sse_events(response.text)
        assert json.loads(events[-1])["error"]["code"] == "timeout"
        assert "[DONE]" not in events
        wait_until_idle(app)

    def test_within_deadline_is_served(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions", json={**LONG_ANSWER, "max_tokens": 4}, headers={"x-request-timeout": "20"}
        )
        assert response.status_code == 200
