"""Finished answers by what determines them: images (content hashes), messages, sampling and model.

A hit is replayed as if the decoder had produced the whole answer in one step, so the JSON and SSE
paths serve it unchanged. Only deterministic requests are cached unless configured otherwise: caching
a sampled answer would hand every client the same "random" one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import OrderedDict
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from services.messages import RequestOutput, SamplingParams


class ResponseCacheOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    ttl_s: float = Field(3600, gt=0)
    max_entry_bytes: int = Field(64 << 10, ge=1, description="longer answers are not cached")
    max_memory_bytes: int = Field(64 << 20, ge=0, description="in-process cache (no Redis configured)")
    cache_sampled: bool = Field(False, description="also cache temperature > 0 answers (all clients get the same)")


def cache_key(
    model: str,
    messages: list[dict[str, Any]],
    image_hashes: list[str],
    params: SamplingParams,
    enable_thinking: bool,
    policy_version: str,
) -> str:
    material = json.dumps(
        {
            "model": model,
            "messages": messages,
            "images": image_hashes,
            "params": dataclasses.asdict(params),
            "thinking": enable_thinking,
            "policy": policy_version,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.blake2b(material.encode(), digest_size=20).hexdigest()


def is_cacheable(params: SamplingParams, options: ResponseCacheOptions) -> bool:
    """Whether an enabled cache may hold this request's answer."""
    return params.is_greedy or options.cache_sampled


def encode_answer(output: RequestOutput, flags: list[str]) -> bytes:
    """The answer and the safety flags it was served with (a hit skips the checks the key already passed)."""
    if not output.finished:
        raise RuntimeError("only a finished answer is cached")
    return json.dumps(
        {"output": dataclasses.asdict(output) | {"request_id": ""}, "flags": flags}, ensure_ascii=False
    ).encode()


def decode_answer(data: bytes, request_id: str) -> tuple[RequestOutput, list[str]]:
    entry = json.loads(data)
    fields = entry["output"] | {"request_id": request_id, "token_ids": tuple(entry["output"]["token_ids"])}
    return RequestOutput(**fields), entry["flags"]


class ResponseCache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...


class InMemoryResponseCache:
    """LRU with a byte budget and a TTL: the cache of a single gateway when no Redis is configured."""

    def __init__(self, max_bytes: int, ttl_s: float) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._ttl_s = ttl_s

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes) -> None:
        if len(value) > self._max_bytes:
            return
        if key in self._entries:
            self._remove(key)
        self._entries[key] = (time.monotonic() + self._ttl_s, value)
        self._bytes += len(value)
        while self._bytes > self._max_bytes:
            self._remove(next(iter(self._entries)))

    def _remove(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)
