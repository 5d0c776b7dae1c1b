"""One trace per request, in the real app (encoder and decoder in process): every stage's span under the
gateway's root span, the client's `traceparent` honoured, and both headers returned."""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.gateway.test_app import image_message
from tests.telemetry.conftest import spans_of_trace

GATEWAY_STAGES = {
    "auth",
    "rate_limit",
    "safety.prompt",
    "image.decode",
    "provenance",
    "cache.lookup",
    "safety.image",
    "stream",
}
ENCODER_SPANS = ["encoder.queue", "encoder.encode"]
DECODER_SPANS = ["decoder.image_transfer", "decoder.queue", "decoder.prefill", "decoder.decode"]
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


def ask(client: httpx.Client, question: str, **headers: str) -> httpx.Response:
    response = client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"messages": [image_message(question)], "max_tokens": 4, "ignore_eos": True, "temperature": 0},
    )
    assert response.status_code == 200, response.text
    return response


def trace_id_of(response: httpx.Response) -> str:
    version, trace_id, _span_id, flags = response.headers["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 1, "not sampled"
    return trace_id


def tree(spans: list[ReadableSpan]) -> tuple[ReadableSpan, dict[str, list[ReadableSpan]]]:
    by_id = {span.context.span_id: span for span in spans if span.context is not None}
    roots = [span for span in spans if span.parent is None or span.parent.span_id not in by_id]
    assert len(roots) == 1, [span.name for span in roots]
    children: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        if span.parent is not None and span.parent.span_id in by_id:
            children.setdefault(by_id[span.parent.span_id].name, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda span: span.start_time or 0)
    return roots[0], children


def descendants(name: str, children: dict[str, list[ReadableSpan]]) -> list[ReadableSpan]:
    """Every span below `name` (FastAPI's own dependency and endpoint spans sit in between), by start time."""
    found = []
    for child in children.get(name, []):
        found += [child, *descendants(child.name, children)]
    return sorted(found, key=lambda span: span.start_time or 0)


class TestOneTracePerRequest:
    def test_every_stage_is_a_span_in_order(self, client: httpx.Client, span_exporter: InMemorySpanExporter) -> None:
        response = ask(client, "Trace me")
        root, children = tree(spans_of_trace(span_exporter, trace_id_of(response)))
        assert root.name == "POST /v1/chat/completions"
        assert root.attributes is not None and root.attributes["http.response.status_code"] == 200
        assert root.attributes["flashvqa.request_id"] == response.headers["x-request-id"]
        below = descendants(root.name, children)
        names = [span.name for span in below]
        assert GATEWAY_STAGES | {"vision_encoder", "llm_decoder"} <= set(names), names
        assert names.index("auth") < names.index("rate_limit") < names.index("image.decode") < names.index("stream")
        assert [span.name for span in children["vision_encoder"]] == ENCODER_SPANS
        assert [span.name for span in children["llm_decoder"]] == DECODER_SPANS
        encode = children["vision_encoder"][1]
        assert encode.attributes is not None and encode.attributes["batch_size"] == 1
        prefill, decode = children["llm_decoder"][2:]
        assert prefill.attributes is not None and int(prefill.attributes["prompt_tokens"]) > 0
        assert decode.attributes is not None and decode.attributes["output_tokens"] == 4
        assert float(decode.attributes["time_per_output_token_ms"]) > 0
        for parent, child in [(root, children["vision_encoder"][0]), (root, prefill)]:
            assert parent.start_time is not None and child.start_time is not None
            assert parent.start_time <= child.start_time

    def test_a_repeated_image_comes_from_the_embedding_cache(
        self, client: httpx.Client, span_exporter: InMemorySpanExporter
    ) -> None:
        ask(client, "First look")
        _, children = tree(spans_of_trace(span_exporter, trace_id_of(ask(client, "Second look"))))
        [encoder] = [
            span for span in descendants("POST /v1/chat/completions", children) if span.name == "vision_encoder"
        ]
        assert encoder.attributes is not None and encoder.attributes["flashvqa.embedding"] == "cached"
        assert "vision_encoder" not in children

    def test_client_traceparent_is_honoured(self, client: httpx.Client, span_exporter: InMemorySpanExporter) -> None:
        response = ask(client, "Continue my trace", traceparent=f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01")
        assert trace_id_of(response) == CLIENT_TRACE_ID
        root, _ = tree(spans_of_trace(span_exporter, CLIENT_TRACE_ID))
        assert root.parent is not None and f"{root.parent.span_id:016x}" == CLIENT_SPAN_ID

    def test_a_client_request_id_is_kept(self, client: httpx.Client) -> None:
        assert ask(client, "mine", **{"x-request-id": "client-chosen-42"}).headers["x-request-id"] == "client-chosen-42"

    def test_every_request_gets_its_own_trace_and_id(self, client: httpx.Client) -> None:
        first, second = ask(client, "one"), ask(client, "two")
        assert trace_id_of(first) != trace_id_of(second)
        assert first.headers["x-request-id"] != second.headers["x-request-id"]
