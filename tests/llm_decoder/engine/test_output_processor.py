"""Text from the engine's tokens: stop strings cut (even split over tokens) and never streamed, a stop token's
text never added, and a request that a stop string ended reported once while the engine still runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from services.llm_decoder.engine.output_processor import OutputProcessor, TextOutput
from services.llm_decoder.engine.sequence import FinishReason
from services.llm_decoder.engine.token_output import TokenOutput


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dirs: dict[str, Path]) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dirs["glm4v"])


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def _token(request_id: str, token_id: int, count: int, finish: FinishReason | None = None) -> TokenOutput:
    return TokenOutput(request_id, token_id, finish, num_prompt_tokens=3, num_output_tokens=count, num_reused_tokens=0)


def test_a_stop_string_split_over_tokens_is_cut_and_never_streamed(tokenizer: Any) -> None:
    ids = _ids(tokenizer, "the total is 128 yuan END and more words")
    assert len(ids) > 8
    text = TextOutput(tokenizer, ("yuan END",), frozenset())
    deltas = []
    for token_id in ids:
        deltas.append(text.append(token_id, last=False))
        if text.stopped_by_string:
            break
    assert "".join(deltas) == "the total is 128 "
    assert not any("yuan" in delta for delta in deltas)


def test_a_stop_tokens_own_text_is_never_added(tokenizer: Any) -> None:
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text = TextOutput(tokenizer, (), frozenset({eos}))
    streamed = [text.append(token_id, last=False) for token_id in _ids(tokenizer, "yes")]
    streamed.append(text.append(eos, last=True))
    assert "".join(streamed) == "yes" and text.text == "yes"


def test_a_request_ended_by_a_stop_string_is_reported_once_and_its_later_tokens_dropped(tokenizer: Any) -> None:
    processor = OutputProcessor(tokenizer)
    processor.add("a", ("lo",), frozenset())
    processor.add("b", (), frozenset())
    ids = _ids(tokenizer, "hello")
    stopped_at = None
    for count, token_id in enumerate(ids, start=1):
        outputs, stopped = processor.process([_token("a", token_id, count), _token("b", token_id, count)])
        if stopped:
            stopped_at = count
            assert stopped == ["a"]
            assert [o.finish_reason for o in outputs] == ["stop", None]
            break
    assert stopped_at is not None
    later, stopped = processor.process([_token("a", ids[0], stopped_at + 1), _token("b", ids[0], stopped_at + 1)])
    assert [o.request_id for o in later] == ["b"] and stopped == []


def test_a_stop_string_in_the_engines_last_token_is_not_reported_as_still_running(tokenizer: Any) -> None:
    processor = OutputProcessor(tokenizer)
    processor.add("a", ("lo",), frozenset())
    ids = _ids(tokenizer, "hello")
    tokens = [_token("a", token_id, count) for count, token_id in enumerate(ids[:-1], start=1)]
    tokens.append(_token("a", ids[-1], len(ids), FinishReason.LENGTH))
    outputs, stopped = processor.process(tokens)  # "lo" is complete only with the last token's "o"
    assert stopped == []
    assert "".join(o.text for o in outputs) == "hel"
    assert outputs[-1].finish_reason == "stop"


def test_tokens_of_requests_it_does_not_know_are_dropped(tokenizer: Any) -> None:
    processor = OutputProcessor(tokenizer)
    processor.add("a", (), frozenset())
    processor.discard(["a"])
    assert processor.process([_token("a", 5, 1)]) == ([], [])
