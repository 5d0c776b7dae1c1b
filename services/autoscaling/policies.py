"""The two pools' scaling rules as pure functions of their load: the desired replica count, a float that
Serve rounds up and bounds. Serve itself applies `min_replicas`/`max_replicas`, the up/down delays and the
scaling factors around them (see `serve_policies.py`)."""

from __future__ import annotations

from services.autoscaling.signals import DecoderSignal, EncoderSignal


def encoder_replicas(signal: EncoderSignal, target_megapixels_per_replica: float) -> float:
    """Enough replicas that each holds about `target_megapixels_per_replica` of images still to encode."""
    if target_megapixels_per_replica <= 0:
        raise ValueError(f"target_megapixels_per_replica must be positive, not {target_megapixels_per_replica}")
    return signal.total_pixels / (target_megapixels_per_replica * 1e6)


def decoder_replicas(signal: DecoderSignal, target_sequences_per_replica: float, target_kv_cache_usage: float) -> float:
    """Enough replicas for the sequences (decode slots) or for their KV cache, whichever needs more:
    a pool of long contexts fills its caches before its slots."""
    if not (target_sequences_per_replica > 0 and 0 < target_kv_cache_usage <= 1):
        raise ValueError(
            "target_sequences_per_replica must be positive and target_kv_cache_usage in (0, 1], not "
            f"{target_sequences_per_replica} and {target_kv_cache_usage}"
        )
    return max(signal.sequences / target_sequences_per_replica, signal.kv_cache_usage / target_kv_cache_usage)
