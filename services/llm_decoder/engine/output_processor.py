"""Turning the engine's sampled tokens into streamed text, and finding stop strings in it.

This runs outside the step (vLLM v1 splits it the same way): `AsyncLLMEngine` detokenizes one step's tokens
on its event loop while the next step runs in the engine's thread, so the per-token cost of the tokenizer is
not on the step's critical path. A stop string is therefore found a step late: the request is reported as
stopped here, at once, and the engine is told to finish the sequence between steps (`LLMEngine.finish`); the
token it may have sampled meanwhile is dropped.
"""

from __future__ import annotations

from typing import Any

from services.llm_decoder.detokenizer import IncrementalDetokenizer
from services.llm_decoder.engine.token_output import TokenOutput
from services.messages import RequestOutput


class TextOutput:
    """One request's text. A stop string may arrive split over several tokens, so the last
    `len(longest stop) - 1` characters are held back until they can no longer begin one; the stop string
    itself is never sent. A stop token's own text is never added."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], stop_token_ids: frozenset[int]) -> None:
        self._detokenizer = IncrementalDetokenizer(tokenizer)
        self._stop = stop
        self._stop_token_ids = stop_token_ids
        self._hold_back = max((len(s) for s in stop), default=1) - 1
        self._text = ""
        self._sent = 0
        self.stopped_by_string = False

    @property
    def text(self) -> str:
        return self._text

    def append(self, token_id: int, last: bool) -> str:
        """Account for one new token (`last`: the engine ended the sequence with it); return the text now safe
        to send. Once a stop string is found, nothing more is added."""
        if token_id not in self._stop_token_ids:
            self._extend(self._detokenizer.add(token_id))
        if last:
            self._extend(self._detokenizer.flush())
        end = len(self._text) if last or self.stopped_by_string else max(len(self._text) - self._hold_back, self._sent)
        delta, self._sent = self._text[self._sent : end], end
        return delta

    def _extend(self, new_text: str) -> None:
        if not new_text or self.stopped_by_string:
            return
        search_from = max(len(self._text) - self._hold_back, 0)
        self._text += new_text
        hits = [index for s in self._stop if (index := self._text.find(s, search_from)) >= 0]
        if hits:
            self._text = self._text[: min(hits)]
            self.stopped_by_string = True


class OutputProcessor:
    """The text of every request in flight. Used by one thread (the one that adds and aborts requests)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._texts: dict[str, TextOutput] = {}

    def add(self, request_id: str, stop: tuple[str, ...], stop_token_ids: frozenset[int]) -> None:
        self._texts[request_id] = TextOutput(self._tokenizer, stop, stop_token_ids)

    def discard(self, request_ids: list[str]) -> None:
        for request_id in request_ids:
            self._texts.pop(request_id, None)

    def process(self, tokens: list[TokenOutput]) -> tuple[list[RequestOutput], list[str]]:
        """The outputs of one step's tokens, and the requests that a stop string ended while the engine still
        runs them. Tokens of requests that ended already (aborted, or stopped a step ago) are dropped."""
        outputs, stopped = [], []
        for token in tokens:
            text = self._texts.get(token.request_id)
            if text is None:
                continue
            delta = text.append(token.token_id, token.finished)
            finish_reason = token.finish_reason.value if token.finish_reason else None
            if text.stopped_by_string:
                finish_reason = "stop"
                if not token.finished:
                    stopped.append(token.request_id)
            if finish_reason is not None:
                del self._texts[token.request_id]
            outputs.append(
                RequestOutput(
                    request_id=token.request_id,
                    text=delta,
                    token_ids=(token.token_id,),
                    finish_reason=finish_reason,
                    num_prompt_tokens=token.num_prompt_tokens,
                    num_output_tokens=token.num_output_tokens,
                    num_reused_tokens=token.num_reused_tokens,
                )
            )
        return outputs, stopped
