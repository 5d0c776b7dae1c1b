"""Gateway replicas share one adapter store: an adapter loaded through one replica is served by the next
request to any other, an unloaded one stops within the view's age, and unknown names cannot flood the store."""

from __future__ import annotations

from typing import cast

import pytest

from services.gateway.admission.auth import Tenant
from services.gateway.api.api_error import APIError
from services.gateway.backends import Backends
from services.gateway.lora import adapter_catalog
from services.gateway.lora.adapter_catalog import MISS_REFRESH_S, AdapterCatalog
from services.gateway.lora.adapter_store import InMemoryAdapterStore
from services.gateway.lora.served_models import ServedModels
from services.messages import AdapterRef

RECEIPTS = AdapterRef("receipts", "receipts", "1")


class CountingStore(InMemoryAdapterStore):
    snapshots = 0

    async def snapshot(self) -> dict[str, AdapterRef]:
        self.snapshots += 1
        return await super().snapshot()


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(adapter_catalog.time, "monotonic", clock)
    return clock


async def test_an_adapter_loaded_through_one_replica_is_served_by_the_next_request_to_another(clock: Clock) -> None:
    store = InMemoryAdapterStore()
    first, second = AdapterCatalog(store), AdapterCatalog(store)
    assert await second.get("receipts") is None
    clock.now += MISS_REFRESH_S * 2
    assert await first.add(RECEIPTS, replace=False)
    assert await second.get("receipts") == RECEIPTS


async def test_an_unloaded_adapter_stops_being_served_once_the_view_is_older_than_its_age(clock: Clock) -> None:
    store = InMemoryAdapterStore([RECEIPTS])
    first, second = AdapterCatalog(store, max_age_s=1.0), AdapterCatalog(store, max_age_s=1.0)
    assert await second.get("receipts") == RECEIPTS
    assert await first.remove("receipts")
    assert await first.get("receipts") is None  # the replica that unloaded it knows at once
    clock.now += 0.5
    assert await second.get("receipts") == RECEIPTS
    clock.now += 0.6
    assert await second.get("receipts") is None


async def test_unknown_names_read_the_store_at_most_once_per_interval(clock: Clock) -> None:
    store = CountingStore([RECEIPTS])
    catalog = AdapterCatalog(store)
    for attempt in range(20):
        assert await catalog.get(f"nobody-{attempt}") is None
    assert store.snapshots == 1
    clock.now += MISS_REFRESH_S * 2
    assert await catalog.get("nobody") is None
    assert store.snapshots == 2


async def test_a_taken_name_is_not_replaced_unless_asked() -> None:
    catalog = AdapterCatalog(InMemoryAdapterStore([RECEIPTS]))
    other = AdapterRef("receipts", "moderation", "2")
    assert not await catalog.add(other, replace=False)
    assert await catalog.get("receipts") == RECEIPTS
    assert await catalog.add(other, replace=True)
    assert await catalog.get("receipts") == other


async def test_refusing_unknown_models_reads_the_store_no_more_than_looking_them_up(clock: Clock) -> None:
    store = CountingStore([RECEIPTS])
    models = ServedModels("base", AdapterCatalog(store), cast(Backends, None), runtime_loading=False)
    for attempt in range(20):
        clock.now += MISS_REFRESH_S / 40
        with pytest.raises(APIError, match="models you can use: 'base', 'receipts'"):
            await models.resolve(f"nobody-{attempt}", Tenant(name="acme"))
    assert store.snapshots == 1
