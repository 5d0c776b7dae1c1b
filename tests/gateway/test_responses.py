"""SSE framing: the OpenAI chunk sequence, and an in-band error when the stream breaks after it began."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from services.gateway.api.errors import ServiceUnavailableError
from services.gateway.api.responses import completion_events
from services.messages import RequestOutput


def _output(text: str, count: int, finish_reason: str | None = None) -> RequestOutput:
    return RequestOutput("r", text, (count,), finish_reason, num_prompt_tokens=5, num_output_tokens=count)


async def _events(first: RequestOutput, rest: AsyncIterator[RequestOutput], usage: bool = True) -> list[str]:
    return [event async for event in completion_events(first, rest, "chatcmpl-1", "m", usage, False, None)]


async def test_chunk_sequence() -> None:
    async def rest() -> AsyncIterator[RequestOutput]:
        yield _output(" world", 2, "stop")

    events = await _events(_output("hello", 1), rest())
    bodies = [json.loads(event.removeprefix("data: ")) for event in events[:-1]]
    assert events[-1] == "data: [DONE]\n\n"
    assert bodies[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [b["choices"][0]["delta"].get("content") for b in bodies[1:3]] == ["hello", " world"]
    assert [b["choices"][0]["finish_reason"] for b in bodies[1:3]] == [None, "stop"]
    assert bodies[3]["choices"] == []
    assert bodies[3]["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


async def test_a_break_after_the_first_token_becomes_an_error_event() -> None:
    async def rest() -> AsyncIterator[RequestOutput]:
        raise ServiceUnavailableError("decoder replica restarting")
        yield  # an async generator

    events = await _events(_output("hello", 1), rest())
    error = json.loads(events[-1].removeprefix("data: "))["error"]
    assert error["code"] == "overloaded"
    assert "[DONE]" not in "".join(events)
