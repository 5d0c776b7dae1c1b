"""Server-sent events as they arrive: bytes in, the JSON payloads of completed `data:` events out."""

from __future__ import annotations

import json
from typing import Any


class SSEStream:
    def __init__(self) -> None:
        self._pending = b""
        self.done = False  # `data: [DONE]` was seen

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The payloads of the events that `data` completes; ValueError on a payload that is not JSON."""
        self._pending += data
        if b"\n\n" not in self._pending:
            return []
        *frames, self._pending = self._pending.split(b"\n\n")
        payloads = []
        for frame in frames:
            for line in frame.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                value = line.removeprefix(b"data:").strip()
                if value == b"[DONE]":
                    self.done = True
                else:
                    payloads.append(json.loads(value))
        return payloads


def carries_text(chunk: dict[str, Any]) -> bool:
    """A chat completion chunk with answer text, or the finish of an answer that has none. A role-only
    first chunk does not count: an OpenAI-style server may send it before any token exists."""
    choices = chunk.get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content") or choices[0].get("finish_reason"))
