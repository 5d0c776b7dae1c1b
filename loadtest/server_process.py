"""A server process on this machine, as the load tests, the benchmarks and the end-to-end tests start one:
a free loopback port for it, and waiting until it answers `/health`."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


class ServerNotHealthy(RuntimeError):
    """The server exited, or did not answer `/health` in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Until `url`/health answers 200; raises ServerNotHealthy if `process` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerNotHealthy(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise ServerNotHealthy(f"the server was not healthy within {timeout_s:.0f} s")
