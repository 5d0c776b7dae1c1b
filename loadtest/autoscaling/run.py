"""Run the autoscaling scenario on a local Ray and judge it.

    python -m loadtest.autoscaling.run --out loadtest/reports/autoscaling

Image-heavy, then decode-heavy, then image-heavy load, then idle, against the stack with small bounds and
short delays (scenario.CI). Writes timeline.json (replica counts and every request), autoscaling.png and
verdict.txt to --out. Exit status: 0 when every check passes, 1 when one fails (each is named), 2 when the
run itself failed."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from loadtest.autoscaling.local_serve import ReplicaCounter, local_serve
from loadtest.autoscaling.plot import plot_timeline
from loadtest.autoscaling.scenario import CI, MAX_REPLICAS, Scenario
from loadtest.autoscaling.timeline import Timeline, phase_spans
from loadtest.autoscaling.traffic import Traffic
from loadtest.autoscaling.verdict import checks
from services.serve_config import load_application

ROOT = Path(__file__).parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the autoscaling scenario on a local Ray")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "tiny-glm4v")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtest" / "reports" / "autoscaling")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        timeline = record(args.model, CI)
    except Exception as error:  # the stack did not come up, or Serve failed under us: no verdict to give
        sys.stderr.write(f"autoscaling scenario: error: {error!r}\n")
        return 2
    timeline.write(args.out / "timeline.json")
    plot_timeline(timeline, args.out / "autoscaling.png")
    found = checks(timeline, CI.reaction_s)
    report = "\n".join(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}" for check in found)
    (args.out / "verdict.txt").write_text(report + "\n")
    sys.stdout.write(report + "\n")
    return 0 if all(check.passed for check in found) else 1


def record(model: Path, scenario: Scenario) -> Timeline:
    with local_serve(model, scenario.serve_overrides) as url:
        counter = ReplicaCounter(load_application().name)
        origin = time.monotonic()
        traffic = Traffic(url, scenario, origin)
        counter.start(origin)
        try:
            asyncio.run(traffic.run())
        finally:
            counter.stop()
    return Timeline(
        phase_spans(scenario.phases), counter.samples, traffic.records, min_replicas=1, max_replicas=MAX_REPLICAS
    )


if __name__ == "__main__":
    sys.exit(main())
