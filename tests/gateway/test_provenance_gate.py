"""The provenance check in the request path: what it found comes back as the `x-flashvqa-provenance`
header and a `provenance` field (first chunk when streaming), a blocking policy refuses before any token,
and a response-cache hit still reports the provenance of the bytes this client sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from PIL import PngImagePlugin

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from services.provenance import PolicyAction, ProvenanceOptions, ProvenancePolicy
from services.provenance.dwt_dct_watermark import STABLE_DIFFUSION_XL, PixelConvention
from tests.gateway.test_app import data_url, image_message, sse_events
from tests.http_server import serve_in_thread
from tests.provenance.marking import embed
from tests.provenance.synthetic import natural_image, png_bytes

HEADER = "x-flashvqa-provenance"
ANSWER = {"max_tokens": 3, "temperature": 0}


def with_generator_metadata(rgb: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7")
    return png_bytes(rgb, pnginfo=info)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return natural_image(11, 320, 256)


def app_with(model_dir: Path, policy: ProvenancePolicy) -> FastAPI:
    options = GatewayOptions(
        model_name="tiny", auth=AuthOptions(allow_anonymous=True), provenance=ProvenanceOptions(policy=policy)
    )
    return build_in_process_app(model_dir, EngineConfig(max_num_seqs=4, max_model_len=1024), options)


def serve(app: FastAPI) -> Iterator[httpx.Client]:
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def client(tiny_model_dirs: dict[str, Path]) -> Iterator[httpx.Client]:
    yield from serve(app_with(tiny_model_dirs["glm4v"], ProvenancePolicy()))


@pytest.fixture(scope="module")
def strict_app(tiny_model_dirs: dict[str, Path]) -> FastAPI:
    return app_with(tiny_model_dirs["glm4v"], ProvenancePolicy(ai_metadata=PolicyAction.BLOCK))


@pytest.fixture(scope="module")
def strict_client(strict_app: FastAPI) -> Iterator[httpx.Client]:
    yield from serve(strict_app)


def ask(client: httpx.Client, *images: bytes, stream: bool = False, question: str = "What is this?") -> httpx.Response:
    message = image_message(question, data_url(images[0]))
    message["content"][1:1] = [{"type": "image_url", "image_url": {"url": data_url(image)}} for image in images[1:]]
    return client.post("/v1/chat/completions", json={"messages": [message], "stream": stream, **ANSWER})


def first_chunk(response: httpx.Response) -> dict[str, Any]:
    chunk: dict[str, Any] = json.loads(sse_events(response.text)[0])
    return chunk


class TestReported:
    def test_clean_photo_is_allowed_and_says_so(self, client: httpx.Client, photo: np.ndarray) -> None:
        response = ask(client, png_bytes(photo))
        assert response.status_code == 200, response.text
        assert response.headers[HEADER] == "allow; watermark=not-detected"
        [report] = response.json()["provenance"]
        assert report["action"] == "allow" and report["findings"] == []

    def test_generator_metadata_is_flagged(self, client: httpx.Client, photo: np.ndarray) -> None:
        response = ask(client, with_generator_metadata(photo))
        assert response.status_code == 200, response.text
        assert response.headers[HEADER] == "flag; metadata=png-text:parameters; watermark=not-detected"
        assert response.json()["provenance"][0]["ai_metadata"] == ["png-text:parameters"]

    def test_invisible_watermark_is_flagged(self, client: httpx.Client) -> None:
        marked = embed(natural_image(3, 512, 512), STABLE_DIFFUSION_XL, PixelConvention.FLOAT)
        response = ask(client, png_bytes(marked))
        assert response.status_code == 200, response.text
        assert response.headers[HEADER] == "flag; watermark=stable-diffusion-xl"
        assert response.json()["provenance"][0]["invisible_watermark"]["detected"] is True

    def test_streamed_answer_carries_it_in_the_header_and_first_chunk(
        self, client: httpx.Client, photo: np.ndarray
    ) -> None:
        response = ask(client, with_generator_metadata(photo), stream=True)
        assert response.status_code == 200, response.text
        assert response.headers[HEADER].startswith("flag;")
        assert first_chunk(response)["provenance"][0]["findings"] == ["ai_metadata"]
        later = [json.loads(event) for event in sse_events(response.text)[1:-1]]
        assert later and all("provenance" not in chunk for chunk in later)

    def test_one_report_per_image_in_order(self, client: httpx.Client, photo: np.ndarray) -> None:
        response = ask(client, png_bytes(photo), with_generator_metadata(natural_image(12, 300, 300)))
        assert response.status_code == 200, response.text
        assert [report["action"] for report in response.json()["provenance"]] == ["allow", "flag"]
        assert response.headers[HEADER].split(" | ")[1].startswith("flag;")

    def test_text_only_request_has_no_report(self, client: httpx.Client) -> None:
        response = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], **ANSWER})
        assert response.status_code == 200 and HEADER not in response.headers
        assert "provenance" not in response.json()


class TestPolicy:
    @pytest.mark.parametrize("stream", [False, True])
    def test_blocked_finding_is_refused_before_any_token(
        self, strict_client: httpx.Client, photo: np.ndarray, stream: bool
    ) -> None:
        response = ask(strict_client, png_bytes(photo), with_generator_metadata(photo), stream=stream)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "provenance_policy_violation"
        assert error["param"] == "messages[0].content[1].image_url"
        assert "ai_metadata" in error["message"]
        assert ask(strict_client, png_bytes(photo)).status_code == 200

    def test_cache_hit_still_checks_the_bytes_sent(self, strict_app: FastAPI, strict_client: httpx.Client) -> None:
        """Same pixels, so the same response-cache key; only the last upload carries generator metadata."""
        rgb = natural_image(21, 288, 288)
        plain = ask(strict_client, png_bytes(rgb), question="cache me")
        assert plain.status_code == 200 and plain.headers[HEADER].startswith("allow")
        answered = strict_app.state.engine.stats().num_finished
        hit = ask(strict_client, png_bytes(rgb), question="cache me")
        assert strict_app.state.engine.stats().num_finished == answered, "not a cache hit"
        assert hit.json()["choices"] == plain.json()["choices"] and hit.headers[HEADER] == plain.headers[HEADER]
        tagged = ask(strict_client, with_generator_metadata(rgb), question="cache me")
        assert tagged.status_code == 400 and tagged.json()["error"]["code"] == "provenance_policy_violation"
