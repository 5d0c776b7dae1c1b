"""The stack on a Ray of its own, in this process (so that Serve's view of each pool is at hand), and the
replica counts of both GPU pools read from it while the load runs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.server_process import free_port
from services.local_server import SERVE_ENVIRONMENT, SERVE_SHUTDOWN_TIMEOUT_S
from services.serve_config import load_application, local_args, merge

POOLS = ("vision_encoder", "llm_decoder")


@dataclass(frozen=True)
class ReplicaSample:
    seconds: float  # since the scenario's clock started
    running: dict[str, int]  # pool -> replicas serving
    total: dict[str, int]  # pool -> replicas in any state (starting, serving, being drained)


@contextmanager
def local_serve(model: Path, overrides: dict[str, Any]) -> Iterator[str]:
    """serve_config.yaml's application with `overrides`, on a new local Ray; yields its URL. Everything Ray
    started is gone when the block ends."""
    import ray
    from ray import serve

    from services.app_builder import build_app

    for name, value in SERVE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    application = load_application().with_args(merge(local_args(model), overrides))
    port = free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, configure_logging=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(application.args), name=application.name, route_prefix=application.route_prefix)
        yield f"http://127.0.0.1:{port}"
    finally:
        stopper = threading.Thread(target=serve.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout=SERVE_SHUTDOWN_TIMEOUT_S)
        ray.shutdown()


class ReplicaCounter:
    """Samples `serve.status()` every `period_s` in a thread, from `start()` until `stop()`."""

    def __init__(self, app_name: str, period_s: float = 0.5) -> None:
        self._app_name = app_name
        self._period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._origin = 0.0
        self.samples: list[ReplicaSample] = []

    def start(self, origin: float) -> None:
        self._origin = origin
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample_until_stopped(self) -> None:
        from ray import serve

        while not self._stop.wait(self._period_s):
            deployments = serve.status().applications[self._app_name].deployments
            running, total = {}, {}
            for pool in POOLS:
                states = deployments[pool].replica_states  # ReplicaState is a str enum
                running[pool] = sum(count for state, count in states.items() if state == "RUNNING")
                total[pool] = sum(states.values())
            self.samples.append(ReplicaSample(time.monotonic() - self._origin, running, total))
