"""The HTTP surface, in process (no Ray): OpenAI shapes, streaming, every client error a clean 4xx."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.conftest import noise_image
from tests.http_server import serve_in_thread
from tests.waiting import wait_until


def png_bytes(width: int = 96, height: int = 64, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    noise_image(width, height, seed).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def image_message(question: str = "What is this?", url: str | None = None) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": url or data_url(png_bytes())}},
            {"type": "text", "text": question},
        ],
    }


@pytest.fixture(scope="module")
def app(tiny_model_dirs: dict[str, Path]) -> FastAPI:
    return build_in_process_app(
        tiny_model_dirs["glm4v"],
        EngineConfig(max_num_seqs=2, max_model_len=1024, max_waiting=1),
        # A door wider than the engine (as with several gateway replicas), so the engine's own refusal shows.
        GatewayOptions(
            model_name="tiny-glm4v",
            max_images_per_request=2,
            max_image_bytes=200_000,
            max_in_flight=8,
            auth=AuthOptions(allow_anonymous=True),
        ),
    )


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def sse_events(body: str) -> list[str]:
    return [line.removeprefix("data: ") for line in body.split("\n\n") if line.startswith("data: ")]


class TestChatCompletions:
    def test_non_streaming_answer_with_usage(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": "tiny-glm4v",
                "messages": [image_message()],
                "max_tokens": 6,
                "temperature": 0,
                "ignore_eos": True,
            },
        )
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "chat.completion"
        assert body["id"].startswith("chatcmpl-")
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"]["completion_tokens"] == 6
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + 6

    def test_streaming_equals_non_streaming(self, client: httpx.Client) -> None:
        request = {"messages": [image_message()], "max_tokens": 8, "temperature": 0, "ignore_eos": True}
        whole = (client.post("/v1/chat/completions", json=request)).json()
        response = client.post(
            "/v1/chat/completions",
            json={
                **request,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response.text)
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == whole["choices"][0]["message"]["content"]
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
        assert chunks[-1]["usage"] == whole["usage"]

    def test_text_only_and_multi_turn(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions",
            json={
                "max_tokens": 4,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    image_message("Colour?"),
                    {"role": "assistant", "content": "Red."},
                    {"role": "user", "content": "And the shape?"},
                ],
            },
        )
        assert response.status_code == 200
        text_only = client.post(
            "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        )
        assert text_only.status_code == 200

    def test_a_follow_up_reports_its_reused_prompt_tokens_as_cached(self, client: httpx.Client) -> None:
        first_turn = [image_message("What is in this picture, in a few words?", data_url(png_bytes(seed=41)))]
        first = client.post(
            "/v1/chat/completions", json={"messages": first_turn, "max_tokens": 4, "temperature": 0, "ignore_eos": True}
        )
        assert first.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
        follow_up = [
            *first_turn,
            {"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]},
            {"role": "user", "content": "And the colour?"},
        ]
        usage = client.post("/v1/chat/completions", json={"messages": follow_up, "max_tokens": 2}).json()["usage"]
        assert 0 < usage["prompt_tokens_details"]["cached_tokens"] < usage["prompt_tokens"]

    def test_models_and_health(self, client: httpx.Client) -> None:
        assert (client.get("/v1/models")).json()["data"][0]["id"] == "tiny-glm4v"
        assert (client.get("/health")).json() == {"status": "ok"}


class TestClientErrors:
    """Anything a client can send gets a 4xx in the OpenAI error envelope, and the next request works."""

    @pytest.mark.parametrize(
        ("request_body", "status", "param"),
        [
            (
                {"messages": [image_message(url="data:image/png;base64,@@@notbase64")]},
                400,
                "messages[0].content[0].image_url",
            ),
            (
                {"messages": [image_message(url=data_url(b"GIF89a trailing junk"))]},
                400,
                "messages[0].content[0].image_url",
            ),
            (
                {"messages": [image_message(url=data_url(b"plain text", "text/plain"))]},
                400,
                "messages[0].content[0].image_url",
            ),
            ({"messages": [image_message(url="https://example.com/cat.png")]}, 400, "messages[0].content[0].image_url"),
            (
                {"messages": [image_message(url=data_url(b"\x89PNG" + b"\0" * 300_000))]},
                400,
                "messages[0].content[0].image_url",
            ),
            (
                {"messages": [{"role": "user", "content": [image_message()["content"][0]] * 3}]},
                400,
                "messages[0].content[2].image_url",
            ),
            (
                {"messages": [{"role": "assistant", "content": image_message()["content"]}]},
                400,
                "messages[0].content[0].image_url",
            ),
            ({"messages": [image_message()], "model": "gpt-4o"}, 404, "model"),
            ({"messages": []}, 400, "messages"),
            ({"messages": [image_message()], "temperature": 3}, 400, "temperature"),
            ({"messages": [image_message()], "top_p": 0}, 400, "top_p"),
            ({"messages": [image_message()], "n": 2}, 400, "n"),
            ({"messages": [image_message()], "max_tokens": 0}, 400, "max_tokens"),
            ({"messages": [image_message()], "max_tokens": 5000}, 400, "max_tokens"),
            ({"messages": [image_message()], "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
            ({"messages": [{"role": "tool", "content": "x"}]}, 400, "messages.0.role"),
            ({"messages": [{"role": "user", "content": [{"type": "audio", "x": 1}]}]}, 400, None),
            ({"messages": [{"role": "user", "content": "word " * 2000}]}, 400, "messages"),
        ],
        ids=[
            "bad_base64",
            "corrupt_gif",
            "not_an_image",
            "remote_url",
            "too_many_bytes",
            "too_many_images",
            "image_in_assistant",
            "unknown_model",
            "no_messages",
            "temperature",
            "top_p",
            "n",
            "max_tokens_zero",
            "max_tokens_past_context",
            "five_stops",
            "tool_role",
            "unknown_part",
            "prompt_too_long",
        ],
    )
    def test_rejected_with_openai_error(
        self, client: httpx.Client, request_body: dict, status: int, param: str | None
    ) -> None:
        for stream in (False, True):
            response = client.post("/v1/chat/completions", json={**request_body, "stream": stream})
            assert response.status_code == status, response.text
            error = response.json()["error"]
            assert error["message"]
            assert error["type"]
            if param is not None:
                assert error["param"] == param
        assert _short_answer(client).status_code == 200

    def test_malformed_json(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert "error" in response.json()

    def test_unknown_route_uses_the_envelope(self, client: httpx.Client) -> None:
        response = client.get("/v1/nothing")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found_error"


class TestBackpressure:
    def test_full_decoder_refuses_with_429_and_retry_after(self, app: FastAPI, client: httpx.Client) -> None:
        long = {"messages": [image_message()], "max_tokens": 400, "ignore_eos": True, "stream": True}
        engine = app.state.engine
        with (
            client.stream("POST", "/v1/chat/completions", json=long) as first,
            client.stream("POST", "/v1/chat/completions", json=long) as second,
        ):
            assert (first.status_code, second.status_code) == (200, 200)
            # The third waits for a slot (its response has not started); the fourth finds the queue full.
            waiter = threading.Thread(target=_short_answer, args=(client,))
            waiter.start()
            wait_until(lambda: engine.stats().num_waiting == 1)
            refused = client.post("/v1/chat/completions", json={"messages": [image_message()]})
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "server_busy"
        waiter.join(timeout=30)
        wait_until(lambda: engine.stats().num_running == 0)


class TestDisconnect:
    def test_closing_a_stream_aborts_its_sequence(self, app: FastAPI, client: httpx.Client) -> None:
        aborted_before = app.state.engine.stats().num_aborted
        body = {"messages": [image_message()], "max_tokens": 500, "ignore_eos": True, "stream": True}
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            for _ in response.iter_lines():
                break
        wait_until(lambda: app.state.engine.stats().num_aborted == aborted_before + 1)
        stats = app.state.engine.stats()
        assert (stats.num_running, stats.num_waiting) == (0, 0)
        assert _short_answer(client).status_code == 200


class TestVQA:
    def test_multipart_json_answer(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/vqa",
            files={"image": ("photo.png", png_bytes(), "image/png")},
            data={"question": "What brand is this?", "max_tokens": "5"},
        )
        assert response.status_code == 200
        assert response.json()["object"] == "chat.completion"

    def test_multipart_stream(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/vqa",
            files={"image": ("photo.png", png_bytes(), "image/png")},
            data={"question": "这是什么品牌?", "stream": "true", "max_tokens": "4"},
        )
        events = sse_events(response.text)
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["usage"]["completion_tokens"] >= 1

    @pytest.mark.parametrize(
        ("files", "data", "param"),
        [
            ({"image": ("x.png", b"not an image", "image/png")}, {"question": "q"}, "image"),
            ({}, {"question": "q"}, "image"),
            ({"image": ("x.png", png_bytes(), "image/png")}, {}, "question"),
            ({"image": ("x.png", png_bytes(), "image/png")}, {"question": "q", "temperature": "9"}, "temperature"),
            ({"image": ("x.png", b"\0" * 300_000, "image/png")}, {"question": "q"}, "image"),
        ],
        ids=["not_an_image", "no_image", "no_question", "bad_temperature", "too_large"],
    )
    def test_bad_form(self, client: httpx.Client, files: dict, data: dict, param: str) -> None:
        response = client.post("/v1/vqa", files=files or None, data=data)
        assert response.status_code == 400, response.text
        assert param in response.json()["error"]["param"]


def _short_answer(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"messages": [image_message()], "max_tokens": 2})
