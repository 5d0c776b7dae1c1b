"""The request bodies the scenarios send and what they read back, in the OpenAI chat format and the
multipart form of /v1/vqa."""

from __future__ import annotations

import json
import os
from typing import Any

from urllib3 import encode_multipart_formdata

from loadtest.images import TestImage

QUESTIONS = (
    "What is the total on this receipt?",
    "这是什么?",
    "What colour is the largest shape?",
    "Describe the picture in one sentence.",
    "这张收据是差旅费吗?",
    "What brand is this product?",
)
FOLLOW_UPS = ("Are you sure?", "用中文再说一遍。", "What else is in the picture?")


def auth_headers() -> dict[str, str]:
    """The API key of `$FLASHVQA_API_KEY` as a bearer token, when the server requires keys."""
    key = os.environ.get("FLASHVQA_API_KEY")
    return {"authorization": f"Bearer {key}"} if key else {}


def user_message(image: TestImage, question: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": image.data_url}},
            {"type": "text", "text": question},
        ],
    }


def chat_body(messages: list[dict[str, Any]], max_tokens: int, stream: bool = False) -> bytes:
    """Greedy (so repeated questions can be served from the response cache), and always `max_tokens` long:
    a random-weight model would otherwise stop at random, a real one at its own length."""
    body: dict[str, Any] = {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(body).encode()


def answer_text(body: bytes) -> str:
    """The assistant's text of a JSON chat completion; ValueError when it is not one."""
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a chat completion: {body[:120]!r}") from error
    if not isinstance(content, str):
        raise ValueError(f"no text in the answer: {body[:120]!r}")
    return content


def vqa_form(image: TestImage, question: str, max_tokens: int) -> tuple[bytes, str]:
    """(body, content type) of a POST /v1/vqa."""
    fields: dict[str, str | tuple[str, bytes, str]] = {
        "image": (image.file_name, image.data, image.media_type),
        "question": question,
        "max_tokens": str(max_tokens),
        "temperature": "0",
    }
    return encode_multipart_formdata(fields)
