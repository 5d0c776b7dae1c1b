"""Streamed text equals the whole decode and never carries half a character."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from services.llm_decoder.detokenizer import IncrementalDetokenizer

TEXTS = ["这是差旅费吗?是的,总计128元。", "Emoji 😀 and ñ, then 中文。", "plain ascii words"]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dirs: dict[str, Path]) -> object:
    return AutoTokenizer.from_pretrained(tiny_model_dirs["glm4v"])


@pytest.mark.parametrize("text", TEXTS)
def test_stream_concatenates_to_the_text_without_replacement_characters(tokenizer: object, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
    detokenizer = IncrementalDetokenizer(tokenizer)
    deltas = [detokenizer.add(token_id) for token_id in ids] + [detokenizer.flush()]
    assert "".join(deltas) == text
    assert not any("\ufffd" in delta for delta in deltas)


def test_byte_fragments_are_held_until_the_character_completes(tokenizer: object) -> None:
    # A character split over byte tokens: feed its bytes one token at a time.
    byte_tokens = [tokenizer.convert_tokens_to_ids(piece) for piece in ["æ", "±", "ī"]]  # type: ignore[attr-defined]
    assert tokenizer.decode(byte_tokens) == "汉"  # type: ignore[attr-defined]
    detokenizer = IncrementalDetokenizer(tokenizer)
    assert [detokenizer.add(token_id) for token_id in byte_tokens] == ["", "", "汉"]


def test_special_tokens_are_not_shown(tokenizer: object) -> None:
    detokenizer = IncrementalDetokenizer(tokenizer)
    special = tokenizer.convert_tokens_to_ids("<|begin_of_box|>")  # type: ignore[attr-defined]
    ids = [special, *tokenizer.encode("ok", add_special_tokens=False)]  # type: ignore[attr-defined]
    assert "".join(detokenizer.add(token_id) for token_id in ids) + detokenizer.flush() == "ok"
