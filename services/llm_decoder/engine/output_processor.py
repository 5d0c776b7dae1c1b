"""Turning one sequence's sampled tokens into streamed text, and deciding when it stops."""

from __future__ import annotations

from typing import Any

from services.llm_decoder.detokenizer import IncrementalDetokenizer


class OutputProcessor:
    """Detokenizes incrementally and applies stop token ids, stop strings and the token budget.

    A stop string may arrive split over several tokens, so the last `len(longest stop) - 1` characters
    are held back until they can no longer begin one; the stop string itself is never sent.
    """

    def __init__(
        self, tokenizer: Any, stop: tuple[str, ...], stop_token_ids: frozenset[int], max_tokens: int
    ) -> None:
        self._detokenizer = IncrementalDetokenizer(tokenizer)
        self._stop = stop
        self._stop_token_ids = stop_token_ids
        self._max_tokens = max_tokens
        self._hold_back = max((len(s) for s in stop), default=1) - 1
        self._text = ""
        self._sent = 0
        self.finish_reason: str | None = None

    @property
    def text(self) -> str:
        return self._text

    def append(self, token_id: int, num_output_tokens: int) -> str:
        """Account for one new token (the `num_output_tokens`-th); return the text now safe to send."""
        assert self.finish_reason is None, "append after finish"
        if token_id in self._stop_token_ids:
            self._extend(self._detokenizer.flush())
            self.finish_reason = self.finish_reason or "stop"
        else:
            self._extend(self._detokenizer.add(token_id))
            if self.finish_reason is None and num_output_tokens >= self._max_tokens:
                self._extend(self._detokenizer.flush())
                self.finish_reason = self.finish_reason or "length"
        end = len(self._text) if self.finish_reason else max(len(self._text) - self._hold_back, self._sent)
        delta, self._sent = self._text[self._sent : end], end
        return delta

    def stop(self) -> str:
        """End here, as a stop token would (the output's grammar is complete): return the text held back."""
        assert self.finish_reason is None, "stop after finish"
        self._extend(self._detokenizer.flush())
        self.finish_reason = self.finish_reason or "stop"
        delta, self._sent = self._text[self._sent :], len(self._text)
        return delta

    def _extend(self, new_text: str) -> None:
        if not new_text or self.finish_reason:
            return
        search_from = max(len(self._text) - self._hold_back, 0)
        self._text += new_text
        hits = [index for s in self._stop if (index := self._text.find(s, search_from)) >= 0]
        if hits:
            self._text = self._text[: min(hits)]
            self.finish_reason = "stop"
