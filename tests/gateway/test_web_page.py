"""The web page in a real headless Chromium against the real gateway (in process, tiny model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI

from services.gateway.options import AuthOptions, GatewayOptions
from services.in_process_app import build_in_process_app
from services.llm_decoder.engine import EngineConfig
from tests.browser import CHROMIUM, CHROMIUM_FLAGS, ENDLESS_ANSWERS
from tests.conftest import noise_image
from tests.http_server import serve_in_thread
from tests.llm_decoder.engine.json_schemas import receipt
from tests.models.lora_adapters import make_adapter
from tests.waiting import wait_until

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
    pytest.mark.browser,
]

RECEIPT = Path(__file__).parents[2] / "examples" / "images" / "receipt.png"
# Screenshots for a person to look at (not committed; CI keeps them with its logs).
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
MAX_IMAGE_BYTES = 300_000
OPTIONS = GatewayOptions(model_name="tiny", max_image_bytes=MAX_IMAGE_BYTES, auth=AuthOptions(allow_anonymous=True))
ADAPTER = "receipts-and-invoices-zh-en-v2"  # as long as real adapters' names: the phone layout must hold it


@pytest.fixture(scope="module")
def app(tiny_model_dirs: dict[str, Path]) -> FastAPI:
    return build_in_process_app(tiny_model_dirs["glm4v"], EngineConfig(max_num_seqs=4, max_model_len=4096), OPTIONS)


@pytest.fixture(scope="module")
def base_url(app: FastAPI) -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def adapter_url(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway serving one LoRA adapter beside the base."""
    base = tiny_model_dirs["glm4v"]
    adapter = make_adapter(base, tmp_path_factory.mktemp("web-page-adapter") / ADAPTER, rank=4, seed=21)
    config = EngineConfig(max_num_seqs=4, max_model_len=4096, max_loras=1, max_lora_rank=4)
    with serve_in_thread(build_in_process_app(base, config, OPTIONS, lora_adapters={ADAPTER: adapter})) as url:
        yield url


@contextmanager
def _opened(browser: Any, url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(url)
    yield page
    context.close()


@pytest.fixture
def page(browser: Any, base_url: str) -> Iterator[Any]:
    with _opened(browser, base_url) as page:
        yield page


@pytest.fixture
def adapter_page(browser: Any, adapter_url: str) -> Iterator[Any]:
    with _opened(browser, adapter_url) as page:
        yield page


def _chat_requests(page: Any) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda request: (
            bodies.append(json.loads(request.post_data)) if request.url.endswith("/v1/chat/completions") else None
        ),
    )
    return bodies


def _set_max_tokens(page: Any, value: str) -> None:
    if not page.evaluate("document.getElementById('settings').open"):
        page.click("#settings summary")
    page.fill("#max-tokens", value)


def _ask_an_endless_question(page: Any) -> None:
    """A question about the receipt whose answer runs until it is stopped; returns once its first text shows."""
    page.add_init_script(ENDLESS_ANSWERS)
    page.reload()
    page.evaluate("window.flashvqaTestIgnoreEos = true")
    _set_max_tokens(page, "2000")
    page.set_input_files("#image-input", str(RECEIPT))
    page.fill("#question", "Describe everything.")
    page.press("#question", "Enter")
    page.wait_for_function("document.querySelector('.turn.assistant .text').textContent !== ''")


def _wait_for_answers(page: Any, count: int) -> None:
    page.wait_for_function(
        "n => [...document.querySelectorAll('.turn.assistant .meta')].filter(m => m.textContent.includes('total'))"
        ".length === n",
        arg=count,
    )


