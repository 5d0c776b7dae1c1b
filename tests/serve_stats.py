"""The decoder's engine stats of the Serve application running on this machine's Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

# Serve's handles do not survive reconnecting one process to a second cluster, so each look at the
# decoder's engine stats runs in a short-lived driver process of its own.
_STATS_PROBE = """
import json, sys, time, ray
from ray import serve
ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
handle = serve.get_deployment_handle("llm_decoder", app_name="flashvqa")
want_aborted, deadline = int(sys.argv[1]), time.monotonic() + float(sys.argv[2])
while True:
    stats = handle.stats.remote().result()
    done = stats.num_aborted >= want_aborted and stats.num_running == 0 and stats.num_waiting == 0
    if done or time.monotonic() > deadline:
        print(json.dumps(stats.__dict__))
        break
    time.sleep(0.1)
"""


def decoder_stats(wait_for_aborted: int = 0, timeout: float = 30) -> dict[str, Any]:
    """The decoder's engine stats, once it has aborted `wait_for_aborted` requests and gone idle
    (or the timeout passed)."""
    probe = subprocess.run(
        [sys.executable, "-c", _STATS_PROBE, str(wait_for_aborted), str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        check=True,
    )
    stats: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
    return stats
