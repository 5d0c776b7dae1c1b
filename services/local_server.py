"""`flashvqa serve`: a local Ray, the three deployments, and a clean exit on Ctrl-C or SIGTERM."""

from __future__ import annotations

import importlib
import os
import signal
import threading
from collections.abc import Callable

from services.serve_config import ServeApplication

SERVE_SHUTDOWN_TIMEOUT_S = 30
# Not RAY_SERVE_THROUGHPUT_OPTIMIZED: on this kind of host it saved under 10 ms of time to first token
# (within noise) and made shutdown wait out the controller's 30 s timeout.
SERVE_ENVIRONMENT = {
    # Ray starts workers at niceness 15 by default; serving replicas must not yield to everything else.
    "RAY_worker_niceness": "0",
    # Replicas share the cores: OpenMP threads that spin while idle would steal them from each other.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def serve_until_signalled(
    application: ServeApplication, host: str, port: int, on_ready: Callable[[], None] | None = None
) -> None:
    import ray
    from ray import serve

    module, _, builder = application.import_path.partition(":")
    build_app = getattr(importlib.import_module(module), builder)

    from services.app_builder import proxy_door_environment

    # Inherited by every Ray process started below (Serve's proxy reads its door from there).
    for name, value in (SERVE_ENVIRONMENT | proxy_door_environment(application.args)).items():
        os.environ.setdefault(name, value)
    # Replicas ask for one logical CPU each; a laptop has enough cores to share, so offer at least four.
    ray.init(num_cpus=max(os.cpu_count() or 1, 4), include_dashboard=False, configure_logging=False)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs handlers of its own
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(application.args), name=application.name, route_prefix=application.route_prefix)
        if on_ready is not None:
            on_ready()
        stop.wait()
    finally:
        # A SIGTERM sent to the whole process group (systemd, `timeout`) has already killed Ray's own
        # daemons, and then Serve's graceful shutdown would wait forever: give it a bounded time.
        stopper = threading.Thread(target=serve.shutdown, daemon=True)
        stopper.start()
        stopper.join(timeout=SERVE_SHUTDOWN_TIMEOUT_S)
        ray.shutdown()
