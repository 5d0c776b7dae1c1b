"""The message from the gateway to the vision encoder."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.raw_image import RawImage


@dataclass(frozen=True)
class EncodeRequest:
    image: RawImage
    deadline: float | None = None  # wall-clock seconds; an image still queued then is dropped, not encoded
