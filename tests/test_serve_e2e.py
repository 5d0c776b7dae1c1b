"""The real thing: `flashvqa serve` on a real local Ray, spoken to with the official `openai` client.

One server per family (started by the CLI as a user would), shut down with SIGTERM at the end, which
must leave no process behind."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from loadtest.server_process import ServerNotHealthy, free_port, wait_healthy
from services.common.image_input import load_image
from services.local_pipeline import image_question
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, ENDLESS_ANSWERS
from tests.conftest import FAMILY_NAMES, noise_image
from tests.models.lora_adapters import make_adapter, merged_model_dir
from tests.process_group import group_gone
from tests.reference import ReferenceModel
from tests.serve_stats import decoder_stats
from tests.telemetry.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.waiting import wait_until

pytestmark = pytest.mark.ray

STARTUP_TIMEOUT_S = 240
FLASHVQA = Path(sys.executable).parent / "flashvqa"


@dataclass
class Server:
    url: str
    model: str
    process: subprocess.Popen[bytes]
    reference: ReferenceModel
    spans: OtlpReceiver  # what the three deployments' processes exported
    log: Path  # what `flashvqa serve` printed, Ray's workers' output included
    lora_root: Path  # --lora-root: holds `receipts`, a random PEFT adapter, and `merged-receipts`, it merged

    @property
    def client(self) -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=60)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_healthy(url, process, STARTUP_TIMEOUT_S)
    except ServerNotHealthy as error:
        pytest.fail(f"flashvqa serve: {error}:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def server(request: pytest.FixtureRequest, tiny_model_dirs: dict[str, Path], tmp_path_factory: Any) -> Iterator[Server]:
    model_dir = tiny_model_dirs[request.param]
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    lora_root = tmp_path_factory.mktemp("lora-root")
    make_adapter(model_dir, lora_root / "receipts", rank=4, seed=61)
    merged_model_dir(model_dir, lora_root / "receipts", lora_root / "merged-receipts")
    with otlp_receiver() as (receiver, traces_endpoint):
        # Exported as a user would set it up: the standard variables, inherited by Ray's workers.
        environment = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "RAY_metrics_report_interval_ms": "1000",
        }
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(FLASHVQA), "serve", "--model", str(model_dir), "--port", str(port), "--lora-root", str(lora_root)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=environment,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, process, log)
            yield Server(url, model_dir.name, process, ReferenceModel(model_dir), receiver, log, lora_root)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                pytest.fail("flashvqa serve did not exit within 90 s of SIGTERM")
            assert code == 0, log.read_text()[-4000:]
            _assert_process_group_gone(process.pid)


def _assert_process_group_gone(pgid: int) -> None:
    """Ray's daemons and replicas were started inside the server's session: none may outlive it."""
    if group_gone(pgid):
        return
    leftovers = subprocess.run(["ps", "-o", "pid,cmd", "-g", str(pgid)], capture_output=True, text=True).stdout
    pytest.fail(f"processes left behind after shutdown:\n{leftovers}")


def _png(width: int, height: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    noise_image(width, height, seed).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(width: int, height: int, seed: int) -> bytes:
    buffer = io.BytesIO()
    noise_image(width, height, seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _media_type(picture: bytes) -> str:
    return "image/jpeg" if picture.startswith(b"\xff\xd8") else "image/png"


def _openai_messages(question: str, pictures: list[bytes]) -> list[dict[str, Any]]:
    """`pictures`: PNG or JPEG files, each sent with its own media type."""
    parts: list[dict[str, Any]] = [
        {
            "type": "image_url",
            "image_url": {"url": f"data:{_media_type(picture)};base64,{base64.b64encode(picture).decode()}"},
        }
        for picture in pictures
    ]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": question}]}]


def _served_tokens(
    server: Server, messages: list[dict[str, Any]], max_tokens: int = 10, model: str | None = None
) -> list[int]:
    response = server.client.chat.completions.create(
        model=model or server.model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=0,  # type: ignore[arg-type]
        extra_body={"return_token_ids": True},
    )
    return list(response.choices[0].token_ids)  # type: ignore[attr-defined]


class TestLoRAAdaptersLoadedAtRunTime:
    """Through the adapter registry and the decoder replicas: loaded over HTTP, answered as the adapter merged
    into the weights, refused when bad, gone when unloaded."""

    def test_load_answer_and_unload(self, server: Server) -> None:
        png = _png(160, 120, seed=62)
        messages = _openai_messages("What is the total?", [png])
        merged = ReferenceModel(server.lora_root / "merged-receipts")
        expected = merged.generate(image_question("What is the total?", 1), [load_image(png)], 8)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            bad = http.post("/v1/load_lora_adapter", json={"lora_name": "escape", "lora_path": "../receipts"})
            assert (bad.status_code, bad.json()["error"]["param"]) == (400, "lora_path")
            loaded = http.post("/v1/load_lora_adapter", json={"lora_name": "receipts", "lora_path": "receipts"})
            assert loaded.status_code == 200, loaded.text
            assert [model.id for model in server.client.models.list().data] == [server.model, "receipts"]
            assert _served_tokens(server, messages, max_tokens=8, model="receipts") == expected
            assert _served_tokens(server, messages, max_tokens=8) != expected
            assert http.post("/v1/unload_lora_adapter", json={"lora_name": "receipts"}).status_code == 200
            gone = http.post("/v1/chat/completions", json={"model": "receipts", "messages": messages, "max_tokens": 2})
            assert (gone.status_code, gone.json()["error"]["code"]) == (404, "model_not_found")


class TestServedAnswersEqualGenerate:
    """Through gateway, encoder and decoder deployments, greedy tokens are `model.generate`'s."""

    def test_image_and_question(self, server: Server) -> None:
        png = _png(200, 120, seed=1)
        expected = server.reference.generate(image_question("What is this?", 1), [load_image(png)], 10)
        assert _served_tokens(server, _openai_messages("What is this?", [png])) == expected

    def test_streaming(self, server: Server) -> None:
        png = _png(150, 150, seed=2)
        expected = server.reference.generate(image_question("Describe it.", 1), [load_image(png)], 10)
        stream = server.client.chat.completions.create(
            model=server.model,
            messages=_openai_messages("Describe it.", [png]),  # type: ignore[arg-type]
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"return_token_ids": True},
        )
        chunks = list(stream)
        tokens = [token for chunk in chunks if chunk.choices for token in getattr(chunk.choices[0], "token_ids", [])]
        assert tokens == expected
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(expected)

    def test_two_turn_conversation(self, server: Server) -> None:
        png = _png(120, 160, seed=3)
        openai_messages = [
            *_openai_messages("What colour?", [png]),
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "And the shape?"},
        ]
        template_messages = [
            *image_question("What colour?", 1),
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "And the shape?"},
        ]
        expected = server.reference.generate(template_messages, [load_image(png)], 10)
        assert _served_tokens(server, openai_messages) == expected

    def test_text_only(self, server: Server) -> None:
        messages = [{"role": "user", "content": "Tell me about receipts."}]
        assert _served_tokens(server, messages) == server.reference.generate(messages, [], 10)

    @pytest.mark.parametrize("count", [2, 4])
    def test_several_512_px_photos_in_one_request(self, server: Server, count: int) -> None:
        """Each image is an encode call of its own, waiting for the encoder beside the others (they once hung)."""
        photos = [_jpeg(512, 512, seed=40 + count + n) for n in range(count)]
        expected = server.reference.generate(
            image_question("Compare them.", count), [load_image(photo) for photo in photos], 4
        )
        assert _served_tokens(server, _openai_messages("Compare them.", photos), max_tokens=4) == expected

    def test_six_concurrent_four_photo_requests_get_their_solo_tokens(self, server: Server) -> None:
        requests = [
            _openai_messages(f"Which is {i}?", [_jpeg(512, 512, seed=60 + 4 * i + n) for n in range(4)])
            for i in range(6)
        ]
        alone = [_served_tokens(server, messages, max_tokens=4) for messages in requests]
        with ThreadPoolExecutor(max_workers=6) as pool:
            together = list(pool.map(lambda messages: _served_tokens(server, messages, max_tokens=4), requests))
        assert together == alone

    def test_eight_concurrent_requests_get_their_solo_tokens(self, server: Server) -> None:
        requests = [_openai_messages(f"Question {i}?", [_png(64 + 16 * i, 96, seed=10 + i)]) for i in range(8)]
        alone = [_served_tokens(server, messages, max_tokens=12) for messages in requests]
        with ThreadPoolExecutor(max_workers=8) as pool:
            together = list(pool.map(lambda messages: _served_tokens(server, messages, max_tokens=12), requests))
        assert together == alone


