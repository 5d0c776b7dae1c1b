"""The routing decision: a key keeps its replica while the pool changes around it, keys spread over the pool,
and load wins over affinity once the key's replica is `max_imbalance` requests busier than the least loaded."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from services.routing import preferred_replica, ranked_replicas

KEYS = [f"conversation-{index}" for index in range(2000)]
POOL = ["r1", "r2", "r3", "r4"]


def _owners(replica_ids: list[str]) -> dict[str, str]:
    return {key: preferred_replica(key, replica_ids) for key in KEYS}


class TestPreferredReplica:
    """Rendezvous hashing: a pure function of the key and the replica set."""

    def test_does_not_depend_on_the_order_of_the_replicas(self) -> None:
        assert _owners(POOL) == _owners(list(reversed(POOL)))

    def test_spreads_keys_evenly(self) -> None:
        shares = Counter(_owners(POOL).values())
        assert set(shares) == set(POOL)
        assert all(0.2 < count / len(KEYS) < 0.3 for count in shares.values())

    def test_a_removed_replica_moves_only_its_own_keys(self) -> None:
        before, after = _owners(POOL), _owners(["r1", "r2", "r4"])
        moved = {key for key in KEYS if before[key] != after[key]}
        assert moved == {key for key in KEYS if before[key] == "r3"}

    def test_a_new_replica_takes_a_fair_share_and_nothing_else_moves(self) -> None:
        before, after = _owners(POOL), _owners([*POOL, "r5"])
        moved = [key for key in KEYS if before[key] != after[key]]
        assert all(after[key] == "r5" for key in moved)
        assert 0.15 < len(moved) / len(KEYS) < 0.25


class TestRankedReplicas:
    """The key's replica first while it is not `max_imbalance` busier than the least loaded; else, or without a
    key, two random replicas for Serve to take the less loaded of."""

    def _ranks(self, key: str | None, loads: dict[str, int | None], max_imbalance: int = 4) -> list[list[str]]:
        return ranked_replicas(key, loads, max_imbalance, random.Random(0))

    def test_the_keys_replica_comes_first_with_two_others_behind_it(self) -> None:
        loads: dict[str, int | None] = dict.fromkeys(POOL, 0)
        ranks = self._ranks("k", loads)
        preferred = preferred_replica("k", POOL)
        assert ranks[0] == [preferred]
        assert len(ranks[1]) == 2 and preferred not in ranks[1]

    @pytest.mark.parametrize(("preferred_load", "kept"), [(3, True), (4, False), (None, False)])
    def test_load_wins_once_the_imbalance_is_reached_or_unknown(self, preferred_load: int | None, kept: bool) -> None:
        preferred = preferred_replica("k", POOL)
        loads: dict[str, int | None] = {replica: 0 if replica != preferred else preferred_load for replica in POOL}
        assert (self._ranks("k", loads)[0] == [preferred]) is kept

    def test_uniformly_busy_replicas_keep_their_keys(self) -> None:
        assert self._ranks("k", dict.fromkeys(POOL, 50))[0] == [preferred_replica("k", POOL)]

    def test_without_a_key_it_is_two_random_choices(self) -> None:
        ranks = self._ranks(None, dict.fromkeys(POOL, 0))
        assert len(ranks) == 1 and len(set(ranks[0])) == 2

    def test_a_single_replica_is_the_only_choice(self) -> None:
        assert self._ranks("k", {"r1": 0}) == [["r1"]]
        assert self._ranks("k", {"r1": 100}) == [["r1"]]
