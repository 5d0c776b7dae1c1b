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


def test_bytes_that_can_never_complete_a_character_are_not_held_to_the_end(tokenizer: object) -> None:
    """A sampled run of stray continuation bytes (a random model emits them) streams as replacement
    characters within a few tokens, and a real character after them still comes out whole."""
    stray = tokenizer.convert_tokens_to_ids("±")  # type: ignore[attr-defined]  # 0xB1, a continuation byte
    character = [tokenizer.convert_tokens_to_ids(piece) for piece in ["æ", "±", "ī"]]  # type: ignore[attr-defined]
    detokenizer = IncrementalDetokenizer(tokenizer)
    deltas = [detokenizer.add(stray) for _ in range(20)]
    released = "".join(deltas)
    assert set(released) == {"\ufffd"} and len(released) >= 20 - 4  # the last few may yet start a character
    deltas += [detokenizer.add(token_id) for token_id in character] + [detokenizer.flush()]
    assert "".join(deltas) == "\ufffd" * 20 + "汉"
    assert "汉" in deltas[-2] or "汉" in deltas[-1]
