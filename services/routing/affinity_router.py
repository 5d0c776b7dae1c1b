"""The Serve request router of the encoder and decoder pools: `ranked_replicas` over the pool's replicas.

Serve builds one router per deployment handle (each gateway replica has its own) and calls `choose_replicas`
for every request, with the call's arguments: a first argument that has an `affinity_key` (a `DecodeRequest`,
an `EncodeRequest`) is routed by that key, any other call (`stats`) to the less loaded of two random replicas,
as by Serve's default router.

Serve calls `choose_replicas` again for as long as no replica of its answer has room. It sleeps between those
calls (exponential backoff, up to `RAY_SERVE_ROUTER_RETRY_MAX_BACKOFF_S`) only for a request whose
`routing_context.should_backoff` is set, which Serve's own routers set and a custom router must set too: left
unset, a request that cannot be placed is retried in a busy loop. A request whose deadline has passed is
failed here and leaves the router's queue, whoever waits for it.
"""

from __future__ import annotations

import random
from typing import Protocol, runtime_checkable

from ray.serve.config import RequestRouterConfig
from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

from services.common.deadline import DeadlineExceededError, expired
from services.routing.replica_choice import ranked_replicas


@runtime_checkable
class AffinityKeyed(Protocol):
    @property
    def affinity_key(self) -> str | None: ...

    @property
    def deadline(self) -> float | None: ...  # wall-clock seconds


def affinity_router_config(max_imbalance: int) -> RequestRouterConfig:
    """`max_imbalance`: how many more ongoing requests than the least loaded replica a request's own replica
    may hold before the request goes elsewhere."""
    # Ray annotates each keyword of RequestRouterConfig.__init__ as a dict.
    return RequestRouterConfig(
        request_router_class=AffinityRouter,  # type: ignore[arg-type]
        request_router_kwargs={"max_imbalance": max_imbalance},
    )


class AffinityRouter(RequestRouter):
    def initialize_state(self, max_imbalance: int) -> None:  # type: ignore[override]
        self._max_imbalance = max_imbalance
        self._rng = random.Random()

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        if pending_request is not None:
            pending_request.routing_context.should_backoff = True
            if _out_of_time(pending_request):
                # Serve's loop drops a request whose future is done when it next looks at it, which is after
                # a non-empty answer.
                return [candidate_replicas]
        by_id = {replica.replica_id.unique_id: replica for replica in candidate_replicas}
        key = _affinity_key(pending_request)
        loads = await self._loads(candidate_replicas) if key is not None else dict.fromkeys(by_id)
        return [
            [by_id[replica_id] for replica_id in rank]
            for rank in ranked_replicas(key, loads, self._max_imbalance, self._rng)
        ]

    async def _loads(self, replicas: list[RunningReplica]) -> dict[str, int | None]:
        """Ongoing requests per replica: Serve's cached counts, and a probe of those it has none for."""
        loads = {
            replica.replica_id.unique_id: self.replica_queue_len_cache.get(replica.replica_id) for replica in replicas
        }
        unknown = [replica for replica in replicas if loads[replica.replica_id.unique_id] is None]
        if unknown:
            # Serve's own probe (deadline, backoff, dead replicas), as Ray Serve LLM's prefix-aware router uses it.
            for replica, load in await self._probe_queue_lens(unknown, 0):
                loads[replica.replica_id.unique_id] = load
        return loads


def _routed(pending_request: PendingRequest | None) -> AffinityKeyed | None:
    if pending_request is None or not pending_request.args:
        return None
    first = pending_request.args[0]
    return first if isinstance(first, AffinityKeyed) else None


def _affinity_key(pending_request: PendingRequest | None) -> str | None:
    routed = _routed(pending_request)
    return None if routed is None else routed.affinity_key


def _out_of_time(pending_request: PendingRequest) -> bool:
    """Fails the request (its caller gets a DeadlineExceededError) if its deadline has passed."""
    routed = _routed(pending_request)
    if routed is None or not expired(routed.deadline):
        return False
    if not pending_request.future.done():
        pending_request.future.set_exception(
            DeadlineExceededError("the request's deadline passed while it waited for a replica")
        )
    return True
