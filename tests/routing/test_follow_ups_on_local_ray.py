"""On a local Ray with two replicas per pool, behind the real gateway: every follow-up question reaches the
decoder replica that holds its conversation's KV, and its image the encoder replica that caches its embedding.

Each conversation is about an image of its own, and the GLM template's opening before the image is shorter than
a 16-token block, so no two conversations share a cached block: a request reuses KV only on the replica that
served its conversation's first turn. (Serve's default router would send each follow-up to either idle replica:
see `test_affinity_router.py`.)"""

from __future__ import annotations

import json
import sys
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.process_group import run_in_own_session
from tests.routing.conversation_trial import CONVERSATIONS

pytestmark = pytest.mark.ray

RUN_TIMEOUT_S = 240


def _hit_tokens(turn: dict[str, Any]) -> int:
    return sum(stats["prefix_cache_hit_tokens"] for stats in turn["decoders"])


@pytest.fixture(scope="module")
def trial(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("routing") / "trial.json"
    finished = run_in_own_session(
        [sys.executable, "-m", "tests.routing.conversation_trial", str(tiny_model_dirs["glm4v"]), str(out)],
        RUN_TIMEOUT_S,
    )
    assert finished.returncode == 0, finished.stdout[-4000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.mark.slow
class TestFollowUpsOnLocalRay:
    def test_every_follow_up_reuses_its_first_turns_kv(self, trial: dict[str, Any]) -> None:
        turns = trial["turns"]
        assert len(turns) == 1 + 2 * CONVERSATIONS
        assert all(len(turn["decoders"]) == 2 for turn in turns)
        reused = [_hit_tokens(turn) - _hit_tokens(before) for before, turn in pairwise(turns)]
        assert reused[0::2] == [0] * CONVERSATIONS  # first turns: nothing of another conversation
        assert all(tokens > 0 for tokens in reused[1::2]), reused

    def test_every_follow_ups_image_is_found_in_an_encoders_cache(self, trial: dict[str, Any]) -> None:
        encoders = trial["encoders"]
        assert len(encoders) == 2
        assert sum(stats["cache_misses"] for stats in encoders) == CONVERSATIONS
        assert sum(stats["cache_hits"] for stats in encoders) == CONVERSATIONS
