"""Running a command that starts a local Ray in a process session of its own, so that none of Ray's daemons
outlives it, whatever way it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run_in_own_session(command: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=timeout_s)
    finally:
        kill_group(process.pid)
    return subprocess.CompletedProcess(command, process.returncode, output)


def group_gone(pgid: int, within_s: float = 15) -> bool:
    """Whether every process of the session has exited, waiting up to `within_s` for a clean shutdown."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def kill_group(pgid: int) -> None:
    """After a grace period for a clean shutdown, kill whatever of the session is left."""
    if not group_gone(pgid):
        os.killpg(pgid, signal.SIGKILL)
