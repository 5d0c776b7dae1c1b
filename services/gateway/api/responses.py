"""Engine outputs -> OpenAI chat completion JSON, or server-sent events of completion chunks."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from services.gateway.api.api_error import ErrorResponse
from services.gateway.api.errors import to_api_error
from services.gateway.api.protocol import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    PromptTokensDetails,
    Usage,
)
from services.gateway.api.request_report import RequestReport
from services.messages import RequestOutput

logger = logging.getLogger(__name__)


def _usage(output: RequestOutput) -> Usage:
    return Usage(
        prompt_tokens=output.num_prompt_tokens,
        completion_tokens=output.num_output_tokens,
        total_tokens=output.num_prompt_tokens + output.num_output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=output.num_reused_tokens),
    )


async def completion_response(
    outputs: AsyncIterator[RequestOutput],
    completion_id: str,
    model: str,
    return_token_ids: bool,
    report: RequestReport,
) -> dict[str, Any]:
    """The whole answer as the JSON body; `report` is complete once the outputs are."""
    collected = [output async for output in outputs]
    if not (collected and collected[-1].finished):
        raise RuntimeError("the decoder stream ended without finishing")
    answer = RequestOutput.joined(collected)
    choice = Choice(
        message=AssistantMessage(content=answer.text),
        finish_reason=answer.finish_reason,
        token_ids=list(answer.token_ids) if return_token_ids else None,
    )
    body = ChatCompletionResponse(
        id=completion_id, model=model, choices=[choice], usage=_usage(answer), provenance=report.provenance_json()
    ).model_dump(mode="json")
    if body["provenance"] is None:
        del body["provenance"]
    return body


async def completion_events(
    first: RequestOutput,
    rest: AsyncIterator[RequestOutput],
    completion_id: str,
    model: str,
    include_usage: bool,
    return_token_ids: bool,
    provenance: list[dict[str, Any]] | None,
) -> AsyncIterator[str]:
    """SSE frames: a role chunk (with the provenance reports), content chunks, a finish chunk, optionally
    usage, then [DONE]. An error after the stream started can only be reported in-band, as an error event."""
    created = int(time.time())

    def frame(
        choices: list[ChunkChoice], usage: Usage | None = None, provenance: list[dict[str, Any]] | None = None
    ) -> str:
        chunk = ChatCompletionChunk(
            id=completion_id, created=created, model=model, choices=choices, usage=usage, provenance=provenance
        )
        body = chunk.model_dump(mode="json")
        if provenance is None:
            del body["provenance"]
        for choice in body["choices"]:  # like OpenAI: a delta names only what it carries
            choice["delta"] = {key: value for key, value in choice["delta"].items() if value is not None}
            if choice["token_ids"] is None:
                del choice["token_ids"]
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield frame([ChunkChoice(delta=Delta(role="assistant", content=""))], provenance=provenance)
    output = first
    try:
        while True:
            if output.text or output.finished or return_token_ids:
                delta = Delta(content=output.text) if output.text else Delta()
                token_ids = list(output.token_ids) if return_token_ids else None
                yield frame([ChunkChoice(delta=delta, finish_reason=output.finish_reason, token_ids=token_ids)])
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
