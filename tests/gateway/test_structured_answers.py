"""Structured answers over HTTP, in process with a random-weight model: `response_format` alone makes the answer
JSON valid against its schema, streamed or not, on the chat route and on `/v1/vqa`; a format the decoder cannot
use is a 400 naming `response_format`; the answer cache never hands one format's answer to another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi import FastAPI

from services.gateway.api.protocol import MAX_SCHEMA_CHARS, MAX_SCHEMA_DEPTH
from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.gateway.test_app import image_message, png_bytes, sse_events
from tests.http_server import serve_in_thread
from tests.llm_decoder.engine.json_schemas import receipt

RECEIPT_FORMAT = {"type": "json_schema", "json_schema": receipt()}
JSON_MODE = {"type": "json_object"}
BUDGET = 400  # tokens; the longest receipt the schema admits is far shorter


@pytest.fixture(scope="module")
def app(tiny_model_dirs: dict[str, Path]) -> FastAPI:
    return build_in_process_app(
        tiny_model_dirs["glm4v"],
        EngineConfig(max_num_seqs=2, max_model_len=1024),
        GatewayOptions(model_name="tiny-glm4v", auth=AuthOptions(allow_anonymous=True)),  # the answer cache is on
    )


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def _ask(
    client: httpx.Client, response_format: Any, question: str = "What does the receipt say?", **fields: Any
) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={
            "messages": [image_message(question)],
            "response_format": response_format,
            "max_tokens": BUDGET,
            **fields,
        },
    )


def _answer(response: httpx.Response) -> tuple[str, str]:
    """The answer's text and finish reason, from a JSON or an SSE response."""
    assert response.status_code == 200, response.text
    if not response.headers["content-type"].startswith("text/event-stream"):
        choice = response.json()["choices"][0]
        return choice["message"]["content"], choice["finish_reason"]
    chunks = [json.loads(event) for event in sse_events(response.text)[:-1]]
    choices = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
    return "".join(choice["delta"].get("content", "") for choice in choices), choices[-1]["finish_reason"]


def _valid_receipt(response: httpx.Response) -> dict[str, Any]:
    text, finish_reason = _answer(response)
    assert finish_reason == "stop", f"the receipt was cut off: {text!r}"
    document: dict[str, Any] = json.loads(text)
    jsonschema.validate(document, RECEIPT_FORMAT["json_schema"]["schema"])
    return document


def _plain_answer(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/chat/completions", json={"messages": [image_message()], "max_tokens": 2})


class TestReceiptSchema:
    """Whatever the random model would say, a receipt request is answered with one JSON document valid against
    the schema, ending (`stop`) as soon as the document is complete."""

    def test_greedy_answer_validates(self, client: httpx.Client) -> None:
        _valid_receipt(_ask(client, RECEIPT_FORMAT, temperature=0))

    def test_streamed_deltas_join_into_the_same_valid_document(self, client: httpx.Client) -> None:
        sampled = {"temperature": 1, "seed": 11}  # seeded: the same tokens with and without streaming
        whole = _valid_receipt(_ask(client, RECEIPT_FORMAT, **sampled))
        assert _valid_receipt(_ask(client, RECEIPT_FORMAT, stream=True, **sampled)) == whole


class TestJsonMode:
    """`json_object` keeps the answer on a JSON object from its first character; a random model closes one now
    and then (the grammar has no bound on strings), and every answer that ends by itself is an object."""

    def test_answers_are_json_objects_streamed_or_not(self, client: httpx.Client) -> None:
        finished = []
        for seed in range(8):
            text, finish_reason = _answer(_ask(client, JSON_MODE, temperature=1, seed=seed, max_tokens=48))
            assert text.startswith("{"), text
            if finish_reason == "stop":
                assert isinstance(json.loads(text), dict)
                finished.append((seed, text))
        assert finished, "no seed closed its object: the test lost its meaning"
        seed, text = finished[0]
        streamed = _answer(_ask(client, JSON_MODE, temperature=1, seed=seed, max_tokens=48, stream=True))
        assert streamed == (text, "stop")


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(depth - 1):
        schema = {"type": "array", "items": schema}
    return schema


def _schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "refused", "schema": schema}}


