from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from loadtest.run import main, phases
from loadtest.scenarios import Scenario
from loadtest.targets import load_profiles


def test_overload_runs_alone_after_the_other_scenarios() -> None:
    profile = load_profiles()["cpu-tiny"]
    steady, overload = phases(profile)
    assert set(steady.users) == set(Scenario) - {Scenario.OVERLOAD}
    assert overload.users == {Scenario.OVERLOAD: profile.overload.users}
    assert (steady.seconds, overload.seconds) == (profile.steady_seconds, profile.overload_seconds)


def test_locust_gets_a_bounded_run_with_each_scenarios_users(tmp_path: Path) -> None:
    profile = load_profiles()["gpu-glm-4.6v-flash"]
    steady, _ = phases(profile)
    command = steady.command("http://flashvqa:8000", profile, tmp_path)

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--users") == str(sum(steady.users.values())) and value("--run-time") == "300s"
    assert value("--processes") == "4" and "--headless" in command
    settings = {entry["user_class_name"]: entry for entry in json.loads(value("--config-users"))}
    assert settings[Scenario.STREAMING.user_class]["fixed_count"] == profile.steady[Scenario.STREAMING].users
    assert settings[Scenario.COLD.user_class]["network_timeout"] == profile.request_timeout_s
    assert command[-len(steady.users) :] == [scenario.user_class for scenario in steady.users]
    ci = load_profiles()["cpu-tiny"]
    assert "--processes" not in phases(ci)[0].command("http://127.0.0.1:8000", ci, tmp_path)


def test_a_server_that_cannot_be_reached_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    assert main(["--url", f"http://127.0.0.1:{port}", "--out", str(tmp_path)]) == 2
    assert "loadtest: error:" in capsys.readouterr().err
