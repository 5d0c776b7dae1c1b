"""Decoding under a JSON Schema inside the continuous batch, with random-weight models: the grammar, not the
model, makes every output valid, and the requests beside a constrained one are not disturbed."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch

from services.llm_decoder.async_engine import AsyncLLMEngine
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.local_pipeline import image_question
from services.messages import DecodeRequest, GrammarError, GrammarSpec, RequestOutput, SamplingParams
from services.models.language_half import LanguageHalf
from tests.conftest import FAMILY_NAMES
from tests.llm_decoder.engine.engine_runs import run_to_completion
from tests.llm_decoder.engine.json_schemas import SCHEMAS

CONFIG = EngineConfig(max_num_seqs=8, max_model_len=1024)
BUDGET = 400  # tokens; the schemas' longest valid documents are far shorter


@pytest.fixture(scope="module")
def languages(tiny_model_dirs: dict[str, Path]) -> dict[str, LanguageHalf]:
    return {name: LanguageHalf(path, torch.device("cpu")) for name, path in tiny_model_dirs.items()}


def _params(schema_name: str, seed: int | None, **overrides: Any) -> SamplingParams:
    """Greedy without a seed; sampled at temperature 1 with one."""
    schema, strict = SCHEMAS[schema_name]
    return SamplingParams(
        max_tokens=BUDGET,
        temperature=0.0 if seed is None else 1.0,
        seed=seed,
        grammar=GrammarSpec.for_schema(schema, strict),
        **overrides,
    )


def _messages(index: int) -> list[dict]:
    return image_question(f"Question {index}: what does the receipt say?", 0)


def _alone(language: LanguageHalf, messages: list[dict], params: SamplingParams) -> RequestOutput:
    engine = LLMEngine(language, EngineConfig(max_num_seqs=1, max_model_len=1024))
    engine.add_request("alone", messages, [], params)
    return RequestOutput.joined(run_to_completion(engine, max_steps=5000)["alone"])


def _assert_valid(output: RequestOutput, schema_name: str) -> None:
    assert output.finish_reason == "stop", f"unfinished after {output.num_output_tokens} tokens: {output.text!r}"
    jsonschema.validate(json.loads(output.text), SCHEMAS[schema_name][0], format_checker=jsonschema.FormatChecker())


class TestEveryOutputValidates:
    """Whatever the random model would say, each answer is one JSON document valid against its schema, and it
    ends as soon as the document is complete."""

    @pytest.mark.parametrize("schema_name", sorted(SCHEMAS))
    def test_greedy_and_sampled_answers(self, schema_name: str, languages: dict[str, LanguageHalf]) -> None:
        engine = LLMEngine(languages["glm4v"], CONFIG)
        seeds = [None, 1, 2, 3]
        for index, seed in enumerate(seeds):
            engine.add_request(f"r{index}", _messages(index), [], _params(schema_name, seed))
        outputs = run_to_completion(engine, max_steps=5000)
        for index in range(len(seeds)):
            _assert_valid(RequestOutput.joined(outputs[f"r{index}"]), schema_name)

    @pytest.mark.parametrize("family", FAMILY_NAMES)
    def test_each_model_family(self, family: str, languages: dict[str, LanguageHalf]) -> None:
        _assert_valid(_alone(languages[family], _messages(0), _params("receipt", seed=7)), "receipt")

    def test_ignoring_eos_still_ends_with_the_document(self, languages: dict[str, LanguageHalf]) -> None:
        output = _alone(languages["glm4v"], _messages(0), _params("receipt", seed=None, ignore_eos=True))
        _assert_valid(output, "receipt")
        assert not set(output.token_ids) & languages["glm4v"].stop_token_ids

    def test_json_mode_answers_an_object_or_runs_out_of_tokens(self, languages: dict[str, LanguageHalf]) -> None:
        """A random model rarely closes a free-form object; the mask must still keep it on a JSON path."""
        params = SamplingParams(max_tokens=40, temperature=0.0, grammar=GrammarSpec.json_object())
        output = _alone(languages["glm4v"], _messages(0), params)
        assert output.text.startswith("{")
        if output.finish_reason == "stop":
            assert isinstance(json.loads(output.text), dict)


class TestStreaming:
    """The streamed pieces join into the same valid document the request gets without streaming."""

    @pytest.mark.parametrize("schema_name", sorted(SCHEMAS))
    async def test_streamed_pieces_join_into_the_document(
        self, schema_name: str, languages: dict[str, LanguageHalf]
    ) -> None:
        language = languages["glm4v"]
        params = _params(schema_name, seed=5)
        engine = AsyncLLMEngine(LLMEngine(language, CONFIG))
        pieces = [output async for output in engine.generate(DecodeRequest("s", _messages(0), params), [])]
        streamed = RequestOutput.joined(pieces)
        _assert_valid(streamed, schema_name)
        assert streamed.text == _alone(language, _messages(0), params).text


class TestMixedBatch:
    """Constrained and unconstrained requests share the batch; the unconstrained ones get exactly the tokens
    they would get alone, and so do the constrained ones."""

    def test_every_request_gets_its_solo_tokens(self, languages: dict[str, LanguageHalf]) -> None:
        language = languages["glm4v"]
        plain = [
            SamplingParams(max_tokens=30, temperature=0.0, ignore_eos=True),
            SamplingParams(max_tokens=30, temperature=0.8, top_p=0.9, seed=11, ignore_eos=True),
        ]
        params = [
            plain[0],
            _params("receipt", None),
            plain[1],
            _params("nested", 4),
            plain[0],
            _params("patterns", None),
            plain[1],
            _params("alternatives", 6),
        ]
        expected = [_alone(language, _messages(i), p).token_ids for i, p in enumerate(params)]

        engine = LLMEngine(language, CONFIG)
        outputs: dict[str, list[RequestOutput]] = {}
        for index in range(4):
            engine.add_request(f"r{index}", _messages(index), [], params[index])
        for step in range(5000):
            if step == 3:  # the rest join while the first four decode
                for index in range(4, 8):
                    engine.add_request(f"r{index}", _messages(index), [], params[index])
            for output in engine.step():
                outputs.setdefault(output.request_id, []).append(output)
            if step > 3 and not engine.has_work:
                break
        assert [RequestOutput.joined(outputs[f"r{i}"]).token_ids for i in range(8)] == expected


class TestRefusals:
    @pytest.mark.parametrize(
        ("schema", "reason"),
        [
            ({"type": "string", "pattern": "(?<=a)b"}, "look-around"),
            ({"type": "decimal"}, "decimal"),
            ({"type": "string", "format": "credit-card"}, "credit-card"),
            ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength"),
            ({"$ref": "#/$defs/missing"}, "missing"),
        ],
    )
    def test_a_schema_that_cannot_compile_is_refused_with_the_reason(
        self, schema: dict, reason: str, languages: dict[str, LanguageHalf]
    ) -> None:
        engine = LLMEngine(languages["glm4v"], CONFIG)
        params = SamplingParams(grammar=GrammarSpec.for_schema(schema))
        with pytest.raises(GrammarError, match=reason) as refusal:
            engine.add_request("bad", _messages(0), [], params)
        assert refusal.value.param == "response_format"
        assert not engine.has_work

    async def test_the_async_engine_refuses_before_streaming(self, languages: dict[str, LanguageHalf]) -> None:
        engine = AsyncLLMEngine(LLMEngine(languages["glm4v"], CONFIG))
        params = SamplingParams(grammar=GrammarSpec.for_schema({"type": "decimal"}))
        with pytest.raises(GrammarError):
            await anext(engine.generate(DecodeRequest("bad", _messages(0), params), []))
        assert engine.is_healthy
        assert engine.stats().num_waiting == 0


class TestCompilationOffTheDecodeLoop:
    """A schema that compiles slowly holds up only its own request: the others keep decoding."""

    @pytest.fixture
    def blocked_compiles(
        self, languages: dict[str, LanguageHalf], monkeypatch: pytest.MonkeyPatch
    ) -> tuple[LLMEngine, threading.Event, list[GrammarSpec]]:
        engine = LLMEngine(languages["glm4v"], CONFIG)
        release, compiled = threading.Event(), []
        build = engine.grammars._build

        def slow_build(spec: GrammarSpec) -> Any:
            assert release.wait(timeout=30)
            compiled.append(spec)
            return build(spec)

        monkeypatch.setattr(engine.grammars, "_build", slow_build)
        return engine, release, compiled

    async def test_other_requests_finish_while_a_grammar_compiles(
        self, blocked_compiles: tuple[LLMEngine, threading.Event, list[GrammarSpec]]
    ) -> None:
        llm_engine, release, _ = blocked_compiles
        engine = AsyncLLMEngine(llm_engine)
        constrained = asyncio.create_task(_collect(engine, "json", _params("receipt", seed=3)))
        plain = SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)
        answer = await _collect(engine, "plain", plain)
        assert answer.num_output_tokens == 20
        assert not constrained.done()
        release.set()
        _assert_valid(await constrained, "receipt")

    async def test_a_cancelled_request_leaves_the_shared_compilation_alone(
        self, blocked_compiles: tuple[LLMEngine, threading.Event, list[GrammarSpec]]
    ) -> None:
        llm_engine, release, compiled = blocked_compiles
        engine = AsyncLLMEngine(llm_engine)
        params = _params("nested", seed=1)
        first = asyncio.create_task(_collect(engine, "first", params))
        second = asyncio.create_task(_collect(engine, "second", params))
        await asyncio.sleep(0.05)
        first.cancel()
        release.set()
        _assert_valid(await second, "nested")
        assert first.cancelled()
        assert len(compiled) == 1


async def _collect(engine: AsyncLLMEngine, request_id: str, params: SamplingParams) -> RequestOutput:
    return RequestOutput.joined([o async for o in engine.generate(DecodeRequest(request_id, _messages(0), params), [])])