class TestServing:
    def test_start_up_prints_no_autoscaling_warning(self, server: Server) -> None:
        """Serve warns at start of a window it means to refuse in a later release."""
        assert "must be greater than `metrics_interval_s`" not in server.log.read_text(errors="replace")

    def test_aborting_a_stream_frees_its_sequence(self, server: Server) -> None:
        before = decoder_stats()["num_aborted"]
        stream = server.client.chat.completions.create(
            model=server.model,
            messages=_openai_messages("Go on.", [_png(64, 64, seed=5)]),  # type: ignore[arg-type]
            max_tokens=3000,
            temperature=0,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        # The role chunk comes with the first token; the random model's text may come only at the end (its
        # bytes rarely complete a character, and the detokenizer holds them back), so stop at the first chunk.
        next(iter(stream))
        stream.close()
        stats = decoder_stats(wait_for_aborted=before + 1)
        assert stats["num_aborted"] == before + 1
        assert (stats["num_running"], stats["num_waiting"]) == (0, 0)
        assert len(_served_tokens(server, _openai_messages("Next?", [_png(64, 64, seed=6)]), max_tokens=3)) >= 1

    def test_vqa_multipart(self, server: Server) -> None:
        response = httpx.post(
            f"{server.url}/v1/vqa",
            files={"image": ("receipt.png", _png(100, 140, seed=7), "image/png")},
            data={"question": "Is this a travel expense?", "max_tokens": "5"},
            timeout=60,
        )
        assert response.status_code == 200
        assert response.json()["usage"]["completion_tokens"] >= 1

    def test_bad_image_is_a_400_and_the_server_keeps_serving(self, server: Server) -> None:
        broken_image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            timeout=60,
            json={"messages": [{"role": "user", "content": [broken_image]}]},
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "messages[0].content[0].image_url"
        assert server.client.models.list().data[0].id == server.model

    def test_request_out_of_time_is_a_504_and_the_server_keeps_serving(self, server: Server) -> None:
        """The deadline travels to the encoder and decoder, which drop work that is already late."""
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            timeout=60,
            headers={"x-request-timeout": "0.001"},
            json={"messages": _openai_messages("Late?", [_png(64, 64, seed=9)]), "max_tokens": 3},
        )
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "timeout"
        assert len(_served_tokens(server, _openai_messages("On time?", [_png(64, 64, seed=9)]), max_tokens=3)) >= 1


