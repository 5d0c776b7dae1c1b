"""The affinity key of a conversation: what every request of it shares from the start, hashed.

That is the first user message and whatever precedes it (a system prompt), cut after its first image: an image
is most of a prompt's tokens, so conversations that open with the same picture share its KV even when their
first questions differ. Every later turn repeats this prefix, so it keeps the key of the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any


def conversation_affinity_key(
    messages: Sequence[Mapping[str, Any]], image_hashes: Sequence[str], adapter: str | None = None
) -> str:
    """`messages` in the chat-template form (image parts bare `{"type": "image"}`), `image_hashes` the content
    hashes of their images in order, `adapter` the LoRA adapter answering (its KV is its own, so the same
    conversation under another adapter has nothing to find on the replica holding this one's)."""
    opening: list[Any] = [] if adapter is None else [["adapter", adapter]]
    for message in messages:
        if message["role"] != "user":
            opening.append([message["role"], message["content"]])
            continue
        parts = message["content"] if isinstance(message["content"], list) else [message["content"]]
        kept: list[Any] = []
        for part in parts:
            if isinstance(part, Mapping) and part.get("type") == "image":
                kept.append({"image": image_hashes[0]})  # images come in user messages only: this is the first
                break
            kept.append(part)
        opening.append(["user", kept])
        break
    return hashlib.blake2b(json.dumps(opening, sort_keys=True).encode(), digest_size=16).hexdigest()
