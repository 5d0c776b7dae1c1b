"""The message from the gateway to the vision encoder."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.messages.raw_image import RawImage
from services.telemetry.tracing import TraceCarrier


@dataclass(frozen=True)
class EncodeRequest:
    image: RawImage
    deadline: float | None = None  # wall-clock seconds; an image still queued then is dropped, not encoded
    trace_context: TraceCarrier = field(default_factory=dict)  # the gateway's span, parent of the encoder's

    @property
    def affinity_key(self) -> str:
        """An image goes to the replica whose embedding cache holds it (services/routing)."""
        return self.image.content_hash
