"""One JSON line per API request, on the `flashvqa.requests` logger."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

logger = logging.getLogger("flashvqa.requests")


def log_request(fields: dict[str, Any]) -> None:
    if logger.isEnabledFor(logging.INFO):
        logger.info(json.dumps(fields, ensure_ascii=False, separators=(",", ":")))


def prompts_logged() -> bool:
    """Prompts (never images) go into the log line only with debug logging on for this logger."""
    return logger.isEnabledFor(logging.DEBUG)


def log_requests_to_stderr(level: int = logging.INFO) -> None:
    """The request log as bare JSON lines on stderr (what `flashvqa serve` does; a log shipper parses them)."""
    if not any(getattr(handler, "flashvqa_requests", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.flashvqa_requests = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
