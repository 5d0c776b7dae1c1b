"""What each pool reports to the Serve controller, and the pool-wide load its policy reads.

A replica returns its load from `record_autoscaling_stats` as `{metric name: number}`; the controller
averages each replica's samples over `look_back_period_s` and hands the policy one value per replica. The
requests that wait at the callers' handles (all replicas busy up to `max_ongoing_requests`) have not reached
any replica yet: Serve counts them separately, and the signals add them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

QUEUED_PIXELS = "queued_pixels"
QUEUED_IMAGES = "queued_images"
RUNNING_SEQUENCES = "running_sequences"
WAITING_SEQUENCES = "waiting_sequences"
KV_CACHE_USAGE = "kv_cache_usage"

# metric name -> {replica: its value over the look-back window}
ReplicaMetrics = Mapping[str, Mapping[Any, float]]


def _pool_total(metrics: ReplicaMetrics, name: str) -> float:
    return float(sum(metrics.get(name, {}).values()))


@dataclass(frozen=True)
class EncoderSignal:
    """Pixels the encoder pool still has to encode: images waiting for or inside a batch (cache hits and
    images another request is already encoding do not count), plus the requests queued at the handles."""

    queued_pixels: float
    queued_images: float
    queued_at_handles: float

    @classmethod
    def from_metrics(cls, metrics: ReplicaMetrics, queued_at_handles: float) -> EncoderSignal | None:
        """None until some replica has reported: no signal is not the same as no load."""
        if QUEUED_PIXELS not in metrics:
            return None
        return cls(_pool_total(metrics, QUEUED_PIXELS), _pool_total(metrics, QUEUED_IMAGES), queued_at_handles)

    @property
    def total_pixels(self) -> float:
        # A request still at a handle has not been decoded by anyone we can ask: count it at the mean size
        # of the images the replicas hold (there are some, or the handles would not be queueing).
        mean_pixels = self.queued_pixels / self.queued_images if self.queued_images else 0.0
        return self.queued_pixels + self.queued_at_handles * mean_pixels


@dataclass(frozen=True)
class DecoderSignal:
    """Sequences the decoder pool holds (decoding, or waiting for a slot), the requests queued at the
    handles, and the KV cache used, summed over replicas (a replica with a full cache adds 1.0)."""

    sequences: float
    kv_cache_usage: float

    @classmethod
    def from_metrics(cls, metrics: ReplicaMetrics, queued_at_handles: float) -> DecoderSignal | None:
        if RUNNING_SEQUENCES not in metrics:
            return None
        sequences = _pool_total(metrics, RUNNING_SEQUENCES) + _pool_total(metrics, WAITING_SEQUENCES)
        return cls(sequences + queued_at_handles, _pool_total(metrics, KV_CACHE_USAGE))
