"""One phase of the load test: headless locust, as a subprocess (locust monkey-patches the process it runs
in with gevent), with a bounded number of users and a bounded time; its CSV and HTML reports land in
the output folder under the phase's name."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from loadtest.scenarios import Scenario
from loadtest.targets import Profile

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
ROOT = LOCUSTFILE.parents[1]


class LocustError(RuntimeError):
    """locust itself failed, or the locustfile raised: the run measured nothing trustworthy."""


@dataclass(frozen=True)
class Phase:
    name: str
    users: dict[Scenario, int]
    seconds: int

    def csv_prefix(self, out: Path) -> Path:
        return out / self.name

    def command(self, url: str, profile: Profile, out: Path) -> list[str]:
        total = sum(self.users.values())
        user_settings = [
            {
                "user_class_name": scenario.user_class,
                "fixed_count": count,
                "max_tokens": profile.max_tokens,
                "think_time_s": profile.think_time_s,
                "network_timeout": profile.request_timeout_s,
                "connection_timeout": profile.request_timeout_s,
            }
            for scenario, count in self.users.items()
        ]
        return [
            sys.executable,
            "-m",
            "locust",
            "--locustfile",
            str(LOCUSTFILE),
            "--headless",
            "--host",
            url,
            "--users",
            str(total),
            "--spawn-rate",
            str(total),
            "--run-time",
            f"{self.seconds}s",
            # Requests still running at the end may finish (or time out, which counts): none is dropped.
            "--stop-timeout",
            str(round(profile.request_timeout_s) + 5),
            "--csv",
            str(self.csv_prefix(out)),
            "--csv-full-history",
            "--html",
            str(out / f"{self.name}.html"),
            "--config-users",
            json.dumps(user_settings),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",  # failures are for the verdict to judge; any other exit is a crash
            *(["--processes", str(profile.locust_processes)] if profile.locust_processes > 1 else []),
            *(scenario.user_class for scenario in self.users),
        ]


def run_phase(phase: Phase, url: str, profile: Profile, out: Path) -> None:
    """Runs the phase to its end; its files are in `out`, named by `phase.csv_prefix(out)`."""
    environment = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = out / f"{phase.name}.log"
    with log.open("wb") as output:
        finished = subprocess.run(
            phase.command(url, profile, out),
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=ROOT,
            check=False,
        )
    if finished.returncode != 0:
        raise LocustError(f"locust ({phase.name}) exited with {finished.returncode}; see {log}")
    with Path(f"{phase.csv_prefix(out)}_exceptions.csv").open(newline="") as file:
        exceptions = list(csv.DictReader(file))
    if exceptions:
        raise LocustError(f"the locustfile raised ({phase.name}): {exceptions[0]['Message']}; see {log}")
