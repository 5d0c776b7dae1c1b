"""A stand-in for flashvqa's HTTP API whose behaviour the tests choose: JSON answers, refusals and
silence in turn, and SSE streams whose first text comes a known time after the first chunk (after a chosen
number of streams refused with 503, as a stack still starting refuses them)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Reply(Enum):
    ANSWER = "answer"
    TOO_MANY = 429
    UNAVAILABLE = 503
    SILENCE = "silence"  # nothing until long after the client's timeout


FIRST_TEXT_DELAY_S = 0.3
SILENCE_S = 5.0


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}],
    }


def _chunk(delta: dict[str, str], finish_reason: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers["content-type"] == "application/json" and json.loads(body).get("stream"):
            if self.server.refuse_stream():
                self._send(503, b'{"error": {"message": "starting", "type": "server_error"}}')
            else:
                self._stream()
            return
        match self.server.next_reply():
            case Reply.ANSWER:
                self._send(200, json.dumps(_completion("a fake answer")).encode())
            case Reply.SILENCE:
                time.sleep(SILENCE_S)
            case refusal:
                self._send(refusal.value, b'{"error": {"message": "busy", "type": "rate_limit_error"}}')

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self) -> None:
        """A role-only chunk at once (as OpenAI sends it), the first text FIRST_TEXT_DELAY_S later."""
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(_chunk({"role": "assistant", "content": ""}))
        self.wfile.flush()
        time.sleep(FIRST_TEXT_DELAY_S)
        for chunk in (_chunk({"content": "fake"}), _chunk({"content": " text"}), _chunk({}, "length")):
            self.wfile.write(chunk)
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replies: list[Reply], refused_streams: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self._cycle = itertools.cycle(replies)
        self.refused_streams = refused_streams  # streams still to refuse

    def next_reply(self) -> Reply:
        with self._lock:
            return next(self._cycle)

    def refuse_stream(self) -> bool:
        with self._lock:
            self.refused_streams -= 1
            return self.refused_streams >= 0


@contextmanager
def fake_flashvqa(replies: list[Reply], refused_streams: int = 0) -> Iterator[str]:
    """Yields the base URL; non-streaming requests get `replies` in turn (HTTP/1.0: one per connection),
    the first `refused_streams` streaming requests a 503."""
    server = _Server(replies, refused_streams)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
