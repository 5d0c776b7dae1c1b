"""Chaos on the real stack: serve_config.yaml's application on a local Ray (tiny model, a real redis-server for
the cache and rate limits), hit the way production gets hit. Nothing a client sent is lost or answered with
a 500: a burst far past capacity is answered or refused in the OpenAI form, streams whose clients hang up
free their sequences, Redis dying under load costs no request, and a decoder replica killed mid-stream ends
every open stream with an error event and is replaced. `make chaos` runs just these."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadtest.burst import fire
from loadtest.images import ImageSize, picture
from loadtest.local_stack import LocalStack
from loadtest.payloads import chat_body, user_message
from tests.redis_server import RedisServer
from tests.serve_stats import decoder_stats

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.ray]

RECOVERY_S = 30  # a killed decoder replica is replaced and answering again within this


@dataclass
class Stack:
    url: str
    pgid: int  # the stack's process session: Ray and the replicas
    redis: RedisServer

    def replica_pids(self, deployment: str) -> list[int]:
        listing = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(self.pgid)], capture_output=True, text=True)
        return [
            int(line.split()[0])
            for line in listing.stdout.splitlines()
            if f"ServeReplica:flashvqa:{deployment}" in line
        ]


@pytest.fixture(scope="module")
def stack(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("chaos")
    redis = RedisServer(folder)
    redis.start()
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("FLASHVQA_REDIS_URL", redis.url)  # inherited by Ray's workers
        local_stack = LocalStack(tiny_model_dirs["glm4v"], {}, folder / "stack.log")
        with local_stack as url:
            assert local_stack._process is not None
            yield Stack(url, local_stack._process.pid, redis)
    redis.kill()


def _question(seed: int, max_tokens: int = 6, stream: bool = False) -> bytes:
    return chat_body(
        [user_message(picture(seed, ImageSize.THUMBNAIL), f"What is in picture {seed}?")], max_tokens, stream=stream
    )


def _post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})


def test_a_burst_far_past_capacity_is_answered_or_refused_in_the_openai_form(stack: Stack) -> None:
    bodies = [_question(10_000 + index) for index in range(300)]
    summary = asyncio.run(fire(stack.url, bodies, timeout_s=120))
    assert summary.others == [], summary.figures()  # no 5xx but refusals, no 504, no client timeout
    assert summary.malformed_refusals == []
    assert summary.answered and summary.refused, summary.figures()
    figures = summary.figures()
    # Refused at the door, not after the work: the slowest refusal came before the typical answer.
    assert figures["refusal_p99_s"] < figures["answered_p50_s"], figures


def test_streams_dropped_by_their_clients_free_their_sequences(stack: Stack) -> None:
    aborted_before = decoder_stats()["num_aborted"]
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        for index in range(8):
            body = _question(20_000 + index, max_tokens=2000, stream=True)
            with client.stream(
                "POST", "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
            ) as response:
                assert response.status_code == 200
                next(response.iter_lines())
    stats = decoder_stats(wait_for_aborted=aborted_before + 8)
    assert stats["num_aborted"] >= aborted_before + 8
    assert (stats["num_running"], stats["num_waiting"]) == (0, 0)


def test_redis_killed_and_restarted_under_load_loses_no_request(stack: Stack) -> None:
    statuses: list[int] = []
    stop = threading.Event()

    def user(first_seed: int) -> None:
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            seed = first_seed
            while not stop.is_set():
                statuses.append(_post(client, _question(seed)).status_code)
                seed += 1

    users = [threading.Thread(target=user, args=(30_000 + 1000 * index,)) for index in range(4)]
    for thread in users:
        thread.start()
    time.sleep(2)
    stack.redis.kill()
    time.sleep(3)
    during = len(statuses)
    stack.redis.start()
    time.sleep(2)
    stop.set()
    for thread in users:
        thread.join(timeout=60)
    assert len(statuses) > during > 0
    assert set(statuses) == {200}, statuses


def test_a_decoder_replica_killed_mid_stream_ends_every_stream_and_is_replaced(stack: Stack) -> None:
    [decoder] = stack.replica_pids("llm_decoder")
    last_events: list[str] = []
    first_token = threading.Barrier(5)

    def listen(seed: int) -> None:
        with (
            httpx.Client(base_url=stack.url, timeout=120) as client,
            client.stream(
                "POST",
                "/v1/chat/completions",
                content=_question(seed, max_tokens=3000, stream=True),
                headers={"content-type": "application/json"},
            ) as response,
        ):
            events = response.iter_lines()
            next(events)
            first_token.wait(timeout=60)
            last_events.append([line for line in events if line.startswith("data: ")][-1])

    listeners = [threading.Thread(target=listen, args=(40_000 + index,)) for index in range(4)]
    for thread in listeners:
        thread.start()
    first_token.wait(timeout=60)
    os.kill(decoder, signal.SIGKILL)
    for thread in listeners:
        thread.join(timeout=120)
    assert len(last_events) == 4
    for event in last_events:
        error: dict[str, Any] = json.loads(event.removeprefix("data: "))["error"]
        assert error["type"] == "server_error" and error["code"] in ("overloaded", "engine_error"), error
    killed_at = time.monotonic()
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        while True:
            if _post(client, _question(50_000)).status_code == 200:
                break
            assert time.monotonic() - killed_at < RECOVERY_S, "no answer within 30 s of the decoder's death"
            time.sleep(0.5)
    assert stack.replica_pids("llm_decoder") != [decoder]