class TestObservability:
    """Across processes: the gateway, encoder and decoder replicas export their spans of one request into one
    trace, and their metrics reach /metrics through Ray's metrics agent."""

    def test_one_trace_across_the_three_deployments(self, server: Server) -> None:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            timeout=60,
            json={"messages": _openai_messages("Trace me", [_png(64, 64, seed=11)]), "max_tokens": 3, "temperature": 0},
        )
        assert response.status_code == 200, response.text
        trace_id = response.headers["traceparent"].split("-")[1]
        wanted = {"POST /v1/chat/completions", "stream", "encoder.encode", "decoder.decode"}
        wait_until(
            lambda: wanted <= {span.name for span in server.spans.traces_of(trace_id)},
            timeout=30,
            message="the three deployments' spans did not all arrive",
        )
        spans = server.spans.traces_of(trace_id)
        by_id = {span.span_id: span for span in spans}

        def parent(name: str) -> ReceivedSpan:
            [span] = [span for span in spans if span.name == name]
            return by_id[span.parent_span_id]

        assert {span.service for span in spans} == {
            "flashvqa-gateway",
            "flashvqa-vision-encoder",
            "flashvqa-llm-decoder",
        }
        for name in ("encoder.queue", "encoder.encode"):
            assert parent(name).name == "vision_encoder"
        for name in ("decoder.image_transfer", "decoder.queue", "decoder.prefill", "decoder.decode"):
            assert parent(name).name == "llm_decoder"
        for name in ("vision_encoder", "llm_decoder"):
            assert parent(name).service == "flashvqa-gateway"
        [root] = [span for span in spans if span.parent_span_id == ""]
        assert root.name == "POST /v1/chat/completions" and root.attributes["http.response.status_code"] == 200
        # Serve's proxy's id, in one header: the gateway uses it too (and Serve's own access log names it).
        request_line = '{"request_id":"' + response.headers["x-request-id"] + '"'
        wait_until(lambda: request_line in server.log.read_text(), timeout=15, message="no request log line")
        [line] = [line for line in server.log.read_text().splitlines() if request_line in line]
        logged = json.loads(line[line.index("{") :])
        assert (logged["trace_id"], logged["status"], logged["completion_tokens"]) == (trace_id, 200, 3)

    def test_metrics_of_every_deployment_reach_metrics(self, server: Server) -> None:
        assert len(_served_tokens(server, _openai_messages("Count me", [_png(64, 64, seed=12)]), max_tokens=3)) >= 1
        wanted = (
            "flashvqa_requests_total",
            "flashvqa_encode_seconds_count",
            "flashvqa_prefill_seconds_count",
            "flashvqa_decoder_running_sequences",
        )

        def exported() -> bool:
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            return all(name in text for name in wanted)

        wait_until(exported, timeout=60, message="Ray's metrics agent did not export the deployments' metrics")


