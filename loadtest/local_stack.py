"""The stack the runner starts when it is given no URL: serve_config.yaml's application on a local Ray,
deployed as `flashvqa serve` deploys it, plus the profile's capacity overrides (a small decoder queue, so
that a bounded number of users can overload it). `flashvqa serve` takes no Serve arguments, hence this
module's own entry point (`python -m loadtest.local_stack`), which the runner starts in a session of its
own and ends with SIGTERM; no Ray process may outlive it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadtest.server_process import ServerNotHealthy, free_port, wait_healthy
from services.local_server import serve_until_signalled
from services.serve_config import load_application, local_args, merge

STARTUP_TIMEOUT_S = 240
SHUTDOWN_TIMEOUT_S = 90


class StackError(RuntimeError):
    """The local stack did not come up."""


class LocalStack:
    """`with LocalStack(model, overrides, log) as url:` serves on a free loopback port until the block ends."""

    def __init__(self, model: Path, overrides: dict[str, Any], log: Path) -> None:
        self._model = model
        self._overrides = overrides
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "loadtest.local_stack",
            "--model",
            str(self._model),
            "--port",
            str(port),
            "--overrides",
            json.dumps(self._overrides),
        ]
        with self._log.open("wb") as output:
            self._process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, self._process, STARTUP_TIMEOUT_S)
        except ServerNotHealthy as error:
            self._stop()
            raise StackError(f"{error}; see {self._log}") from None
        except BaseException:
            self._stop()
            raise
        return url

    def __exit__(self, *_: object) -> None:
        self._stop()

    def _stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        _wait_group_gone(process.pid)


def _wait_group_gone(pgid: int) -> None:
    """Ray's daemons were started in the stack's session; kill what is still there after a grace period."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(pgid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description="serve_config.yaml's application with overrides, on a local Ray")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--overrides", type=json.loads, default={}, help="Serve app args, as JSON")
    args = parser.parse_args()
    application = load_application().with_args(merge(local_args(args.model), args.overrides))
    serve_until_signalled(application, "127.0.0.1", args.port)


if __name__ == "__main__":
    main()
