"""How the gateway reaches the vision encoder and the LLM decoder.

`Backends` is the seam between the gateway's logic and Ray. One call answers one request: it starts the
request's image encodes, hands them unresolved to the decoder and streams the decoder's outputs, and when the
stream ends early (an error, the deadline, a client that went away) it cancels whatever encodes are still
queued or running, so that no work outlives its caller. In production the Ray implementation passes each
encoder response straight into the decoder call, so image embeddings flow from the encoder's object store to
the decoder without passing through the gateway process. `services/in_process_backends.py` runs the
gateway against the same encoder and engine without Ray (imported only by the in-process app).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from services.messages import AdapterRef, DecodeRequest, EncodeRequest, RequestOutput


class Backends(Protocol):
    def generate(self, request: DecodeRequest, images: list[EncodeRequest]) -> AsyncIterator[RequestOutput]:
        """Encode `images` and stream the decoder's outputs; closing the iterator aborts the request and its
        encodes."""

    async def check_adapter(self, ref: AdapterRef) -> None:
        """Have a decoder replica read and register `ref`'s adapter. Raises AdapterLoadError."""
