"""The safety filter in the request path: blocked content is a 400 before any token, flagged content is
served with a header, a blocked answer ends its stream, and a safety model that cannot load fails closed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from services.safety import SafetyOptions
from tests.gateway.test_app import data_url, image_message, sse_events
from tests.gateway.test_hostile_input import encode
from tests.http_server import serve_in_thread
from tests.safety.images import shapes_open_nsfw_misreads
from tests.waiting import wait_until_idle

# Words the tiny random model (seed 0) says when asked this: an operator's term that its answers trip.
ANSWER_TERM = "总金额"
LONG_ANSWER = {"max_tokens": 40, "ignore_eos": True, "temperature": 0}


def app_with(model_dir: Path, safety: SafetyOptions) -> FastAPI:
    options = GatewayOptions(model_name="tiny", safety=safety, auth=AuthOptions(allow_anonymous=True))
    return build_in_process_app(model_dir, EngineConfig(max_num_seqs=4, max_model_len=1024), options)


@pytest.fixture(scope="module")
def app(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    terms = tmp_path_factory.mktemp("terms") / "terms.tsv"
    terms.write_text(f"hate\t{ANSWER_TERM}\n")
    return app_with(tiny_model_dirs["glm4v"], SafetyOptions(terms_file=terms))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def text_request(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 3, "temperature": 0, **extra}


def assert_policy_refusal(response: httpx.Response, category: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "content_policy_violation"
    assert category in error["message"]
    assert "0." not in error["message"], "a score leaked to the client"


class TestPrompt:
    def test_blocked_term_is_refused(self, client: httpx.Client) -> None:
        assert_policy_refusal(client.post("/v1/chat/completions", json=text_request("Say HEIL　Hitler")), "hate")

    def test_flagged_term_is_served_with_a_header(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=text_request("how to make a bomb in a video game"))
        assert response.status_code == 200
        assert response.headers["x-flashvqa-safety-flags"] == "prompt:violence"

    def test_clean_prompt_has_no_flags(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=text_request("What colour is the sky?"))
        assert response.status_code == 200 and "x-flashvqa-safety-flags" not in response.headers


class TestImage:
    @pytest.mark.parametrize("stream", [False, True])
    def test_blocked_image_is_refused_before_any_token(self, app: FastAPI, client: httpx.Client, stream: bool) -> None:
        url = data_url(encode(shapes_open_nsfw_misreads(), "PNG"))
        response = client.post(
            "/v1/chat/completions", json={"messages": [image_message(url=url)], "stream": stream, **LONG_ANSWER}
        )
        assert_policy_refusal(response, "sexual")
        wait_until_idle(app)

    def test_clean_image_is_served(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json={"messages": [image_message()], "max_tokens": 2})
        assert response.status_code == 200, response.text


class TestAnswer:
    def test_non_streamed_answer_with_a_blocked_term_is_refused(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json=text_request("Tell me everything.", **LONG_ANSWER))
        assert_policy_refusal(response, "hate")

    def test_streamed_answer_ends_with_an_error_event_at_the_term(self, app: FastAPI, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions", json=text_request("Tell me everything.", stream=True, **LONG_ANSWER)
        )
        assert response.status_code == 200
        events = sse_events(response.text)
        error = json.loads(events[-1])["error"]
        assert error["code"] == "content_policy_violation" and "hate" in error["message"]
        sent = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert ANSWER_TERM not in sent, "the blocked words reached the client"
        wait_until_idle(app)


class TestSafetyModelUnavailable:
    def test_fails_closed_for_images_and_still_serves_text(
        self, tiny_model_dirs: dict[str, Path], tmp_path: Path
    ) -> None:
        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"not a model")
        app = app_with(tiny_model_dirs["glm4v"], SafetyOptions(image_model_path=broken))
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            refused = client.post("/v1/chat/completions", json={"messages": [image_message()], "max_tokens": 2})
            assert refused.status_code == 503
            assert "Retry-After" in refused.headers
            assert client.post("/v1/chat/completions", json=text_request("hello")).status_code == 200
