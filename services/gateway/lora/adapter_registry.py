"""The adapter store under Serve: one replica holding the adapters every gateway replica serves.

Runtime loads live as long as this replica does, as vLLM's do in its server process: a restarted registry
starts again from the configured adapters (`decoder.lora.adapters`)."""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle

from services.gateway.lora.adapter_store import InMemoryAdapterStore
from services.messages import AdapterRef


@serve.deployment(name="adapter_registry", num_replicas=1, ray_actor_options={"num_cpus": 0})
class AdapterRegistryDeployment:
    def __init__(self, configured: list[AdapterRef]) -> None:
        self._store = InMemoryAdapterStore(configured)

    async def snapshot(self) -> dict[str, AdapterRef]:
        return await self._store.snapshot()

    async def put(self, ref: AdapterRef, replace: bool) -> bool:
        return await self._store.put(ref, replace)

    async def delete(self, name: str) -> bool:
        return await self._store.delete(name)


class ServeAdapterStore:
    """`AdapterStore` over the registry's handle."""

    def __init__(self, registry: DeploymentHandle) -> None:
        self._registry = registry

    async def snapshot(self) -> dict[str, AdapterRef]:
        refs: dict[str, AdapterRef] = await self._registry.snapshot.remote()
        return refs

    async def put(self, ref: AdapterRef, replace: bool) -> bool:
        added: bool = await self._registry.put.remote(ref, replace)
        return added

    async def delete(self, name: str) -> bool:
        deleted: bool = await self._registry.delete.remote(name)
        return deleted