class TestAsking:
    def test_picture_question_and_follow_up_stream_answers_with_timings(self, page: Any, base_url: str) -> None:
        requests = _chat_requests(page)
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        _set_max_tokens(page, "12")
        page.set_input_files("#image-input", str(RECEIPT))
        page.wait_for_selector("#preview:not([hidden])")
        assert "168×168" in page.text_content("#image-info")

        page.fill("#question", "Is this a travel expense?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        page.click("text=总金额是多少?")
        _wait_for_answers(page, 2)

        meta = page.text_content(".turn.assistant .meta")
        assert "total" in meta
        first, follow_up = requests
        assert first["stream"] is True
        assert first["temperature"] == 0, "greedy unless asked: the demo model and its adapters answer best at 0"
        assert first["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/")
        assert [m["role"] for m in follow_up["messages"]] == ["user", "assistant", "user"]
        assert follow_up["messages"][2]["content"] == "总金额是多少?"
        assert all(url.startswith(base_url) for url in urls), "the page must load nothing from elsewhere"

    @pytest.mark.parametrize(("entered", "sent"), [("0.7", 0.7), ("", 0), ("5", 0)])
    def test_the_chosen_temperature_is_sent(self, page: Any, entered: str, sent: float) -> None:
        _set_max_tokens(page, "2")
        page.fill("#temperature", entered)
        with page.expect_request("**/v1/chat/completions") as request:
            page.fill("#question", "hi")
            page.press("#question", "Enter")
        assert json.loads(request.value.post_data)["temperature"] == sent

    def test_new_image_starts_a_new_conversation(self, page: Any) -> None:
        _set_max_tokens(page, "4")
        page.set_input_files("#image-input", str(RECEIPT))
        page.fill("#question", "What is this?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        page.click("#new-image")
        assert page.locator(".turn").count() == 0
        assert page.is_hidden("#preview")

    def test_stop_aborts_the_stream_and_frees_the_decoder(self, page: Any, app: FastAPI) -> None:
        engine = app.state.engine
        aborted = engine.stats().num_aborted
        _ask_an_endless_question(page)
        wait_until(lambda: engine.stats().num_running == 1, timeout=20)
        page.click("#stop")
        page.wait_for_function("document.querySelector('.turn.assistant .meta').textContent.startsWith('stopped')")
        wait_until(lambda: engine.stats().num_aborted == aborted + 1, timeout=20)
        assert engine.stats().num_running == 0


_DELIVER_PICTURE = """
async ([how, width, height]) => {
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const g = canvas.getContext("2d");
  g.fillStyle = "#c33"; g.fillRect(0, 0, width, height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const transfer = new DataTransfer();
  transfer.items.add(new File([blob], "photo.png", { type: "image/png" }));
  if (how === "drop") {
    const drop = new DragEvent("drop", { dataTransfer: transfer, bubbles: true });
    document.getElementById("drop-zone").dispatchEvent(drop);
  } else {
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
  }
}
"""


class TestPictureInput:
    @pytest.mark.parametrize("how", ["drop", "paste"])
    def test_dropped_or_pasted_pictures_are_previewed(self, page: Any, how: str) -> None:
        page.evaluate(_DELIVER_PICTURE, [how, 300, 200])
        page.wait_for_selector("#preview:not([hidden])")
        assert page.text_content("#image-info").startswith("300×200 px")

    def test_huge_photos_are_downscaled_before_upload(self, page: Any) -> None:
        requests = _chat_requests(page)
        page.evaluate(_DELIVER_PICTURE, ["drop", 3000, 2000])
        page.wait_for_selector("#preview:not([hidden])")
        assert "3000×2000 px" in page.text_content("#image-info")
        assert "sent as 1024×683" in page.text_content("#image-info")
        _set_max_tokens(page, "2")
        page.fill("#question", "What colour?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        assert requests[0]["messages"][0]["content"][0]["image_url"]["url"].startswith("data:image/jpeg")

    def test_a_new_picture_while_an_answer_streams_stops_it_and_starts_afresh(self, page: Any) -> None:
        requests = _chat_requests(page)
        _ask_an_endless_question(page)
        page.evaluate(_DELIVER_PICTURE, ["drop", 300, 200])
        page.wait_for_selector("#stop", state="hidden")
        assert page.locator(".turn").count() == 0

        page.evaluate("window.flashvqaTestIgnoreEos = false")
        _set_max_tokens(page, "2")
        page.fill("#question", "What colour?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        receipt_question, red_question = requests
        assert len(red_question["messages"]) == 1, "the stopped answer is not the new picture's history"
        picture = red_question["messages"][0]["content"][0]["image_url"]["url"]
        assert picture != receipt_question["messages"][0]["content"][0]["image_url"]["url"]


class TestErrors:
    def test_an_oversized_picture(self, page: Any, tmp_path: Path) -> None:
        big = tmp_path / "big.png"
        noise_image(600, 600).save(big)  # ~1 MB of incompressible PNG, under the page's downscaling size
        page.set_input_files("#image-input", str(big))
        page.fill("#question", "What is this?")
        page.press("#question", "Enter")
        page.wait_for_selector("#error:not([hidden])")
        assert f"larger than {MAX_IMAGE_BYTES} bytes" in page.text_content("#error")

    def test_a_file_that_is_not_a_picture(self, page: Any, tmp_path: Path) -> None:
        fake = tmp_path / "holiday.png"
        fake.write_text("definitely not a picture")
        page.set_input_files("#image-input", str(fake))
        page.fill("#question", "What is this?")
        page.press("#question", "Enter")
        page.wait_for_selector("#error:not([hidden])")
        assert "not a supported image" in page.text_content("#error")

    @pytest.mark.parametrize(("status", "expected"), [(429, "retry in 7 s"), (503, "busy"), (401, "API key")])
    def test_refusals_are_explained(self, page: Any, status: int, expected: str) -> None:
        body = json.dumps({"error": {"message": "refused", "type": "x", "param": None, "code": None}})
        page.route(
            "**/v1/chat/completions",
            lambda route: route.fulfill(
                status=status, headers={"Retry-After": "7"}, content_type="application/json", body=body
            ),
        )
        page.fill("#question", "hi")
        page.press("#question", "Enter")
        page.wait_for_selector("#error:not([hidden])")
        assert expected in page.text_content("#error")


# Greedy answers: what a random model says when sampled is not the page's to judge. Set in the page's own fetch,
# as tests/browser.py explains.
_GREEDY_ANSWERS = """
const originalFetch = window.fetch;
window.fetch = (url, options) => {
  if (String(url).endsWith("/v1/chat/completions")) {
    options = { ...options, body: JSON.stringify({ ...JSON.parse(options.body), temperature: 0 }) };
  }
  return originalFetch(url, options);
};
"""


def _answer_stream(deltas: list[str]) -> str:
    chunks = [{"choices": [{"index": 0, "delta": {"content": delta}}]} for delta in deltas]
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


class TestStructuredAnswers:
    """The "Answer as" picker sends its `response_format` (and no thinking); an answer asked for as JSON is shown
    pretty-printed once it is complete, anything else as it came."""

    def test_a_receipt_is_asked_for_with_its_schema_and_shown_pretty_printed(self, page: Any) -> None:
        page.add_init_script(_GREEDY_ANSWERS)
        page.reload()
        requests = _chat_requests(page)
        _set_max_tokens(page, "400")
        page.set_input_files("#image-input", str(RECEIPT))
        page.select_option("#answer-format", "receipt")
        assert page.is_disabled("#thinking"), "a constrained answer cannot start with thoughts"
        page.fill("#question", "Is this a travel expense?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)

        assert requests[0]["response_format"] == {"type": "json_schema", "json_schema": receipt()}
        assert requests[0]["chat_template_kwargs"] == {"enable_thinking": False}
        shown = page.text_content(".turn.assistant .text")
        assert shown.startswith('{\n  "category": "'), shown
        jsonschema.validate(json.loads(shown), receipt()["schema"])
        assert "incomplete" not in page.text_content(".turn.assistant .meta")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-receipt.png"), full_page=True)
        page.select_option("#answer-format", "text")
        assert page.is_enabled("#thinking")

    @pytest.mark.parametrize(
        ("choice", "deltas", "shown", "incomplete"),
        [
            ("json_object", ['{"total":', ' [12.5, "CNY"]}'], '{\n  "total": [\n    12.5,\n    "CNY"\n  ]\n}', False),
            ("json_object", ['{"total": 12'], '{"total": 12', True),
            ("text", ['{"total": 12.5}'], '{"total": 12.5}', False),
        ],
        ids=["complete_json", "cut_off_json", "plain_text"],
    )
    def test_json_is_pretty_printed_only_when_asked_for_and_complete(
        self, page: Any, choice: str, deltas: list[str], shown: str, incomplete: bool
    ) -> None:
        requests = _chat_requests(page)
        page.route(
            "**/v1/chat/completions",
            lambda route: route.fulfill(status=200, content_type="text/event-stream", body=_answer_stream(deltas)),
        )
        page.select_option("#answer-format", choice)
        page.fill("#question", "What is the total?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        assert page.text_content(".turn.assistant .text") == shown
        assert ("incomplete JSON" in page.text_content(".turn.assistant .meta")) == incomplete
        expected_format = None if choice == "text" else {"type": choice}
        assert requests[0].get("response_format") == expected_format


class TestModelPicker:
    """With LoRA adapters served, the picker lists /v1/models (the base first) and every request of a conversation
    names the chosen model; another model starts a new conversation on the same picture. With the base alone the
    picker is hidden; without a list the requests name no model and the base answers."""

    def test_lists_the_base_then_the_adapter_and_asks_the_one_chosen_by_keyboard(self, adapter_page: Any) -> None:
        page = adapter_page
        requests = _chat_requests(page)
        page.wait_for_selector("#model-picker:not([hidden])")
        options = page.eval_on_selector_all("#model option", "options => options.map(o => [o.value, o.text])")
        assert options == [["tiny", "tiny (base model)"], [ADAPTER, f"{ADAPTER} (adapter of tiny)"]]
        page.get_by_label("Model", exact=True).focus()
        page.keyboard.press("ArrowDown")
        assert page.input_value("#model") == ADAPTER

        _set_max_tokens(page, "4")
        page.set_input_files("#image-input", str(RECEIPT))
        page.fill("#question", "What is the total?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        page.fill("#question", "And the date?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 2)
        assert [request["model"] for request in requests] == [ADAPTER, ADAPTER]
        shown = page.locator(".turn.assistant .meta").all_text_contents()
        assert all(meta.startswith(f"{ADAPTER} · ") for meta in shown), f"the gateway names who answered: {shown}"

    def test_the_adapters_name_fits_a_phone(self, adapter_page: Any) -> None:
        page = adapter_page
        page.set_viewport_size({"width": 375, "height": 800})
        page.select_option("#model", ADAPTER)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-page-models-phone.png"), full_page=True)

    def test_another_model_mid_answer_stops_it_and_starts_a_new_conversation(self, adapter_page: Any) -> None:
        page = adapter_page
        requests = _chat_requests(page)
        _ask_an_endless_question(page)
        page.select_option("#model", ADAPTER)
        page.wait_for_selector("#stop", state="hidden")
        assert page.locator(".turn").count() == 0
        assert page.is_visible("#preview"), "the picture stays"

        page.evaluate("window.flashvqaTestIgnoreEos = false")
        _set_max_tokens(page, "2")
        page.fill("#question", "What is the total?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        adapter_question = requests[1]
        assert adapter_question["model"] == ADAPTER
        assert len(adapter_question["messages"]) == 1, "the base's answer is not the adapter's history"
        assert adapter_question["messages"][0]["content"][0]["type"] == "image_url", "the picture stays"

    def test_with_the_base_alone_the_picker_is_hidden(self, page: Any) -> None:
        requests = _chat_requests(page)
        page.wait_for_function("document.querySelectorAll('#model option').length === 1")
        assert page.is_hidden("#model-picker")
        _set_max_tokens(page, "2")
        page.fill("#question", "hi")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        assert requests[0]["model"] == "tiny"

    def test_what_the_demo_model_can_answer_is_said_only_when_it_is_served(self, page: Any) -> None:
        page.wait_for_function("document.querySelectorAll('#model option').length === 1")
        assert page.is_hidden("#demo-note")  # another model ("tiny"): the examples alone
        demo = {"object": "list", "data": [{"id": "glm4v-demo", "object": "model", "owned_by": "flashvqa"}]}
        page.route("**/v1/models", lambda route: route.fulfill(json=demo))
        page.reload()
        page.wait_for_selector("#demo-note", state="visible")
        assert "I can't tell" in page.inner_text("#demo-note")

    def test_an_unreachable_model_list_leaves_the_model_out_and_the_base_answers(self, adapter_page: Any) -> None:
        page = adapter_page
        requests = _chat_requests(page)
        page.route("**/v1/models", lambda route: route.abort())
        with page.expect_event("requestfailed", lambda request: request.url.endswith("/v1/models")):
            page.reload()
        _set_max_tokens(page, "2")
        page.fill("#question", "hi")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        assert "model" not in requests[0]
        assert page.is_hidden("#model-picker")
        assert page.is_hidden("#error")

    def test_the_model_list_is_asked_again_with_a_new_api_key(self, adapter_page: Any) -> None:
        page = adapter_page
        refusal = json.dumps({"error": {"message": "no key", "type": "x", "param": None, "code": None}})
        page.route(
            "**/v1/models",
            lambda route: (
                route.continue_()
                if route.request.headers.get("authorization") == "Bearer sk-test-123"
                else route.fulfill(status=401, content_type="application/json", body=refusal)
            ),
        )
        with page.expect_response("**/v1/models"):
            page.reload()
        assert page.is_hidden("#model-picker")
        page.click("#settings summary")
        page.fill("#api-key", "sk-test-123")
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector("#model-picker:not([hidden])")


class TestPage:
    @pytest.mark.parametrize(("name", "width", "mobile"), [("phone", 375, True), ("desktop", 1280, False)])
    def test_layout_fits_and_is_captured(
        self, browser: Any, base_url: str, name: str, width: int, mobile: bool
    ) -> None:
        context = browser.new_context(viewport={"width": width, "height": 800}, is_mobile=mobile)
        page = context.new_page()
        page.goto(base_url)
        page.set_input_files("#image-input", str(RECEIPT))
        _set_max_tokens(page, "24")
        page.fill("#question", "Is this a travel expense?")
        page.press("#question", "Enter")
        _wait_for_answers(page, 1)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"web-page-{name}.png"), full_page=True)
        context.close()

    def test_every_control_has_a_label(self, page: Any) -> None:
        unlabelled = page.evaluate(
            "[...document.querySelectorAll('input, textarea, select')]"
            ".filter(el => el.labels.length === 0 && !el.getAttribute('aria-label')).map(el => el.id)"
        )
        assert unlabelled == []

    def test_api_key_is_kept_and_sent(self, page: Any) -> None:
        page.click("#settings summary")
        page.fill("#api-key", "sk-test-123")
        page.dispatch_event("#api-key", "change")
        page.reload()
        assert page.input_value("#api-key") == "sk-test-123"
        with page.expect_request("**/v1/chat/completions") as request:
            _set_max_tokens(page, "2")
            page.fill("#question", "hi")
            page.press("#question", "Enter")
        assert request.value.headers["authorization"] == "Bearer sk-test-123"
