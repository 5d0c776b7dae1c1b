"""A burst: many requests sent at the same instant, and what became of each (answered, refused, failed), with
how long each took. The overload benchmark (`bench.burst_benchmark`) and the chaos tests use it."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Outcome:
    status: int | None  # None: no HTTP answer (the client's timeout, a dropped connection)
    seconds: float
    openai_error_form: bool  # for an error status: the body is {"error": {"message", "type", ...}}
    retry_after: bool  # for a 429/503: a Retry-After header came with it

    @property
    def answered(self) -> bool:
        return self.status == 200

    @property
    def refused(self) -> bool:
        return self.status in (429, 503)


@dataclass(frozen=True)
class BurstSummary:
    outcomes: Sequence[Outcome]

    @property
    def answered(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.answered]

    @property
    def refused(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.refused]

    @property
    def others(self) -> list[Outcome]:
        """Neither answered nor refused: a 5xx other than 503, a 504, a client-side timeout, a 4xx."""
        return [outcome for outcome in self.outcomes if not outcome.answered and not outcome.refused]

    @property
    def malformed_refusals(self) -> list[Outcome]:
        return [outcome for outcome in self.refused if not (outcome.openai_error_form and outcome.retry_after)]

    def figures(self) -> dict[str, float | int | dict[str, int]]:
        """Counts, and latency P50/P99 (nearest rank) of the refused and of the answered requests."""
        figures: dict[str, float | int | dict[str, int]] = {
            "sent": len(self.outcomes),
            "answered": len(self.answered),
            "refused": len(self.refused),
            "other": len(self.others),
            "malformed_refusals": len(self.malformed_refusals),
            "other_statuses": dict(Counter(str(outcome.status) for outcome in self.others)),
        }
        for name, outcomes in (("refusal", self.refused), ("answered", self.answered)):
            values = sorted(outcome.seconds for outcome in outcomes)
            for label, fraction in (("p50", 0.5), ("p99", 0.99)):
                if values:
                    figures[f"{name}_{label}_s"] = round(values[min(len(values) - 1, int(fraction * len(values)))], 3)
        return figures


async def fire(
    url: str, bodies: Sequence[bytes], timeout_s: float, headers: dict[str, str] | None = None
) -> BurstSummary:
    """POST every body to `url`/v1/chat/completions at once, each on a connection of its own, and wait for all.

    HTTP/1.1 written and read by hand over asyncio streams: a general client (httpx) spends about 1.7 ms of
    CPU per request here, so that 300 of them took half a second to send, and the client, not the server,
    set the refusals' latency."""
    address = urlsplit(url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    requests = [
        (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    start = asyncio.Event()
    tasks = [asyncio.ensure_future(_one(host, port, request, timeout_s, start)) for request in requests]
    await asyncio.sleep(0)  # every task is waiting at the line
    start.set()
    return BurstSummary(await asyncio.gather(*tasks))


async def _one(host: str, port: int, request: bytes, timeout_s: float, start: asyncio.Event) -> Outcome:
    await start.wait()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(request)
                response = await reader.read(-1)  # `connection: close`: the answer ends with the stream
            finally:
                writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
    except (OSError, TimeoutError, ValueError, IndexError):
        return Outcome(None, time.perf_counter() - started, openai_error_form=False, retry_after=False)
    seconds = time.perf_counter() - started
    header_names = {line.partition(":")[0].strip().lower() for line in lines[1:]}
    if "transfer-encoding" in header_names:
        body = _unchunked(body)
    return Outcome(status, seconds, _is_openai_error(body), "retry-after" in header_names)


def _unchunked(body: bytes) -> bytes:
    data = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        data, body = data + rest[:size], rest[size + 2 :]
    return data


def _is_openai_error(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and {"message", "type"} <= error.keys()
