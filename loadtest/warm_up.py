"""Before the clock starts: one streamed image question answered end to end.

`/health` says the gateway is up, not that the encoder and decoder replicas have finished starting, nor
that the gateway's Serve handles have learnt their replicas' queue lengths. Requests sent in that window
queue inside Serve, and a burst of them is refused with 503 (Serve's own `max_queued_requests`) although the
steady load is well inside capacity. A warm-up answer proves the whole path serves and pays its first-call
costs (the first torch forward, the first routing probes) outside the measured phases."""

from __future__ import annotations

import time

import httpx

from loadtest.images import picture
from loadtest.payloads import auth_headers, chat_body, user_message
from loadtest.sse import SSEStream

RETRY_STATUSES = (429, 503)  # refusals of a stack still starting: try again


class WarmUpFailed(RuntimeError):
    """The stack did not answer a streamed image question in time."""


def warm_up(url: str, timeout_s: float, max_tokens: int = 4) -> None:
    """Until one streamed image question is answered to `[DONE]`; refusals are retried until `timeout_s`."""
    body = chat_body([user_message(picture(0), "What is the total on this receipt?")], max_tokens, stream=True)
    headers = {"content-type": "application/json"} | auth_headers()
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        remaining = max(1.0, deadline - time.monotonic())
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", content=body, headers=headers, timeout=remaining
        ) as response:
            if response.status_code in RETRY_STATUSES:
                last = f"HTTP {response.status_code}: {response.read()[:200]!r}"
                time.sleep(0.5)
                continue
            if response.status_code != 200:
                raise WarmUpFailed(f"HTTP {response.status_code}: {response.read()[:200]!r}")
            events = SSEStream()
            for data in response.iter_bytes():
                events.feed(data)
            if not events.done:
                raise WarmUpFailed("the stream ended without [DONE]")
            return
    raise WarmUpFailed(f"no answer within {timeout_s:.0f} s (last: {last})")