class TestWebPage:
    """The page against the real app on a local Ray: ask, follow up, stop."""

    def test_ask_follow_up_and_stop(self, server: Server) -> None:
        sync_api = pytest.importorskip("playwright.sync_api")
        if CHROMIUM is None:
            pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
        receipt = Path(__file__).parents[1] / "examples" / "images" / "receipt.png"
        aborted_before = decoder_stats()["num_aborted"]
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.add_init_script(ENDLESS_ANSWERS)
            page.goto(server.url)
            page.click("#settings summary")
            page.fill("#max-tokens", "8")
            page.set_input_files("#image-input", str(receipt))
            page.fill("#question", "Is this a travel expense?")
            page.press("#question", "Enter")
            page.wait_for_function("document.querySelector('.turn.assistant .meta').textContent.includes('total')")
            page.fill("#max-tokens", "3000")
            page.evaluate("window.flashvqaTestIgnoreEos = true")
            page.fill("#question", "And the total?")
            page.press("#question", "Enter")
            page.wait_for_function(
                "document.querySelectorAll('.turn.assistant')[1].querySelector('.text').textContent.length > 0"
            )
            page.click("#stop")
            page.wait_for_selector("#stop", state="hidden")
            meta = page.eval_on_selector_all(".turn.assistant .meta", "nodes => nodes[1].textContent")
            error = page.text_content("#error")
            browser.close()
        assert meta.startswith("stopped"), f"answer ended otherwise: meta={meta!r} error={error!r}"
        stats = decoder_stats(wait_for_aborted=aborted_before + 1)
        assert stats["num_aborted"] == aborted_before + 1
        assert (stats["num_running"], stats["num_waiting"]) == (0, 0)
