"""`response_format` as the OpenAI API takes it, bounded, and turned into the engine's grammar spec."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from services.gateway.api.errors import to_api_error
from services.gateway.api.protocol import MAX_SCHEMA_CHARS, MAX_SCHEMA_DEPTH, ChatCompletionRequest
from services.messages import GrammarError, GrammarSpec
from tests.llm_decoder.engine.json_schemas import receipt


def _request(response_format: Any, **fields: Any) -> ChatCompletionRequest:
    body = {"messages": [{"role": "user", "content": "What does the receipt say?"}], **fields}
    if response_format is not None:
        body["response_format"] = response_format
    return ChatCompletionRequest.model_validate(body)


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    while depth > 1:
        schema, depth = {"type": "array", "items": schema}, depth - 1
    return schema


class TestMapping:
    def test_plain_text_has_no_grammar(self) -> None:
        assert _request(None).to_sampling_params().grammar is None
        assert _request({"type": "text"}).to_sampling_params().grammar is None

    def test_json_mode_asks_for_any_object(self) -> None:
        assert _request({"type": "json_object"}).to_sampling_params().grammar == GrammarSpec.json_object()

    def test_the_receipt_example_maps_to_its_strict_schema_in_order(self) -> None:
        example = receipt()
        grammar = _request({"type": "json_schema", "json_schema": example}).to_sampling_params().grammar
        assert grammar == GrammarSpec.for_schema(example["schema"], strict=True)
        assert grammar is not None and list(json.loads(grammar.json_schema)["properties"]) == [
            "category",
            "amount",
            "currency",
            "is_travel_expense",
            "reason",
        ]

    def test_strict_defaults_to_false_and_a_missing_schema_to_any_object(self) -> None:
        lenient = _request({"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}})
        assert lenient.to_sampling_params().grammar == GrammarSpec.for_schema({"type": "object"}, strict=False)
        shapeless = _request({"type": "json_schema", "json_schema": {"name": "a", "strict": None}})
        assert shapeless.to_sampling_params().grammar == GrammarSpec.json_object()


class TestValidation:
    @pytest.mark.parametrize(
        "response_format",
        [
            {"type": "xml"},
            {"type": "json_schema"},
            {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
            {"type": "json_schema", "json_schema": {"name": "has spaces", "schema": {"type": "object"}}},
            {"type": "json_schema", "json_schema": {"name": "x" * 65, "schema": {"type": "object"}}},
            {"type": "json_schema", "json_schema": {"name": "a", "schema": ["not", "an", "object"]}},
        ],
    )
    def test_malformed_formats_are_refused(self, response_format: Any) -> None:
        with pytest.raises(ValidationError):
            _request(response_format)

    def test_a_schema_longer_than_the_limit_is_refused(self) -> None:
        long_enum = {"enum": ["x" * 100] * (MAX_SCHEMA_CHARS // 100)}
        with pytest.raises(ValidationError, match=f"longer than {MAX_SCHEMA_CHARS}"):
            _request({"type": "json_schema", "json_schema": {"name": "big", "schema": long_enum}})

    def test_a_schema_nested_deeper_than_the_limit_is_refused(self) -> None:
        _request({"type": "json_schema", "json_schema": {"name": "ok", "schema": _nested(MAX_SCHEMA_DEPTH)}})
        with pytest.raises(ValidationError, match=f"deeper than {MAX_SCHEMA_DEPTH}"):
            _request({"type": "json_schema", "json_schema": {"name": "deep", "schema": _nested(MAX_SCHEMA_DEPTH + 1)}})

    def test_only_json_formats_constrain_the_answer(self) -> None:
        assert _request({"type": "json_object"}).constrains_answer
        assert not _request({"type": "text"}).constrains_answer
        assert _request({"type": "text"}).to_sampling_params().grammar is None


def test_a_schema_the_decoder_cannot_compile_is_a_400_naming_response_format() -> None:
    error = to_api_error(GrammarError("the JSON schema cannot be used: Unknown format: credit-card"))
    assert (error.status, error.detail.param, error.detail.code) == (400, "response_format", "invalid_response_format")
    assert "credit-card" in error.detail.message
