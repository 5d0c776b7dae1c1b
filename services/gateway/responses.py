"""Engine outputs -> OpenAI chat completion JSON, or server-sent events of completion chunks."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

from services.gateway.errors import to_api_error
from services.gateway.protocol import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    ErrorResponse,
    Usage,
)
from services.llm_decoder.engine import RequestOutput

logger = logging.getLogger(__name__)


def _usage(output: RequestOutput) -> Usage:
    return Usage(
        prompt_tokens=output.num_prompt_tokens,
        completion_tokens=output.num_output_tokens,
        total_tokens=output.num_prompt_tokens + output.num_output_tokens,
    )


async def completion_response(
    outputs: AsyncIterator[RequestOutput], completion_id: str, model: str
) -> ChatCompletionResponse:
    text: list[str] = []
    last: RequestOutput | None = None
    async for output in outputs:
        text.append(output.text)
        last = output
    assert last is not None and last.finished, "the decoder stream ended without finishing"
    return ChatCompletionResponse(
        id=completion_id,
        model=model,
        choices=[Choice(message=AssistantMessage(content="".join(text)), finish_reason=last.finish_reason)],
        usage=_usage(last),
    )


async def completion_events(
    first: RequestOutput,
    rest: AsyncIterator[RequestOutput],
    completion_id: str,
    model: str,
    include_usage: bool,
) -> AsyncIterator[str]:
    """SSE frames: a role chunk, content chunks, a finish chunk, optionally usage, then [DONE].
    An error after the stream started can only be reported in-band, as an error event."""
    created = int(time.time())

    def frame(choices: list[ChunkChoice], usage: Usage | None = None) -> str:
        chunk = ChatCompletionChunk(id=completion_id, created=created, model=model, choices=choices, usage=usage)
        body = chunk.model_dump(mode="json")
        for choice in body["choices"]:  # like OpenAI: a delta names only what it carries
            choice["delta"] = {key: value for key, value in choice["delta"].items() if value is not None}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield frame([ChunkChoice(delta=Delta(role="assistant", content=""))])
    output = first
    try:
        while True:
            if output.text or output.finished:
                delta = Delta(content=output.text) if output.text else Delta()
                yield frame([ChunkChoice(delta=delta, finish_reason=output.finish_reason)])
            if output.finished:
                break
            output = await anext(rest)
        if include_usage:
            yield frame([], usage=_usage(output))
        yield "data: [DONE]\n\n"
    except Exception as error:
        api_error = to_api_error(error)
        if api_error.status >= 500:
            logger.exception("stream %s failed", completion_id)
        yield f"data: {json.dumps(ErrorResponse(error=api_error.detail).model_dump())}\n\n"
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
