"""The batched token mask: constrained rows keep only what their grammar allows, other rows keep every bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer

from services.llm_decoder.engine.structured_output import CompiledGrammar, GrammarCompiler, GrammarMatcher, TokenMasker
from services.messages import GrammarSpec

PADDING = 30  # model vocabularies are padded past the tokenizer's last id; those ids must never be sampled
RECEIPT = {
    "type": "object",
    "properties": {"city": {"enum": ["深圳", "北京"]}, "total": {"type": "integer"}, "note": {"type": "string"}},
    "required": ["city", "total", "note"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dirs: dict[str, Path]) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dirs["glm4v"])


@pytest.fixture(scope="module")
def vocab_size(tokenizer: Any) -> int:
    return len(tokenizer) + PADDING


@pytest.fixture(scope="module")
def stop_ids(tokenizer: Any) -> frozenset[int]:
    return frozenset({tokenizer.eos_token_id})


@pytest.fixture(scope="module")
def compiler(tokenizer: Any, vocab_size: int, stop_ids: frozenset[int]) -> GrammarCompiler:
    return GrammarCompiler(tokenizer, vocab_size, stop_ids)


@pytest.fixture(scope="module")
def receipt(compiler: GrammarCompiler) -> CompiledGrammar:
    return compiler.compile(GrammarSpec.for_schema(RECEIPT)).result()


def _after(grammar: CompiledGrammar, text: str, tokenizer: Any) -> GrammarMatcher:
    matcher = grammar.new_matcher()
    for token_id in tokenizer(text, add_special_tokens=False)["input_ids"]:
        matcher.accept(token_id)
    assert not matcher.llmatcher.is_error(), matcher.llmatcher.get_error()
    return matcher


def _allowed(masker: TokenMasker, matcher: GrammarMatcher, vocab_size: int) -> set[int]:
    masked = masker.apply(torch.zeros(1, vocab_size), [matcher])
    return set(torch.isfinite(masked[0]).nonzero().view(-1).tolist())


class TestBatchedMask:
    @pytest.mark.parametrize("num_threads", [1, 2])  # filled in the engine's thread, or by a thread pool
    def test_rows_without_a_grammar_keep_every_bit(
        self, num_threads: int, receipt: CompiledGrammar, tokenizer: Any, vocab_size: int
    ) -> None:
        logits = torch.randn(4, vocab_size, generator=torch.Generator().manual_seed(0))
        matchers = [None, receipt.new_matcher(), None, _after(receipt, '{"city":"深圳","total":', tokenizer)]
        masked = TokenMasker(vocab_size, num_threads).apply(logits, matchers)
        assert torch.equal(masked[0], logits[0]) and torch.equal(masked[2], logits[2])
        for row in (1, 3):
            kept = torch.isfinite(masked[row])
            assert torch.equal(masked[row][kept], logits[row][kept])
        assert {tokenizer.decode([token]) for token in torch.isfinite(masked[1]).nonzero().view(-1).tolist()} == {"{"}
        numbers = [tokenizer.decode([token]) for token in torch.isfinite(masked[3]).nonzero().view(-1).tolist()]
        assert numbers and all(text.lstrip("-").isdigit() or text == "-" for text in numbers)

    def test_a_batch_without_grammars_is_returned_as_it_is(self, vocab_size: int) -> None:
        logits = torch.randn(3, vocab_size)
        assert TokenMasker(vocab_size).apply(logits, [None, None, None]) is logits

    def test_a_string_takes_no_padding_special_or_control_tokens(
        self, receipt: CompiledGrammar, tokenizer: Any, vocab_size: int
    ) -> None:
        in_string = _after(receipt, '{"city":"北京","total":12,"note":"', tokenizer)
        allowed = _allowed(TokenMasker(vocab_size), in_string, vocab_size)
        assert len(allowed) > len(tokenizer) // 2  # text of any kind: most of the vocabulary
        assert not allowed & set(tokenizer.all_special_ids)
        assert max(allowed) < len(tokenizer)
        # JSON strings escape control characters; the byte-level vocabulary holds all of them raw.
        raw_controls = {token for token in range(len(tokenizer)) if any(c < " " for c in tokenizer.decode([token]))}
        assert raw_controls and not allowed & raw_controls

    def test_a_complete_document_allows_only_the_stop_tokens(
        self, receipt: CompiledGrammar, tokenizer: Any, vocab_size: int, stop_ids: frozenset[int]
    ) -> None:
        done = _after(receipt, '{"city":"北京","total":12,"note":"ok"}', tokenizer)
        assert done.is_finished
        assert _allowed(TokenMasker(vocab_size), done, vocab_size) == stop_ids


class TestMultiByteCharacters:
    """Byte-level BPE splits a Chinese character or an emoji over several tokens; the grammar works on bytes."""

    def test_tokens_that_split_characters_are_accepted(self, receipt: CompiledGrammar, tokenizer: Any) -> None:
        document = '{"city":"深圳","total":88,"note":"出差午餐🍜，含税"}'
        token_ids = tokenizer(document, add_special_tokens=False)["input_ids"]
        assert any("\ufffd" in tokenizer.decode([token]) for token in token_ids), "no token splits a character"
        matcher = _after(receipt, document, tokenizer)
        assert matcher.is_finished and not matcher.llmatcher.is_error()

    def test_an_enum_of_chinese_words_refuses_other_characters(
        self, receipt: CompiledGrammar, tokenizer: Any, vocab_size: int
    ) -> None:
        in_city = _after(receipt, '{"city":"', tokenizer)
        texts = {tokenizer.decode([token]) for token in _allowed(TokenMasker(vocab_size), in_city, vocab_size)}
        assert texts and all("深圳".startswith(text) or "北京".startswith(text) or text == "\ufffd" for text in texts)


class TestAnyLogits:
    """Whatever the logits, sampling under the mask can only write JSON: here random logits leaning to the
    characters that close strings and objects, standing in for a model that wants to finish."""

    def test_json_mode_walks_end_in_objects(self, compiler: GrammarCompiler, tokenizer: Any, vocab_size: int) -> None:
        grammar = compiler.compile(GrammarSpec.json_object()).result()
        masker = TokenMasker(vocab_size)
        closing = torch.zeros(vocab_size)
        for token in range(len(tokenizer)):
            if tokenizer.decode([token]).endswith(('"', "}", "]")):
                closing[token] = 4.0
        generator = torch.Generator().manual_seed(0)
        documents = []
        for _ in range(30):
            matcher, token_ids = grammar.new_matcher(), []
            while not matcher.is_finished:
                assert len(token_ids) < 500, tokenizer.decode(token_ids)
                logits = masker.apply(torch.randn(1, vocab_size, generator=generator) + closing, [matcher])
                token_ids.append(int(torch.multinomial(logits.softmax(-1)[0], 1, generator=generator)))
                matcher.accept(token_ids[-1])
            documents.append(json.loads(tokenizer.decode(token_ids)))
        assert all(isinstance(document, dict) for document in documents)
        assert any(documents), "every walk closed its object at once"
