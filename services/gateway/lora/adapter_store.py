"""Where the adapters every gateway replica serves are kept. In one process a dict; under Serve one small
deployment (`adapter_registry.py`) that every gateway replica reads, so an adapter loaded through one replica is
served by all."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from services.messages import AdapterRef


class AdapterStore(Protocol):
    async def snapshot(self) -> dict[str, AdapterRef]: ...

    async def put(self, ref: AdapterRef, replace: bool) -> bool:
        """Add `ref`; False (nothing changed) if its name is taken and `replace` is False."""
        ...

    async def delete(self, name: str) -> bool:
        """False if no adapter has that name."""
        ...


class InMemoryAdapterStore:
    def __init__(self, refs: Iterable[AdapterRef] = ()) -> None:
        self._refs = {ref.name: ref for ref in refs}

    async def snapshot(self) -> dict[str, AdapterRef]:
        return dict(self._refs)

    async def put(self, ref: AdapterRef, replace: bool) -> bool:
        if ref.name in self._refs and not replace:
            return False
        self._refs[ref.name] = ref
        return True

    async def delete(self, name: str) -> bool:
        return self._refs.pop(name, None) is not None