class TestRefusedFormats:
    """A format the decoder cannot honour is a 400 in the OpenAI envelope, naming `response_format` and the
    reason, also when streaming (never a 200 stream), and the next request is served."""

    @pytest.mark.parametrize(
        ("schema", "reason"),
        [
            ({"type": "string", "format": "credit-card"}, "credit-card"),
            ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
        ],
        ids=["unknown_format", "unique_items"],
    )
    def test_a_schema_the_decoder_cannot_compile(self, client: httpx.Client, schema: dict, reason: str) -> None:
        for stream in (False, True):
            response = _ask(client, _schema_format(schema), stream=stream)
            assert response.status_code == 400, response.text
            assert response.headers["content-type"] == "application/json"
            error = response.json()["error"]
            assert (error["param"], error["code"]) == ("response_format", "invalid_response_format")
            assert reason in error["message"]
            assert _plain_answer(client).status_code == 200

    @pytest.mark.parametrize(
        ("schema", "reason"),
        [
            ({"enum": ["x" * 100] * (MAX_SCHEMA_CHARS // 100)}, f"longer than {MAX_SCHEMA_CHARS} characters"),
            (_nested(MAX_SCHEMA_DEPTH + 1), f"deeper than {MAX_SCHEMA_DEPTH} levels"),
        ],
        ids=["oversized", "too_deep"],
    )
    def test_a_schema_past_the_bounds(self, client: httpx.Client, schema: dict, reason: str) -> None:
        for stream in (False, True):
            response = _ask(client, _schema_format(schema), stream=stream)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert (error["param"], error["code"]) == ("response_format.json_schema.schema", "invalid_response_format")
            assert reason in error["message"]
            assert _plain_answer(client).status_code == 200

    def test_a_format_cannot_constrain_a_thinking_model(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": JSON_MODE,
                "chat_template_kwargs": {"enable_thinking": True},
            },
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["param"], error["code"]) == ("response_format", "invalid_response_format")

    def test_the_schema_compiler_still_serves_good_schemas(self, client: httpx.Client) -> None:
        assert _ask(client, _schema_format({"type": "string", "format": "credit-card"})).status_code == 400
        _valid_receipt(_ask(client, RECEIPT_FORMAT, temperature=0, seed=1))


class TestAnswerCache:
    """The cache key holds the grammar: a cached answer is replayed only for the same format (and strictness)."""

    def test_each_format_gets_its_own_answer(self, app: FastAPI, client: httpx.Client) -> None:
        engine = app.state.engine
        question = "Cache me: what does the receipt say?"

        def greedy(response_format: Any) -> tuple[str, bool]:
            """The answer, and whether the decoder ran for it (a cache miss)."""
            finished = engine.stats().num_finished
            text, _ = _answer(_ask(client, response_format, question, temperature=0, max_tokens=40))
            return text, engine.stats().num_finished > finished

        plain, ran = greedy(None)
        assert ran and not plain.startswith("{")
        assert greedy(None) == (plain, False), "the plain answer was not cached: this test proves nothing"

        json_mode, ran = greedy(JSON_MODE)
        assert ran and json_mode.startswith("{"), "a plain answer was replayed for a JSON-mode request"
        assert greedy(JSON_MODE) == (json_mode, False)

        lenient = {"type": "json_schema", "json_schema": receipt() | {"strict": False}}
        for response_format in (RECEIPT_FORMAT, lenient):
            text, ran = greedy(response_format)
            assert ran and text.startswith('{"category":'), f"another format's answer was replayed: {text!r}"


class TestVQAForm:
    """`/v1/vqa` takes the same `response_format`, as JSON text in a form field."""

    @staticmethod
    def _vqa(client: httpx.Client, **form: str) -> httpx.Response:
        return client.post(
            "/v1/vqa",
            files={"image": ("receipt.png", png_bytes(), "image/png")},
            data={"question": "What does the receipt say?", "max_tokens": str(BUDGET), **form},
        )

    @pytest.mark.parametrize("stream", ["false", "true"])
    def test_receipt_answers_validate(self, client: httpx.Client, stream: str) -> None:
        _valid_receipt(self._vqa(client, response_format=json.dumps(RECEIPT_FORMAT), stream=stream))

    def test_json_mode(self, client: httpx.Client) -> None:
        text, _ = _answer(self._vqa(client, response_format=json.dumps(JSON_MODE), max_tokens="8"))
        assert text.startswith("{")

    @pytest.mark.parametrize(
        ("form", "param", "reason"),
        [
            ({"response_format": "{json_object"}, "response_format", "Invalid JSON"),
            ({"response_format": '"json_object"'}, "response_format", "object"),
            ({"response_format": '{"type": "xml"}'}, "response_format", "'xml'"),
            (
                {"response_format": '{"type": "json_schema", "json_schema": {"name": "has spaces"}}'},
                "response_format.json_schema.name",
                "pattern",
            ),
            (
                {"response_format": json.dumps(_schema_format({"type": "string", "format": "credit-card"}))},
                "response_format",
                "credit-card",
            ),
            (
                {"response_format": json.dumps(JSON_MODE), "enable_thinking": "true"},
                "response_format",
                "enable_thinking",
            ),
            ({"seed": str(2**64)}, "seed", "less than"),
        ],
        ids=[
            "not_json",
            "not_an_object",
            "unknown_type",
            "bad_name",
            "unknown_format",
            "with_thinking",
            "seed_out_of_range",
        ],
    )
    def test_refused_with_the_field_named(
        self, client: httpx.Client, form: dict[str, str], param: str | None, reason: str
    ) -> None:
        for stream in ("false", "true"):
            response = self._vqa(client, stream=stream, **form)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["param"] == param
            assert reason in error["message"]
        assert _plain_answer(client).status_code == 200


def test_the_web_page_offers_the_example_receipt_schema(client: httpx.Client) -> None:
    """The page's built-in copy must not drift from `examples/receipt_schema.json`, which docs/api.md shows."""
    assert client.get("/static/receipt_schema.json").json() == receipt()
