"""Waiting, in tests, for something that happens on another thread (an engine step, a server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, message: str = "condition not reached in time"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.01)


def wait_until_idle(app: FastAPI) -> None:
    """Until the in-process app's engine runs and holds no sequence (a refused or aborted one was freed)."""
    stats = app.state.engine.stats
    wait_until(lambda: not (stats().num_running or stats().num_waiting), message="the sequence was not freed")
