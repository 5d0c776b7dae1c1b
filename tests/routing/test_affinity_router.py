"""The router as Serve calls it, over fake replicas: it reads the key off the request's first argument, so a
conversation's turns and an image's encodes always reach one replica, where Serve's default router sends the
same conversation to either of two idle replicas."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from ray.serve._private.common import DeploymentHandleSource, DeploymentID, ReplicaID, RequestMetadata
from ray.serve._private.request_router import PowerOfTwoChoicesRequestRouter
from ray.serve.request_router import PendingRequest, RequestRouter

from services.common.deadline import DeadlineExceededError
from services.messages import DecodeRequest, EncodeRequest, RawImage, SamplingParams
from services.routing import preferred_replica
from services.routing.affinity_router import AffinityRouter

DEPLOYMENT = DeploymentID(name="llm_decoder", app_name="flashvqa")
MAX_IMBALANCE = 4


class FakeReplica:
    """What a router reads of a replica, and the count of its queue-length probes."""

    def __init__(self, unique_id: str, load: int = 0) -> None:
        self.replica_id = ReplicaID(unique_id, DEPLOYMENT)
        self.load = load
        self.probes = 0
        self.max_ongoing_requests = 80
        self.node_id = "node"
        self.availability_zone = None
        self.multiplexed_model_ids: set[str] = set()

    async def get_queue_len(self, *, deadline_s: float) -> int:
        self.probes += 1
        return self.load


def _request(*args: object) -> PendingRequest:
    return PendingRequest(args=list(args), kwargs={}, metadata=RequestMetadata(request_id="r", internal_request_id="i"))


def _turn(conversation: str) -> PendingRequest:
    return _request(DecodeRequest("r", [], SamplingParams(), affinity_key=conversation), [])


def _affinity_router(
    replicas: list[FakeReplica], router_class: type[AffinityRouter] = AffinityRouter
) -> AffinityRouter:
    router = router_class(
        deployment_id=DEPLOYMENT, handle_source=DeploymentHandleSource.UNKNOWN, use_replica_queue_len_cache=True
    )
    router.initialize_state(max_imbalance=MAX_IMBALANCE)
    router.update_replicas(replicas)  # type: ignore[arg-type]
    return router


def _serves_default_router(replicas: list[FakeReplica]) -> PowerOfTwoChoicesRequestRouter:
    router = PowerOfTwoChoicesRequestRouter(
        deployment_id=DEPLOYMENT, handle_source=DeploymentHandleSource.UNKNOWN, use_replica_queue_len_cache=True
    )
    router.update_replicas(replicas)  # type: ignore[arg-type]
    return router


async def _served_by(router: RequestRouter, replicas: list[FakeReplica], request: PendingRequest) -> str:
    """Where Serve sends the request when every replica is equally loaded: it takes the least loaded of the
    first rank, the first of them on a tie."""
    ranks = await router.choose_replicas(replicas, request)  # type: ignore[arg-type]
    return str(ranks[0][0].replica_id.unique_id)


class TestAffinityRouter:
    async def test_every_turn_of_a_conversation_reaches_one_replica(self) -> None:
        replicas = [FakeReplica("a"), FakeReplica("b")]
        router = _affinity_router(replicas)
        served = {await _served_by(router, replicas, _turn("conversation-1")) for _ in range(20)}
        assert served == {preferred_replica("conversation-1", ["a", "b"])}

    async def test_serves_default_router_would_send_them_to_either_replica(self) -> None:
        """The control: without the affinity router, a follow-up reaches its first turn's replica by chance."""
        replicas = [FakeReplica("a"), FakeReplica("b")]
        router = _serves_default_router(replicas)
        served = {await _served_by(router, replicas, _turn("conversation-1")) for _ in range(20)}
        assert served == {"a", "b"}

    async def test_an_image_reaches_the_replica_its_content_hash_prefers(self) -> None:
        replicas = [FakeReplica(name) for name in "abcd"]
        router = _affinity_router(replicas)
        for content_hash in ("h1", "h2", "h3", "h4"):
            encode = _request(EncodeRequest(RawImage(content_hash, 1, 1, b"\0\0\0")))
            assert await _served_by(router, replicas, encode) == preferred_replica(content_hash, "abcd")

    async def test_a_replica_much_busier_than_the_rest_is_passed_over(self) -> None:
        preferred = preferred_replica("conversation-1", ["a", "b", "c"])
        replicas = [FakeReplica(name, load=MAX_IMBALANCE if name == preferred else 0) for name in "abc"]
        ranks = await _affinity_router(replicas).choose_replicas(replicas, _turn("conversation-1"))  # type: ignore[arg-type]
        assert len(ranks) == 1 and len(ranks[0]) == 2

    async def test_serves_cached_queue_lengths_spare_the_probes(self) -> None:
        replicas = [FakeReplica("a"), FakeReplica("b")]
        router = _affinity_router(replicas)
        for replica in replicas:
            router.on_new_queue_len_info(replica.replica_id, 0)
        probes_before = [replica.probes for replica in replicas]
        await router.choose_replicas(replicas, _turn("conversation-1"))  # type: ignore[arg-type]
        assert [replica.probes for replica in replicas] == probes_before

    async def test_calls_without_a_key_get_two_random_choices(self) -> None:
        replicas = [FakeReplica(name) for name in "abc"]
        ranks = await _affinity_router(replicas).choose_replicas(replicas, _request())  # type: ignore[arg-type]
        assert len(ranks) == 1 and len(ranks[0]) == 2


