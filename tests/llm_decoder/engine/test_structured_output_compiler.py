"""Grammars are compiled once per schema, refused with a reason when they cannot be, and strict mode closes
the objects a schema leaves open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from services.llm_decoder.engine.structured_output import CompiledGrammar, GrammarCompiler
from services.llm_decoder.engine.structured_output.strict_schema import closed_objects
from services.messages import GrammarError, GrammarSpec
from tests.llm_decoder.engine.json_schemas import NESTED

OPEN_OBJECT = {"type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dirs: dict[str, Path]) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dirs["glm4v"])


@pytest.fixture
def compiler(tokenizer: Any) -> GrammarCompiler:
    return GrammarCompiler(tokenizer, vocab_size=len(tokenizer), stop_token_ids=frozenset({tokenizer.eos_token_id}))


def _accepts(grammar: CompiledGrammar, text: str, tokenizer: Any) -> bool:
    """Whether the grammar admits `text` as a complete document."""
    matcher = grammar.new_matcher()
    for token_id in tokenizer(text, add_special_tokens=False)["input_ids"]:
        if not matcher.llmatcher.consume_token(token_id):
            return False
    return bool(matcher.llmatcher.is_accepting())


class TestCache:
    """A schema is compiled once, whichever request asks first; the key is the spec's hash."""

    def test_the_same_spec_shares_one_compilation(self, compiler: GrammarCompiler) -> None:
        first = compiler.compile(GrammarSpec.for_schema(NESTED, strict=True))
        again = compiler.compile(GrammarSpec.for_schema(dict(NESTED), strict=True))
        assert again is first
        assert again.result() is first.result()

    def test_strictness_and_property_order_make_different_grammars(self, compiler: GrammarCompiler) -> None:
        reordered = {**OPEN_OBJECT, "properties": {"b": {"type": "null"}, "a": {"type": "null"}}}
        specs = [
            GrammarSpec.for_schema(OPEN_OBJECT),
            GrammarSpec.for_schema(OPEN_OBJECT, strict=True),
            GrammarSpec.for_schema(reordered),
        ]
        assert len({spec.cache_key for spec in specs}) == 3
        assert len({id(compiler.compile(spec)) for spec in specs}) == 3

    def test_a_refusal_is_cached_too(self, compiler: GrammarCompiler) -> None:
        spec = GrammarSpec.for_schema({"type": "string", "format": "credit-card"})
        refused = compiler.compile(spec)
        with pytest.raises(GrammarError, match="credit-card"):
            refused.result()
        assert compiler.compile(spec) is refused

    def test_the_least_recently_used_schema_leaves_first(self, tokenizer: Any) -> None:
        compiler = GrammarCompiler(tokenizer, len(tokenizer), frozenset(), max_cached=2)
        specs = [GrammarSpec.for_schema({"const": index}) for index in range(3)]
        futures = [compiler.compile(spec) for spec in specs[:2]]
        assert compiler.compile(specs[0]) is futures[0]  # now the most recently used
        compiler.compile(specs[2])
        assert compiler.compile(specs[0]) is futures[0]
        assert compiler.compile(specs[1]) is not futures[1]


class TestStrictMode:
    def test_strict_refuses_keys_the_schema_does_not_list(self, compiler: GrammarCompiler, tokenizer: Any) -> None:
        lenient = compiler.compile(GrammarSpec.for_schema(OPEN_OBJECT)).result()
        strict = compiler.compile(GrammarSpec.for_schema(OPEN_OBJECT, strict=True)).result()
        assert _accepts(lenient, '{"total":3,"tip":1}', tokenizer)
        assert not _accepts(strict, '{"total":3,"tip":1}', tokenizer)
        assert _accepts(strict, '{"total":3}', tokenizer)

    def test_json_mode_takes_any_object_and_nothing_else(self, compiler: GrammarCompiler, tokenizer: Any) -> None:
        grammar = compiler.compile(GrammarSpec.json_object()).result()
        assert _accepts(grammar, '{"城市":["深圳",1.5,{"ok":null}]}', tokenizer)
        assert not _accepts(grammar, "[1,2]", tokenizer)
        assert not _accepts(grammar, '{"a": 1}', tokenizer)  # compact: no whitespace between tokens


class TestClosedObjects:
    """Strict mode's rewrite closes every object schema that lists properties, wherever it is nested, and
    nothing else."""

    def test_nested_objects_arrays_and_definitions_are_closed(self) -> None:
        schema = {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"properties": {"n": {"type": "integer"}}}}},
            "$defs": {"point": {"properties": {"x": {"type": "number"}}}},
            "anyOf": [{"properties": {"a": {}}}, {"type": "null"}],
        }
        closed = closed_objects(schema)
        assert closed["additionalProperties"] is False
        assert closed["properties"]["items"]["items"]["additionalProperties"] is False
        assert closed["$defs"]["point"]["additionalProperties"] is False
        assert closed["anyOf"][0]["additionalProperties"] is False
        assert "additionalProperties" not in closed["anyOf"][1]
        assert "additionalProperties" not in schema  # a copy: the request's schema is left as it was

    def test_what_the_schema_says_stands(self) -> None:
        schema = {"properties": {"a": {}}, "additionalProperties": {"type": "string"}}
        assert closed_objects(schema) == schema

    def test_a_property_named_like_a_keyword_is_a_name(self) -> None:
        schema = {"properties": {"properties": {"type": "string"}, "items": {"type": "integer"}}}
        closed = closed_objects(schema)
        assert closed["properties"] == schema["properties"]

    def test_all_of_branches_stay_open(self) -> None:
        """Each branch of allOf describes only part of the object: closed, each would refuse the others' keys."""
        schema = {"allOf": [{"properties": {"a": {}}}, {"properties": {"b": {}}}]}
        assert closed_objects(schema) == schema
