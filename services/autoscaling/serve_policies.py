"""The policies as Serve calls them: classes named in `AutoscalingConfig.policy`, built once on the
controller with their `policy_kwargs` and called with an `AutoscalingContext` on every control-loop tick.
They only read the context into a signal and call the pure rule; until a replica has reported they keep the
current target."""

from __future__ import annotations

from typing import Any

from ray.serve.config import AutoscalingContext

from services.autoscaling.policies import decoder_replicas, encoder_replicas
from services.autoscaling.signals import DecoderSignal, EncoderSignal

PolicyDecision = tuple[float, dict[str, Any]]


class EncoderAutoscalingPolicy:
    def __init__(self, target_megapixels_per_replica: float) -> None:
        self._target_megapixels = target_megapixels_per_replica

    def __call__(self, ctx: AutoscalingContext) -> PolicyDecision:
        signal = EncoderSignal.from_metrics(ctx.aggregated_metrics or {}, ctx.total_queued_requests or 0.0)
        if signal is None:
            return ctx.target_num_replicas, {}
        return encoder_replicas(signal, self._target_megapixels), {}


class DecoderAutoscalingPolicy:
    def __init__(self, target_sequences_per_replica: float, target_kv_cache_usage: float) -> None:
        self._target_sequences = target_sequences_per_replica
        self._target_kv_cache_usage = target_kv_cache_usage

    def __call__(self, ctx: AutoscalingContext) -> PolicyDecision:
        signal = DecoderSignal.from_metrics(ctx.aggregated_metrics or {}, ctx.total_queued_requests or 0.0)
        if signal is None:
            return ctx.target_num_replicas, {}
        return decoder_replicas(signal, self._target_sequences, self._target_kv_cache_usage), {}
