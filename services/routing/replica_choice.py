"""Which replica a request goes to: the one its affinity key prefers, unless that one is much busier.

The preferred replica comes from rendezvous hashing: each replica gets a weight from the hash of (key, replica)
and the heaviest wins. Every router computes the same answer without sharing state (each gateway replica has
routers of its own), and a change of the replica set moves only the keys it must: a removed
replica's keys spread over the others, a new replica takes a fair share, and no other key moves.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping


def preferred_replica(key: str, replica_ids: Iterable[str]) -> str:
    return max(replica_ids, key=lambda replica_id: _weight(key, replica_id))


def ranked_replicas(
    key: str | None, loads: Mapping[str, int | None], max_imbalance: int, rng: random.Random
) -> list[list[str]]:
    """Serve's ranks for one request, best first (Serve takes the least loaded replica of the first rank that
    has room). `loads`: ongoing requests per replica, None where unknown. The key's replica comes first unless it
    has `max_imbalance` requests more than the least loaded one, or its load is unknown; behind it, or alone
    without a key, stand two random replicas: Serve's power of two choices."""
    if not (loads and max_imbalance >= 1):
        raise ValueError("need at least one replica and max_imbalance >= 1")
    if key is None:
        return [_two_of(list(loads), rng)]
    preferred = preferred_replica(key, loads)
    others = [replica_id for replica_id in loads if replica_id != preferred]
    preferred_load = loads[preferred]
    least_load = min((load for load in loads.values() if load is not None), default=None)
    if preferred_load is None or least_load is None or preferred_load - least_load >= max_imbalance:
        return [_two_of(list(loads), rng)]
    return [[preferred], _two_of(others, rng)] if others else [[preferred]]


def _weight(key: str, replica_id: str) -> int:
    # blake2b rather than hash(): Python salts str hashes per process, and every router must agree.
    digest = hashlib.blake2b(f"{key}\x00{replica_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _two_of(replica_ids: list[str], rng: random.Random) -> list[str]:
    return rng.sample(replica_ids, min(2, len(replica_ids)))
