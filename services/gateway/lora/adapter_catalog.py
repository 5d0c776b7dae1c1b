"""A gateway replica's view of the shared adapter store, read again when it is older than `max_age_s`, or
sooner when a request names an adapter this view lacks (it may have been loaded through another replica)."""

from __future__ import annotations

import asyncio
import time

from services.gateway.lora.adapter_store import AdapterStore
from services.messages import AdapterRef

# A view younger than this is not read again for a name it lacks: unknown model ids cannot flood the store.
MISS_REFRESH_S = 0.1


class AdapterCatalog:
    def __init__(self, store: AdapterStore, max_age_s: float = 1.0) -> None:
        self._store = store
        self._max_age_s = max_age_s
        self._refs: dict[str, AdapterRef] = {}
        self._read_at = -float("inf")
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> AdapterRef | None:
        age = time.monotonic() - self._read_at
        if age > self._max_age_s or (name not in self._refs and age > MISS_REFRESH_S):
            await self._refresh()
        return self._refs.get(name)

    async def all(self) -> list[AdapterRef]:
        await self._refresh()
        return self.known()

    def known(self) -> list[AdapterRef]:
        """This view's adapters as last read, without reading the store again."""
        return sorted(self._refs.values(), key=lambda ref: ref.name)

    async def add(self, ref: AdapterRef, replace: bool) -> bool:
        added = await self._store.put(ref, replace)
        await self._refresh()
        return added

    async def remove(self, name: str) -> bool:
        removed = await self._store.delete(name)
        await self._refresh()
        return removed

    async def _refresh(self) -> None:
        requested = time.monotonic()
        async with self._lock:
            if self._read_at >= requested:  # another request read it while this one waited
                return
            self._refs = await self._store.snapshot()
            self._read_at = time.monotonic()
