from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from loadtest.scenarios import Scenario
from loadtest.targets import TARGETS_FILE, load_profiles

CI, GPU = "cpu-tiny", "gpu-glm-4.6v-flash"


def test_both_profiles_load_and_every_scenario_has_targets() -> None:
    profiles = load_profiles()
    assert set(profiles) == {CI, GPU}
    for profile in profiles.values():
        assert set(profile.steady) | {Scenario.OVERLOAD} == set(Scenario)
        assert profile.targets(Scenario.STREAMING).p99_ttft_ms is not None
        assert profile.overload.max_error_rate == 0  # no timeout, no 5xx but 503, under overload


def test_the_gpu_profile_holds_the_seeds_goals() -> None:
    """First text within 200 ms and answers within about a second, at P99."""
    gpu = load_profiles()[GPU]
    assert gpu.targets(Scenario.STREAMING).p99_ttft_ms == 200
    assert gpu.targets(Scenario.COLD).p99_e2e_ms == 1000
    assert gpu.local_stack == {}  # it is always run against a cluster


def test_the_ci_profile_is_short() -> None:
    ci = load_profiles()[CI]
    assert ci.steady_seconds + ci.overload_seconds <= 30
    assert sum(targets.users for targets in ci.steady.values()) + ci.overload.users <= 40


def test_the_ci_stack_refuses_only_the_overload() -> None:
    """Serve refuses a call once `max_queued_requests` calls are being routed, however briefly: that
    queue must hold every steady user, and the decoder as a whole fewer than the overload's users."""
    ci = load_profiles()[CI]
    decoder = ci.local_stack["decoder"]
    steady_users = sum(targets.users for targets in ci.steady.values())
    assert decoder["max_queued_requests"] >= steady_users
    assert decoder["max_num_seqs"] + decoder["max_waiting"] + decoder["max_queued_requests"] < ci.overload.users


def test_overload_targets_outside_their_phase_are_refused(tmp_path: Path) -> None:
    broken = TARGETS_FILE.read_text().replace("    steady:\n", "    steady:\n      overload: {users: 1}\n", 1)
    (tmp_path / "targets.yaml").write_text(broken)
    with pytest.raises(ValidationError, match="overload has its own phase"):
        load_profiles(tmp_path / "targets.yaml")
