"""Two gateway replicas over one real Redis: shared rate limits, shared answers, and Redis failing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.gateway.admission.auth import hash_api_key
from services.gateway.options import AuthOptions, GatewayOptions, RateLimitOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.gateway.test_app import image_message, sse_events
from tests.http_server import serve_in_thread
from tests.redis_server import RedisServer

KEY = "sk-test-shared"


def gateway_app(model_dir: Path, redis_url: str, key_file: Path, requests_per_minute: int | None) -> FastAPI:
    options = GatewayOptions(
        model_name="tiny",
        auth=AuthOptions(api_keys_file=str(key_file)),
        rate_limits=RateLimitOptions(requests_per_minute=requests_per_minute),
        redis_timeout_ms=200,
    )
    return build_in_process_app(
        model_dir, EngineConfig(max_num_seqs=4, max_model_len=1024), options, redis_url=redis_url
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(f"tenants:\n  - name: acme\n    key_sha256: [{hash_api_key(KEY)}]\n")
    return path


@pytest.fixture
def two_gateways(
    tiny_model_dirs: dict[str, Path], redis_server: RedisServer, key_file: Path
) -> Iterator[tuple[list[httpx.Client], list[FastAPI]]]:
    redis_server.flush()
    apps = [gateway_app(tiny_model_dirs["glm4v"], redis_server.url, key_file, 10) for _ in range(2)]
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                httpx.Client(
                    base_url=stack.enter_context(serve_in_thread(app)),
                    timeout=30,
                    headers={"Authorization": f"Bearer {KEY}"},
                )
            )
            for app in apps
        ]
        yield clients, apps


def ask(client: httpx.Client, question: str = "What is this?", **extra: Any) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={
            "messages": [image_message(question)],
            "max_tokens": 4,
            "temperature": 0,
            "ignore_eos": True,
            **extra,
        },
    )


def finished(app: FastAPI) -> int:
    return int(app.state.engine.stats().num_finished)


class TestSharedRateLimit:
    """The seed's example: 10 requests per minute per tenant, whichever replica serves them."""

    def test_eleventh_request_across_two_replicas_is_429(self, two_gateways: Any) -> None:
        clients, _ = two_gateways
        responses = [ask(clients[i % 2], f"question {i}") for i in range(11)]
        assert [r.status_code for r in responses] == [200] * 10 + [429]
        assert responses[9].headers["x-ratelimit-remaining-requests"] == "0"
        refused = responses[10]
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["x-ratelimit-limit-requests"] == "10"
        assert refused.json()["error"]["type"] == "rate_limit_error"

    def test_unauthenticated_requests_are_401_and_not_counted(self, two_gateways: Any) -> None:
        clients, _ = two_gateways
        for _ in range(12):
            response = clients[0].post(
                "/v1/chat/completions",
                headers={"Authorization": "Bearer sk-nope"},
                json={"messages": [{"role": "user", "content": "hi"}]},
            )
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_api_key"
        assert ask(clients[1]).status_code == 200


class TestSharedResponseCache:
    """A deterministic answer computed by one replica is served by the other without the model."""

    def test_hit_on_the_other_replica(self, two_gateways: Any) -> None:
        clients, apps = two_gateways
        first = ask(clients[0], "cache me")
        before = finished(apps[1])
        second = ask(clients[1], "cache me")
        assert second.status_code == 200
        assert finished(apps[1]) == before, "the second replica ran the model for a cached answer"
        assert second.json()["choices"] == first.json()["choices"]
        assert second.json()["usage"] == first.json()["usage"]

    def test_hit_replays_as_server_sent_events(self, two_gateways: Any) -> None:
        clients, apps = two_gateways
        whole = ask(clients[0], "stream me").json()
        before = finished(apps[0])
        streamed = ask(clients[0], "stream me", stream=True)
        assert finished(apps[0]) == before
        events = sse_events(streamed.text)
        assert events[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert text == whole["choices"][0]["message"]["content"]

    def test_sampled_and_different_requests_miss(self, two_gateways: Any) -> None:
        clients, apps = two_gateways
        ask(clients[0], "sampled", temperature=0.7, seed=1)
        ask(clients[0], "other question")
        before = finished(apps[0])
        ask(clients[0], "sampled", temperature=0.7, seed=1)
        ask(clients[0], "other question", max_tokens=3)
        assert finished(apps[0]) == before + 2


class TestRedisFailure:
    """Redis killed mid-test: requests are still served, /health says degraded, and recovers."""

    def test_served_while_redis_is_down(self, tiny_model_dirs: dict[str, Path], key_file: Path, tmp_path: Path) -> None:
        redis_server = RedisServer(tmp_path)
        redis_server.start()
        app = gateway_app(tiny_model_dirs["glm4v"], redis_server.url, key_file, 1000)
        with (
            serve_in_thread(app) as url,
            httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as client,
        ):
            assert ask(client).status_code == 200
            assert client.get("/health").json() == {"status": "ok"}
            redis_server.kill()
            for index in range(3):
                response = ask(client, f"while down {index}")
                assert response.status_code == 200, response.text
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            redis_server.start()
            assert client.get("/health").json() == {"status": "ok"}
            assert ask(client, "after recovery").status_code == 200
        redis_server.kill()
