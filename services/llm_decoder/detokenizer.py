"""Streaming token ids to text without ever emitting half a character.

Byte-level BPE splits one Chinese character (three UTF-8 bytes) or an emoji over several tokens. Decoding
token by token would emit U+FFFD replacement characters; instead we decode a short window and release text
only once it no longer ends in an incomplete character. The window (from `prefix_offset`) keeps each step
O(1) in the length of the answer, as in vLLM's detokenizer.
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = "\ufffd"


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special_tokens = skip_special_tokens
        self.token_ids: list[int] = []
        self._prefix_offset = 0  # start of the window decoded for context
        self._read_offset = 0  # tokens before this have been released as text

    def add(self, token_id: int) -> str:
        """Append one token; return the text it completes (often "", sometimes several characters)."""
        self.token_ids.append(token_id)
        released = self._decode(self._prefix_offset, self._read_offset)
        current = self._decode(self._prefix_offset, len(self.token_ids))
        if len(current) <= len(released) or current.endswith(_INCOMPLETE):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self.token_ids)
        return current[len(released) :]

    def flush(self) -> str:
        """Whatever is still held back (an answer that ends mid-character keeps its replacement mark)."""
        released = self._decode(self._prefix_offset, self._read_offset)
        current = self._decode(self._prefix_offset, len(self.token_ids))
        self._prefix_offset = self._read_offset = len(self.token_ids)
        return current[len(released) :]

    def _decode(self, start: int, end: int) -> str:
        text: str = self._tokenizer.decode(
            self.token_ids[start:end],
            skip_special_tokens=self._skip_special_tokens,
            clean_up_tokenization_spaces=False,
        )
        return text
