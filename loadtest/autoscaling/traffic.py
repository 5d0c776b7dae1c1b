"""The clients: each phase's users send requests back to back, every one timed and judged. A request that
fails for any reason (an error status, a refusal, a dropped connection) counts as failed: while replicas
come and go, none may."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass

import httpx

from loadtest.autoscaling.scenario import Load, Phase, Scenario
from loadtest.images import ImageSize, TestImage, picture
from loadtest.payloads import QUESTIONS, answer_text, chat_body, user_message

CHAT = "/v1/chat/completions"
REQUEST_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RequestRecord:
    phase: int  # index into the scenario's phases
    started_s: float  # since the scenario's clock started
    seconds: float
    ok: bool
    error: str = ""


class Traffic:
    def __init__(self, url: str, scenario: Scenario, origin: float) -> None:
        self._url = url
        self._scenario = scenario
        self._origin = origin
        self._seeds = itertools.count(1_000)  # seed 0 is the decode-heavy picture
        self._numbers = itertools.count()
        self._cached_picture = picture(0, ImageSize.SCREENSHOT)
        self.records: list[RequestRecord] = []

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(base_url=self._url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
            for index, phase in enumerate(self._scenario.phases):
                ends = time.monotonic() + phase.seconds
                await asyncio.gather(
                    *(self._user(client, index, phase, ends) for _ in range(phase.users)),
                    asyncio.sleep(max(ends - time.monotonic(), 0)),
                )

    async def _user(self, client: httpx.AsyncClient, index: int, phase: Phase, ends: float) -> None:
        while time.monotonic() < ends:
            image, max_tokens = await self._request_for(phase.load)
            number = next(self._numbers)
            question = f"{QUESTIONS[number % len(QUESTIONS)]} (#{number})"  # new text: no answer is cached
            body = chat_body([user_message(image, question)], max_tokens)
            started = time.monotonic()
            try:
                response = await client.post(CHAT, content=body, headers={"content-type": "application/json"})
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}: {response.text[:200]}")
                answer_text(response.content)
                ok, error = True, ""
            except (httpx.HTTPError, ValueError) as failure:
                ok, error = False, f"{type(failure).__name__}: {failure}"
            self.records.append(RequestRecord(index, started - self._origin, time.monotonic() - started, ok, error))

    async def _request_for(self, load: Load) -> tuple[TestImage, int]:
        if load is Load.DECODE_HEAVY:
            return self._cached_picture, self._scenario.decode_heavy_max_tokens
        # A picture no cache has seen; drawn in a thread so the other users' requests keep flowing.
        fresh = await asyncio.to_thread(picture, next(self._seeds), ImageSize.SCREENSHOT)
        return fresh, self._scenario.image_heavy_max_tokens
