"""The encoder replica's own load: the images it has accepted and not yet encoded, weighted by their pixels
(what a vision tower's time grows with: one image token per 28x28 pixels on GLM-4.6V)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.autoscaling.signals import QUEUED_IMAGES, QUEUED_PIXELS


class PendingImages:
    def __init__(self) -> None:
        self._images = 0
        self._pixels = 0

    @contextmanager
    def holding(self, pixels: int) -> Iterator[None]:
        """Counts one image, of `pixels`, for as long as the block runs (queued, then in its batch)."""
        self._images += 1
        self._pixels += pixels
        try:
            yield
        finally:
            self._images -= 1
            self._pixels -= pixels

    def autoscaling_stats(self) -> dict[str, float]:
        return {QUEUED_PIXELS: float(self._pixels), QUEUED_IMAGES: float(self._images)}
