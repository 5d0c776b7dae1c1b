"""Shedding at the door: past its in-flight budget, a gateway replica refuses a generation request at once,
without reading its body, in the OpenAI error form with when to retry; the budget frees as answers end."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from starlette.types import Receive, Scope, Send

from services.gateway.admission.in_flight_limit import InFlightLimit


class HeldApp:
    """Answers a request only when released; counts the request bodies it read."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.bodies_read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        self.bodies_read += 1
        if scope["path"] != "/health":
            await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"answer"})


def client(app: InFlightLimit) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_past_the_budget_a_request_is_refused_unread_in_the_openai_form() -> None:
    held = HeldApp()
    limit = InFlightLimit(held, max_in_flight=2, retry_after_ms=250)
    async with client(limit) as http:
        admitted = [asyncio.ensure_future(http.post("/v1/chat/completions", content=b"{}")) for _ in range(2)]
        while limit.in_flight < 2:
            await asyncio.sleep(0.01)
        refused = await http.post("/v1/vqa", content=b"x" * 1_000_000)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert refused.json()["error"]["type"] == "server_error"
        assert (refused.headers["retry-after"], refused.headers["retry-after-ms"]) == ("1", "250")
        assert held.bodies_read == 2  # the refused body was never read
        held.release.set()
        assert [response.status_code for response in await asyncio.gather(*admitted)] == [200, 200]
        assert limit.in_flight == 0
        assert (await http.post("/v1/chat/completions", content=b"{}")).status_code == 200


async def test_other_routes_do_not_count() -> None:
    held = HeldApp()
    limit = InFlightLimit(held, max_in_flight=1, retry_after_ms=1000)
    async with client(limit) as http:
        admitted = asyncio.ensure_future(http.post("/v1/chat/completions", content=b"{}"))
        while limit.in_flight < 1:
            await asyncio.sleep(0.01)
        assert (await http.get("/health")).status_code == 200
        held.release.set()
        assert (await admitted).status_code == 200


async def test_a_request_that_fails_gives_its_place_back() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("the handler failed")

    limit = InFlightLimit(failing, max_in_flight=1, retry_after_ms=1000)
    async with client(limit) as http:
        for _ in range(3):
            with contextlib.suppress(RuntimeError):
                await http.post("/v1/chat/completions", content=b"{}")
    assert limit.in_flight == 0
