from __future__ import annotations

import json

import pytest

from loadtest.sse import SSEStream, carries_text

ROLE = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
TEXT = {"choices": [{"index": 0, "delta": {"content": "你好"}, "finish_reason": None}]}
FINISH = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"completion_tokens": 2}}
WIRE = b"".join(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode() for chunk in (ROLE, TEXT, FINISH, USAGE))
WIRE += b"data: [DONE]\n\n"


class TestSSEStream:
    """An event is returned once its blank line has arrived, however the bytes were split."""

    def test_byte_by_byte(self) -> None:
        stream = SSEStream()
        events = [event for i in range(len(WIRE)) for event in stream.feed(WIRE[i : i + 1])]
        assert events == [ROLE, TEXT, FINISH, USAGE] and stream.done

    def test_at_once(self) -> None:
        stream = SSEStream()
        assert stream.feed(WIRE) == [ROLE, TEXT, FINISH, USAGE] and stream.done

    def test_an_incomplete_event_waits(self) -> None:
        stream = SSEStream()
        frame = WIRE.split(b"\n\n")[1] + b"\n\n"
        assert stream.feed(frame[:-1]) == []
        assert stream.feed(frame[-1:]) == [TEXT] and not stream.done

    def test_a_payload_that_is_not_json_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="Expecting value"):
            SSEStream().feed(b"data: <html>\n\n")


def test_first_text_is_content_or_a_finish_not_the_role_chunk() -> None:
    assert [carries_text(chunk) for chunk in (ROLE, TEXT, FINISH, USAGE)] == [False, True, True, False]
