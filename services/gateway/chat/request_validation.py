"""The gateway's own limits on a chat request, beyond what its schema checks: checked before any work."""

from __future__ import annotations

from services.gateway.api.errors import APIError
from services.gateway.api.protocol import ChatCompletionRequest, ChatMessage, ImagePart
from services.gateway.options import GatewayOptions


def prompt_text(messages: list[ChatMessage]) -> str:
    """Every text part of the messages, joined: what the prompt's safety check and length limit read."""
    texts: list[str] = []
    for message in messages:
        if isinstance(message.content, str):
            texts.append(message.content)
        elif message.content is not None:
            texts.extend(part.text for part in message.content if not isinstance(part, ImagePart))
    return "".join(texts)


def validate_request(request: ChatCompletionRequest, text: str, options: GatewayOptions) -> None:
    if len(request.messages) > options.max_messages:
        raise APIError(
            400, f"{len(request.messages)} messages; at most {options.max_messages} are accepted", param="messages"
        )
    if len(text) > options.max_prompt_chars:
        raise APIError(
            400,
            f"the messages hold more than {options.max_prompt_chars} characters of text",
            param="messages",
            code="context_length_exceeded",
        )
    if request.constrains_answer and request.enable_thinking:
        # The grammar constrains the answer from its first token, where a thinking model would begin to think.
        raise APIError(
            400,
            "response_format cannot be combined with chat_template_kwargs.enable_thinking",
            param="response_format",
            code="invalid_response_format",
        )
    for name in ("max_completion_tokens", "max_tokens"):
        value = getattr(request, name)
        if value is not None and value > options.max_completion_tokens:
            raise APIError(400, f"{name} is {value}; at most {options.max_completion_tokens}", param=name)
