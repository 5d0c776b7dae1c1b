"""A request's deadline as it travels between processes: wall-clock seconds (`time.time()`), since each
process's event loop keeps its own clock."""

from __future__ import annotations

import time


class DeadlineExceededError(TimeoutError):
    """The request's deadline passed while its work was still queued: the work was skipped."""


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def raise_if_expired(deadline: float | None, what: str) -> None:
    if expired(deadline):
        raise DeadlineExceededError(f"the request's deadline passed before {what}")
