"""A request's deadline, enforced while its answer streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def within_deadline(items: AsyncIterator[T], deadline: float) -> AsyncGenerator[T, None]:
    """`items` until `deadline` (event loop time); then TimeoutError, and `items` is closed, which for a
    decoder stream aborts the sequence and frees its slot."""
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    item = await anext(items)
            except StopAsyncIteration:
                return
            yield item
    finally:
        await items.aclose()  # type: ignore[attr-defined]
