"""LoRA adapters through the OpenAI API: `/v1/models` lists the base and every adapter, a request's `model`
picks one and gets the merged adapter's answer, the response names it, an unknown model is a 404
`model_not_found`, and the response cache keeps each model's answers apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.http_server import serve_in_thread
from tests.models.lora_adapters import make_adapter, merged_model_dir

CONFIG = EngineConfig(max_num_seqs=4, max_model_len=512, max_loras=2, max_lora_rank=8)
OPTIONS = GatewayOptions(model_name="tiny-glm4v", auth=AuthOptions(allow_anonymous=True))


def ask(client: httpx.Client, model: str | None) -> httpx.Response:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "What is the total of this receipt?"}],
        "max_tokens": 8,
        "temperature": 0,
        "return_token_ids": True,
    }
    if model is not None:
        body["model"] = model
    return client.post("/v1/chat/completions", json=body)


def token_ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["choices"][0]["token_ids"]
    return ids


@pytest.fixture(scope="module")
def adapters(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gateway-adapters")
    base = tiny_model_dirs["glm4v"]
    return {
        "receipts": make_adapter(base, root / "receipts", rank=4, seed=21),
        "moderation": make_adapter(base, root / "moderation", rank=8, seed=22),
    }


@pytest.fixture(scope="module")
def client(tiny_model_dirs: dict[str, Path], adapters: dict[str, Path]) -> Iterator[httpx.Client]:
    app = build_in_process_app(tiny_model_dirs["glm4v"], CONFIG, OPTIONS, lora_adapters=adapters)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def test_models_lists_the_base_and_every_adapter(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()["data"]
    assert [(m["id"], m["parent"]) for m in models] == [
        ("tiny-glm4v", None),
        ("moderation", "tiny-glm4v"),
        ("receipts", "tiny-glm4v"),
    ]


def test_a_request_naming_an_adapter_gets_the_merged_adapters_answer(
    client: httpx.Client, tiny_model_dirs: dict[str, Path], adapters: dict[str, Path], tmp_path: Path
) -> None:
    merged = build_in_process_app(
        merged_model_dir(tiny_model_dirs["glm4v"], adapters["receipts"], tmp_path / "merged"), CONFIG, OPTIONS
    )
    with serve_in_thread(merged) as url, httpx.Client(base_url=url, timeout=30) as merged_client:
        expected = token_ids(ask(merged_client, None))
    response = ask(client, "receipts")
    assert token_ids(response) == expected
    assert response.json()["model"] == "receipts"
    assert token_ids(ask(client, "tiny-glm4v")) != expected  # the base answers otherwise


def test_the_response_cache_keeps_each_models_answers_apart(client: httpx.Client) -> None:
    # Asked in turn, each after another model's identical request was cached: a key without the model would
    # hand the second and third the first's answer.
    answers = {model: token_ids(ask(client, model)) for model in ("tiny-glm4v", "receipts", "moderation")}
    assert len({tuple(ids) for ids in answers.values()}) == 3
    again = {model: token_ids(ask(client, model)) for model in answers}  # now from the cache
    assert again == answers


def test_an_unknown_model_is_a_404_model_not_found(client: httpx.Client) -> None:
    response = ask(client, "someone-elses-adapter")
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")


def test_without_an_adapter_root_nothing_loads_at_run_time(client: httpx.Client, adapters: dict[str, Path]) -> None:
    response = client.post("/v1/load_lora_adapter", json={"lora_name": "again", "lora_path": str(adapters["receipts"])})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "lora_loading_disabled"
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["tiny-glm4v", "moderation", "receipts"]
