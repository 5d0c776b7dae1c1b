"""The load test as CI runs it: `python -m loadtest.run` starts the local stack with the tiny model, runs
profile cpu-tiny (every scenario side by side, then overload alone) and judges it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loadtest.locust_run import ROOT
from loadtest.run import report
from loadtest.scenarios import Scenario
from loadtest.targets import load_profiles

pytestmark = pytest.mark.ray

RUN_TIMEOUT_S = 400


@dataclass(frozen=True)
class Run:
    finished: subprocess.CompletedProcess[str]
    out: Path

    @property
    def verdict(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.out / "verdict.json").read_text())
        return loaded


@pytest.fixture(scope="module")
def run(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("loadtest")
    command = [sys.executable, "-m", "loadtest.run", "--model", str(tiny_model_dirs["glm4v"]), "--out", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=ROOT, check=False)
    return Run(finished, out)


@pytest.mark.slow
class TestLocalRun:
    def test_every_target_is_met(self, run: Run) -> None:
        assert run.finished.returncode == 0, run.finished.stdout + run.finished.stderr
        assert run.verdict["passed"] and run.verdict["missed"] == []
        assert "every target met" in run.finished.stdout

    def test_every_scenario_was_answered_without_error(self, run: Run) -> None:
        scenarios = run.verdict["scenarios"]
        assert set(scenarios) == {scenario.value for scenario in Scenario}
        for name, result in scenarios.items():
            assert result["requests"] > 0 and result["errors"] == 0, (name, result["failure_reasons"])
            assert result["p99_e2e_ms"] is not None, name
        assert scenarios["streaming"]["p99_ttft_ms"] <= scenarios["streaming"]["p99_e2e_ms"]

    def test_overload_is_refused_fast_with_429_or_503_and_no_timeout_or_5xx(self, run: Run) -> None:
        overload = run.verdict["scenarios"]["overload"]
        assert overload["refused"] > 0 and overload["failure_reasons"] == {}
        assert overload["requests"] > overload["refused"]  # the stack kept answering at capacity
        target = load_profiles()["cpu-tiny"].overload
        assert overload["p99_refusal_ms"] <= target.p99_refusal_ms

    def test_the_reports_are_written(self, run: Run) -> None:
        for phase in ("steady", "overload"):
            for suffix in ("_stats.csv", "_stats_history.csv", "_failures.csv", ".html"):
                assert (run.out / f"{phase}{suffix}").stat().st_size > 0, phase + suffix
        summary = (run.out / "summary.md").read_text()
        assert "| scenario | users | requests |" in summary and "Every target met." in summary
        assert all(f"| {scenario.value} |" in summary for scenario in Scenario)
        with Image.open(run.out / "latency.png") as plot:
            assert plot.format == "PNG" and plot.width >= 1000 and plot.height >= 800

    def test_a_missed_target_is_named(self, run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The same measurements (a copy) judged against a target nobody meets."""
        out = shutil.copytree(run.out, tmp_path / "rejudged")
        profile = load_profiles()["cpu-tiny"]
        impossible = profile.model_copy(
            update={
                "steady": profile.steady
                | {Scenario.CACHED: profile.steady[Scenario.CACHED].model_copy(update={"p99_e2e_ms": 1})}
            }
        )
        missed = report("cpu-tiny", impossible, out)
        measured = run.verdict["scenarios"]["cached"]["p99_e2e_ms"]
        assert [check.describe() for check in missed] == [f"cached: P99 end to end {measured:.0f} ms (target ≤ 1 ms)"]
        assert "loadtest: MISSED cached: P99 end to end" in capsys.readouterr().err
        assert json.loads((out / "verdict.json").read_text())["passed"] is False
