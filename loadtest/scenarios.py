"""The load test's scenarios. Each is one user class of `locustfile.py` and one key of `targets.yaml`; this
module imports no locust (importing locust monkey-patches the whole process with gevent)."""

from __future__ import annotations

from enum import StrEnum


class Scenario(StrEnum):
    COLD = "cold"  # a new image every request: gateway, encoder and decoder all work
    CACHED = "cached"  # a few images and questions asked again and again: response cache hits
    CONVERSATION = "conversation"  # a question, then a follow-up about the same image
    STREAMING = "streaming"  # SSE, with time to first token
    MIXED_SIZES = "mixed-sizes"  # phone photos of several MB down to thumbnails
    MULTIPART = "multipart"  # POST /v1/vqa, the mobile clients' form upload
    OVERLOAD = "overload"  # more users than the stack can hold: refusals must be fast 429/503s

    @property
    def user_class(self) -> str:
        """The locustfile's class for it: `mixed-sizes` -> `MixedSizesUser`."""
        return "".join(part.title() for part in self.value.split("-")) + "User"

    @property
    def refused_name(self) -> str:
        """The stats name under which this scenario's 429 and 503 answers are counted (as successes)."""
        return f"{self.value} refused"


TTFT = "TTFT"  # the stats type of time-to-first-token entries; a request's own entry has its method ("POST")
