"""Run the load test and judge it against its targets.

    python -m loadtest.run                               # starts the local stack (tiny model), profile cpu-tiny
    python -m loadtest.run --url http://flashvqa:8000 --profile gpu-glm-4.6v-flash

Two phases of headless locust: every scenario but overload side by side, then overload alone. Writes
locust's CSV and HTML reports, latency.png (percentiles over time), summary.md and verdict.json to --out.
Exit status: 0 when every target is met, 1 when one is missed (each is named), 2 when the run failed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import httpx

from loadtest.local_stack import LocalStack, StackError
from loadtest.locust_run import ROOT, LocustError, Phase, run_phase
from loadtest.plot import plot_percentiles
from loadtest.results import ScenarioResult, scenario_result
from loadtest.scenarios import Scenario
from loadtest.summary import summary_table
from loadtest.targets import TARGETS_FILE, Profile, load_profiles
from loadtest.verdict import Check, checks
from loadtest.warm_up import WarmUpFailed, warm_up

REPORTS = ROOT / "loadtest" / "reports"
WARM_UP_TIMEOUT_S = 120  # the decoder's replica may still be loading its model when /health answers
Judged = list[tuple[ScenarioResult, list[Check]]]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    profile = load_profiles(args.targets)[args.profile]
    out: Path = args.out or REPORTS / f"{args.profile}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _server(args, profile, out) as url:
            for phase in phases(profile):
                run_phase(phase, url, profile, out)
    except (StackError, WarmUpFailed, LocustError, httpx.HTTPError) as error:
        _say(f"loadtest: error: {error}", sys.stderr)
        return 2
    missed = report(args.profile, profile, out)
    return 1 if missed else 0


def phases(profile: Profile) -> list[Phase]:
    return [
        Phase(
            "steady", {scenario: targets.users for scenario, targets in profile.steady.items()}, profile.steady_seconds
        ),
        Phase("overload", {Scenario.OVERLOAD: profile.overload.users}, profile.overload_seconds),
    ]


def report(name: str, profile: Profile, out: Path) -> list[Check]:
    """Judges the phases' CSV files in `out` against the profile; writes latency.png, summary.md and
    verdict.json there, prints the table, names each miss on stderr and returns the misses."""
    judged: Judged = []
    for phase in phases(profile):
        for scenario, users in phase.users.items():
            result = scenario_result(scenario, users, phase.csv_prefix(out))
            judged.append((result, checks(result, profile.targets(scenario))))
    plot_percentiles(
        [phase.csv_prefix(out) for phase in phases(profile)],
        [result.scenario for result, _ in judged],
        out / "latency.png",
    )
    missed = [check for _, scenario_checks in judged for check in scenario_checks if not check.passed]
    table = summary_table(judged)
    (out / "summary.md").write_text(_summary(name, profile, table, missed))
    (out / "verdict.json").write_text(json.dumps(_verdict(name, judged, missed), indent=2) + "\n")
    _say(table)
    for check in missed:
        _say(f"loadtest: MISSED {check.describe()}", sys.stderr)
    _say(f"loadtest: {'targets missed' if missed else 'every target met'}; reports in {out}")
    return missed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="a running flashvqa (e.g. the in-cluster Service); else a local stack")
    target.add_argument("--model", type=Path, help="the local stack's model directory (default: the tiny GLM one)")
    parser.add_argument("--profile", default="cpu-tiny", help="a profile of the targets file (default: cpu-tiny)")
    parser.add_argument("--targets", type=Path, default=TARGETS_FILE, help="the targets file")
    parser.add_argument("--out", type=Path, help=f"the reports' folder (default: under {REPORTS})")
    return parser


@contextmanager
def _server(args: argparse.Namespace, profile: Profile, out: Path) -> Iterator[str]:
    if args.url is not None:
        url = args.url.rstrip("/")
        httpx.get(f"{url}/health", timeout=10).raise_for_status()
        warm_up(url, WARM_UP_TIMEOUT_S)
        yield url
        return
    with LocalStack(args.model or _tiny_model(), profile.local_stack, out / "stack.log") as url:
        warm_up(url, WARM_UP_TIMEOUT_S)
        yield url


def _tiny_model() -> Path:
    """A random-weight tiny GLM model, built on first use: its answers run to max_tokens, which the
    scenarios' token figures assume (the trained demo model stops after a word)."""
    from services.tiny_models.model_builder import build_tiny_model

    home = Path(os.environ.get("FLASHVQA_HOME", Path.home() / ".cache" / "flashvqa"))
    model = home / "tiny-glm4v"
    if not (model / "config.json").is_file():
        build_tiny_model("glm4v", model)
    return model


def _summary(name: str, profile: Profile, table: str, missed: list[Check]) -> str:
    verdict = "\n".join(f"- missed: {check.describe()}" for check in missed) or "Every target met."
    return (
        f"# Load test: profile `{name}`\n\n{profile.description.strip()}\n\n"
        f"Steady phase {profile.steady_seconds} s, overload phase {profile.overload_seconds} s; answers of "
        f"{profile.max_tokens} tokens. Each figure is followed by its target; misses are in bold.\n\n"
        f"{table}\n{verdict}\n"
    )


def _verdict(name: str, judged: Judged, missed: list[Check]) -> dict[str, object]:
    return {
        "profile": name,
        "passed": not missed,
        "missed": [check.describe() for check in missed],
        "scenarios": {
            result.scenario.value: asdict(result)
            | {
                "checks": [
                    {
                        "metric": check.metric.label,
                        "measured": check.measured,
                        "target": check.bound,
                        "passed": check.passed,
                    }
                    for check in scenario_checks
                ],
            }
            for result, scenario_checks in judged
        },
    }


def _say(text: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
