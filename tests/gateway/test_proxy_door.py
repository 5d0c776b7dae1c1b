"""The middlewares Serve's HTTP proxy runs (services/gateway/admission/proxy_door.py): Serve's own plain-text errors
reach the client in the OpenAI error form with their status and Retry-After kept, everything else passes
untouched, and the proxy's in-flight budget comes from its environment."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from services.app_builder import proxy_door_environment
from services.gateway.admission.in_flight_limit import InFlightLimit
from services.gateway.admission.proxy_door import (
    MAX_IN_FLIGHT_VARIABLE,
    PROXY_CALLBACK,
    ServeErrorsInOpenAIForm,
    proxy_middlewares,
)


def answering(status: int, content_type: bytes, body: bytes, *extra_headers: tuple[bytes, bytes], chunks: int = 1):
    """An ASGI app that answers every request as Serve's proxy would answer it itself."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type), *extra_headers],
            }
        )
        size = -(-len(body) // chunks)
        for index in range(chunks):
            await send(
                {
                    "type": "http.response.body",
                    "body": body[index * size : (index + 1) * size],
                    "more_body": index < chunks - 1,
                }
            )

    return app


async def through_the_door(app: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=ServeErrorsInOpenAIForm(app))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        return await client.post("/v1/chat/completions", content=b"{}")


@pytest.mark.parametrize("chunks", [1, 3])
async def test_serves_plain_text_503_becomes_the_openai_form(chunks: int) -> None:
    message = b"Request dropped due to backpressure (num_queued_requests=65, max_queued_requests=64)."
    response = await through_the_door(
        answering(503, b"text/plain; charset=utf-8", message, (b"retry-after", b"2"), chunks=chunks)
    )
    assert response.status_code == 503
    assert response.json()["error"] == {
        "message": message.decode(),
        "type": "server_error",
        "param": None,
        "code": "overloaded",
    }
    assert response.headers["retry-after"] == "2"
    assert response.headers["content-type"] == "application/json"


async def test_a_refusal_without_retry_after_gets_one() -> None:
    response = await through_the_door(answering(503, b"text/plain", b"replica unavailable"))
    assert response.headers["retry-after"] == "1"


async def test_a_timeout_is_a_server_error_of_its_own_code() -> None:
    response = await through_the_door(answering(408, b"text/plain", b"Request r timed out after 30s."))
    assert (response.status_code, response.json()["error"]["code"]) == (408, "timeout")


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (200, b"text/plain", b"fine"),
        (503, b"application/json", b'{"error": {"message": "ours", "type": "server_error"}}'),
        (200, b"text/event-stream", b"data: [DONE]\n\n"),
    ],
)
async def test_everything_else_passes_untouched(status: int, content_type: bytes, body: bytes) -> None:
    response = await through_the_door(answering(status, content_type, body))
    assert (response.status_code, response.content) == (status, body)


def test_the_proxy_budget_comes_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MAX_IN_FLIGHT_VARIABLE, raising=False)
    assert [middleware.cls for middleware in proxy_middlewares()] == [ServeErrorsInOpenAIForm]
    monkeypatch.setenv(MAX_IN_FLIGHT_VARIABLE, "12")
    door = proxy_middlewares()[-1]
    assert door.cls is InFlightLimit and door.kwargs["max_in_flight"] == 12


def test_flashvqa_serve_gives_the_proxy_every_gateway_replicas_budget() -> None:
    environment = proxy_door_environment(
        {"model": "m", "decoder": {"max_num_seqs": 8, "max_waiting": 8}, "gateway": {"num_replicas": 2}}
    )
    assert environment["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] == PROXY_CALLBACK
    assert environment[MAX_IN_FLIGHT_VARIABLE] == "16"  # 8 per gateway replica, two replicas
