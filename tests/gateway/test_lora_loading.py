"""LoRA adapters loaded and unloaded at run time (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`, as vLLM
serves them): only with an admin key, only from under the adapter root; a bad adapter is a 400 that changes
nothing; loading and unloading under traffic loses no request. Tenants restricted to some models cannot
tell another's adapter from one that does not exist."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.gateway.admission.auth import hash_api_key
from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.http_server import serve_in_thread
from tests.models.lora_adapters import make_adapter

BASE = "tiny-glm4v"
CONFIG = EngineConfig(max_num_seqs=4, max_model_len=512, max_loras=2, max_lora_rank=8)
ADMIN, ACME, GLOBEX = "sk-admin", "sk-acme", "sk-globex"
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def root(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lora-root")
    base = tiny_model_dirs["glm4v"]
    for seed, name in enumerate(["receipts", "moderation", "travel"]):
        make_adapter(base, root / name, rank=4, seed=40 + seed)
    make_adapter(base, root / "too-wide", rank=16, seed=44)
    make_adapter(tiny_model_dirs["qwen2_5_vl"], root / "other-base", rank=4, seed=45)
    shutil.copytree(root / "travel", root / "corrupt")
    (root / "corrupt" / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    return root


@pytest.fixture(scope="module")
def client(
    tiny_model_dirs: dict[str, Path], root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    keys = tmp_path_factory.mktemp("keys") / "keys.yaml"
    keys.write_text(
        "tenants:\n"
        f"  - name: ops\n    key_sha256: [{hash_api_key(ADMIN)}]\n    admin: true\n"
        f"  - name: acme\n    key_sha256: [{hash_api_key(ACME)}]\n"
        f"  - name: globex\n    key_sha256: [{hash_api_key(GLOBEX)}]\n"
        "    models: [moderation]\n    default_model: moderation\n"
    )
    options = GatewayOptions(model_name=BASE, auth=AuthOptions(api_keys_file=str(keys)))
    app = build_in_process_app(
        tiny_model_dirs["glm4v"],
        CONFIG,
        options,
        lora_adapters={"receipts": root / "receipts", "moderation": root / "moderation"},
        adapter_root=root,
    )
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ask(
    client: httpx.Client, model: str | None, key: str = ACME, question: str = "What is the total?"
) -> httpx.Response:
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": question}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "return_token_ids": True,
    }
    if model is not None:
        body["model"] = model
    return client.post("/v1/chat/completions", json=body, headers=headers(key))


def token_ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    ids: list[int] = response.json()["choices"][0]["token_ids"]
    return ids


def load(client: httpx.Client, name: str, path: str, key: str = ADMIN, **extra: Any) -> httpx.Response:
    return client.post(
        "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path, **extra}, headers=headers(key)
    )


def unload(client: httpx.Client, name: str, key: str = ADMIN) -> httpx.Response:
    return client.post("/v1/unload_lora_adapter", json={"lora_name": name}, headers=headers(key))


def model_ids(client: httpx.Client, key: str = ADMIN) -> list[str]:
    response = client.get("/v1/models", headers=headers(key))
    assert response.status_code == 200, response.text
    return [model["id"] for model in response.json()["data"]]


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_an_admin_loads_an_adapter_every_tenant_may_then_name_and_unloads_it(client: httpx.Client, root: Path) -> None:
    configured = token_ids(ask(client, "receipts"))
    response = load(client, "receipts-again", str(root / "receipts"))
    assert response.status_code == 200, response.text
    assert response.json() | {"created": 0} == {
        "id": "receipts-again",
        "object": "lora_adapter",
        "parent": BASE,
        "status": "loaded",
        "created": 0,
    }
    assert "receipts-again" in model_ids(client, ACME)
    answered = ask(client, "receipts-again")
    assert token_ids(answered) == configured  # the same files: the configured adapter's answer
    assert answered.json()["model"] == "receipts-again"

    assert unload(client, "receipts-again").json()["status"] == "unloaded"
    assert "receipts-again" not in model_ids(client)
    gone = ask(client, "receipts-again")
    assert (gone.status_code, error_of(gone)["code"]) == (404, "model_not_found")
    again = unload(client, "receipts-again")
    assert (again.status_code, error_of(again)["code"]) == (404, "lora_adapter_not_found")


@pytest.mark.parametrize(
    ("key", "status", "error_type"),
    [(None, 401, "authentication_error"), (ACME, 403, "permission_error"), (GLOBEX, 403, "permission_error")],
)
def test_loading_and_unloading_take_an_admin_key(
    client: httpx.Client, key: str | None, status: int, error_type: str
) -> None:
    auth = {} if key is None else headers(key)
    for path, body in [
        ("/v1/load_lora_adapter", {"lora_name": "travel", "lora_path": "travel"}),
        ("/v1/unload_lora_adapter", {"lora_name": "receipts"}),
    ]:
        response = client.post(path, json=body, headers=auth)
        assert (response.status_code, error_of(response)["type"]) == (status, error_type)
    assert "travel" not in model_ids(client) and "receipts" in model_ids(client)


@pytest.mark.parametrize(
    ("name", "path", "param", "message"),
    [
        ("escape", "../receipts", "lora_path", "not under the adapter root"),
        ("escape", "/etc", "lora_path", "not under the adapter root"),
        ("nul", "travel\x00", "lora_path", "not a usable path"),
        ("missing", "missing", "lora_path", "has no adapter_config.json"),
        ("corrupt", "corrupt", "lora_path", "adapter_model.safetensors cannot be read"),
        ("too-wide", "too-wide", "lora_path", "rank 16 is over this server's limit of 8"),
        ("other-base", "other-base", "lora_path", "another base model"),
        ("has space", "travel", "lora_name", "cannot name an adapter"),
        (BASE, "travel", "lora_name", "cannot name an adapter"),
        ("receipts", "travel", "lora_name", "already loaded"),
    ],
)
def test_a_bad_adapter_is_a_400_and_changes_nothing(
    client: httpx.Client, name: str, path: str, param: str, message: str
) -> None:
    before = model_ids(client)
    configured = token_ids(ask(client, "receipts"))
    response = load(client, name, path)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["param"] == param and message in error["message"], error
    assert model_ids(client) == before
    assert token_ids(ask(client, "receipts")) == configured


def test_load_inplace_replaces_an_adapter_and_its_cached_answers(client: httpx.Client) -> None:
    moderation = token_ids(ask(client, "moderation"))
    assert load(client, "swap", "receipts").status_code == 200
    receipts = token_ids(ask(client, "swap"))
    assert receipts != moderation
    assert load(client, "swap", "moderation", load_inplace=True).status_code == 200
    assert token_ids(ask(client, "swap")) == moderation  # not the first load's answer, cached or in KV
    assert unload(client, "swap").status_code == 200


def test_loading_and_unloading_under_traffic_lose_no_request(client: httpx.Client) -> None:
    def asked(index: int) -> httpx.Response:
        return ask(client, [None, "receipts", "moderation"][index % 3], question=f"Question {index}: total?")

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = pool.map(asked, range(18))
        for round_ in range(3):
            assert load(client, "travel", "travel").status_code == 200
            assert token_ids(ask(client, "travel", question=f"Travel {round_}?"))
            assert unload(client, "travel").status_code == 200
        for response in answers:
            assert len(token_ids(response)) == MAX_TOKENS


def test_a_restricted_tenant_gets_its_default_and_cannot_tell_anothers_adapter_from_none(
    client: httpx.Client,
) -> None:
    default = ask(client, None, GLOBEX)
    assert default.json()["model"] == "moderation"
    assert token_ids(default) == token_ids(ask(client, "moderation", ACME))
    assert model_ids(client, GLOBEX) == ["moderation"]
    others = {name: ask(client, name, GLOBEX) for name in ["receipts", "no-such-adapter", BASE]}
    for response in others.values():
        assert response.status_code == 404
        assert error_of(response)["code"] == "model_not_found"
    shapes = {error_of(response)["message"].replace(repr(name), "NAME") for name, response in others.items()}
    assert len(shapes) == 1, shapes


def test_an_unrestricted_tenant_sees_every_model(client: httpx.Client) -> None:
    assert model_ids(client, ACME) == [BASE, "moderation", "receipts"]
