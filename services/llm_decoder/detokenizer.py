"""Streaming token ids to text without ever emitting half a character.

Byte-level BPE splits one Chinese character (three UTF-8 bytes) or an emoji over several tokens. Decoding
token by token would emit U+FFFD replacement characters; instead we decode a short window and release text
only once it no longer ends in an incomplete character. The window (from `prefix_offset`) keeps each step
O(1) in the length of the answer, as in vLLM's detokenizer.
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = "\ufffd"
# A UTF-8 character is at most 4 bytes and a token carries at least one: a character still incomplete
# starts in the last 3 held tokens. Bytes before those that decode to U+FFFD never will complete (a sampled
# stray continuation byte), and are released as the replacement character rather than held to the end.
_MAX_CHARACTER_TOKENS = 4


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
        releasable = self._releasable(len(released))
        if releasable is None:
            return ""
        end, text = releasable
        self._prefix_offset = self._read_offset
        self._read_offset = end
        return text[len(released) :]

    def _releasable(self, released_length: int) -> tuple[int, str] | None:
        """(end, window text up to it) of what can be released: all held tokens once they end on a whole
        character; when more are held than one character can span, up to the last whole character, or else
        all but the last tokens that may still start one. None: keep holding."""
        total = len(self.token_ids)
        held_too_long = total - self._read_offset > _MAX_CHARACTER_TOKENS
        for end in range(total, self._read_offset, -1) if held_too_long else (total,):
            text = self._decode(self._prefix_offset, end)
            if len(text) > released_length and not text.endswith(_INCOMPLETE):
                return end, text
        if not held_too_long:
            return None
        end = total - (_MAX_CHARACTER_TOKENS - 1)
        return end, self._decode(self._prefix_offset, end)

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