def _encode(content_hash: str, internal_request_id: str, deadline: float | None = None) -> PendingRequest:
    encode = EncodeRequest(RawImage(content_hash, 1, 1, b"\0\0\0"), deadline)
    return PendingRequest(
        args=[encode], kwargs={}, metadata=RequestMetadata(request_id="r", internal_request_id=internal_request_id)
    )


class CountingRouter(AffinityRouter):
    """The affinity router, counting how often Serve's routing loop asks it."""

    calls = 0

    async def choose_replicas(
        self, candidate_replicas: list[Any], pending_request: PendingRequest | None = None
    ) -> list[list[Any]]:
        self.calls += 1
        return await super().choose_replicas(candidate_replicas, pending_request)


def _counting_router(replicas: list[FakeReplica]) -> CountingRouter:
    router = _affinity_router(replicas, CountingRouter)
    assert isinstance(router, CountingRouter)
    return router


async def _routed(router: RequestRouter, request: PendingRequest, timeout_s: float) -> Any:
    return await asyncio.wait_for(router._choose_replica_for_request(request), timeout_s)


class TestRoutingLoop:
    """Serve's own routing loop (`_choose_replica_for_request`) driving the affinity router."""

    async def test_a_request_that_cannot_be_placed_backs_off(self) -> None:
        """Every replica is full: Serve retries, but sleeps between tries instead of spinning a core."""
        full = FakeReplica("a", load=80)
        router = _counting_router([full])
        with pytest.raises(TimeoutError):
            await _routed(router, _encode("h1", "i1"), timeout_s=2.0)
        assert 3 <= router.calls <= 20  # a busy loop makes tens of thousands of calls in 2 s

    async def test_a_request_out_of_time_leaves_the_queue(self) -> None:
        router = _counting_router([FakeReplica("a", load=80)])
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            await _routed(router, _encode("h1", "i1", deadline=time.time() + 0.3), timeout_s=5.0)
        assert time.monotonic() - started < 2.0
        assert router.num_pending_requests == 0

    async def test_two_calls_of_one_request_are_both_routed_under_their_own_ids(self) -> None:
        """A request's two images, waiting for a replica at the same time (the gateway gives each handle call
        an internal request id of its own: services/gateway/ray_backends.py)."""
        replica = FakeReplica("a", load=80)
        router = _counting_router([replica])
        routed = [asyncio.ensure_future(_routed(router, _encode(f"h{n}", f"i{n}"), 5.0)) for n in (1, 2)]
        await asyncio.sleep(0.2)  # both wait for the full replica
        replica.load = 0
        chosen = await asyncio.gather(*routed)
        assert [choice.replica_id for choice in chosen] == [replica.replica_id] * 2

    async def test_serve_cannot_route_the_second_of_two_calls_under_one_id(self) -> None:
        """Why the gateway needs those ids: Serve indexes waiting calls by internal request id, and the second
        of two calls that wait under one id at the same time is never assigned (the multi-image hang)."""
        replica = FakeReplica("a", load=80)
        router = _counting_router([replica])
        first, second = (asyncio.ensure_future(_routed(router, _encode(f"h{n}", "i1"), 2.0)) for n in (1, 2))
        await asyncio.sleep(0.2)
        replica.load = 0
        assert (await first).replica_id == replica.replica_id
        with pytest.raises(TimeoutError):
            await second
