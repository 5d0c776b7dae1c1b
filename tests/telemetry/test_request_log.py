"""One JSON line per API request: ids, tenant, status, stage timings and token counts; the prompt only with
debug logging on, and never the image."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from tests.gateway.test_app import image_message

LOGGER = "flashvqa.requests"


def logged(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == LOGGER]


def ask(client: httpx.Client, question: str) -> httpx.Response:
    response = client.post(
        "/v1/chat/completions",
        json={"messages": [image_message(question)], "max_tokens": 3, "ignore_eos": True, "temperature": 0},
    )
    assert response.status_code == 200, response.text
    return response


def test_one_line_per_request_with_what_happened(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        response = ask(client, "secret question about a picture")
    [line] = logged(caplog)
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["trace_id"] == response.headers["traceparent"].split("-")[1]
    assert (line["route"], line["status"], line["tenant"], line["model"], line["images"]) == (
        "/v1/chat/completions",
        200,
        "anonymous",
        "tiny",
        1,
    )
    assert line["completion_tokens"] == 3 and line["prompt_tokens"] > 0 and line["finish_reason"] == "length"
    assert line["ttft_ms"] > 0 and line["duration_ms"] >= line["ttft_ms"]
    assert {"auth", "rate_limit", "image.decode", "safety.prompt"} <= set(line["stages_ms"])
    raw = caplog.records[-1].getMessage()
    assert "secret question" not in raw and "base64" not in raw and "prompt" not in line


def test_debug_logging_adds_the_prompt_but_not_the_image(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        ask(client, "debug me")
    [line] = logged(caplog)
    assert line["prompt"] == "debug me"
    assert "base64" not in caplog.records[-1].getMessage()


def test_refused_requests_are_logged_too(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        response = client.post("/v1/chat/completions", json={"messages": []})
    [line] = logged(caplog)
    assert line["status"] == response.status_code == 400
