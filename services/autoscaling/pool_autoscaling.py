"""The autoscaling knobs of the encoder and decoder pools, as `build_app` takes them (serve_config.yaml,
the chart's `serve.<pool>.autoscaling`), and the Serve `autoscaling_config` they become."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray.serve.config import DEFAULT_METRICS_INTERVAL_S as SERVE_METRICS_INTERVAL_S

from services.autoscaling.serve_policies import DecoderAutoscalingPolicy, EncoderAutoscalingPolicy


class PoolAutoscaling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0, description="replicas kept when idle; 0 lets the pool go cold")
    max_replicas: int = Field(1, ge=1, description="the most the pool grows to (each one a GPU on a cluster)")
    initial_replicas: int | None = Field(None, ge=0, description="replicas at deploy time; min_replicas when null")
    upscale_delay_s: float = Field(
        10.0, ge=0, description="how long the load must ask for more replicas before they are added"
    )
    downscale_delay_s: float = Field(
        120.0, ge=0, description="how long the load must ask for fewer before a replica is drained and stopped"
    )
    look_back_period_s: float = Field(
        20.0, gt=0, description="each replica's load is averaged over this window; longer than metrics_interval_s"
    )
    # Serve 2.60 reads the replicas' push period only from here (its environment variables are not wired
    # yet) and warns that the field is deprecated: set it only where a faster reaction is worth the warning.
    metrics_interval_s: float | None = Field(
        None, gt=0, description="how often replicas send their load to the controller; null: Serve's 10 s"
    )

    @model_validator(mode="after")
    def _bounds_in_order(self) -> PoolAutoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is greater than max_replicas ({self.max_replicas})")
        # A window no longer than the push period averages at most one report; Serve warns of it today and
        # means to refuse it.
        push_period_s = self.metrics_interval_s or SERVE_METRICS_INTERVAL_S
        if self.look_back_period_s <= push_period_s:
            raise ValueError(
                f"look_back_period_s ({self.look_back_period_s}) must be greater than the "
                f"replicas' push period, metrics_interval_s ({push_period_s})"
            )
        return self

    def _serve_config(self, policy: type, policy_kwargs: dict[str, float]) -> dict[str, Any]:
        config = self.model_dump(include=set(PoolAutoscaling.model_fields), exclude_none=True)
        config["policy"] = {"policy_function": f"{policy.__module__}:{policy.__name__}", "policy_kwargs": policy_kwargs}
        return config


class EncoderAutoscaling(PoolAutoscaling):
    target_megapixels_per_replica: float = Field(
        2.0,
        gt=0,
        description="pixels of images queued or in a batch per replica that Serve aims for (cache hits "
        "and images already being encoded for another request do not count)",
    )

    def serve_config(self) -> dict[str, Any]:
        return self._serve_config(
            EncoderAutoscalingPolicy, {"target_megapixels_per_replica": self.target_megapixels_per_replica}
        )


class DecoderAutoscaling(PoolAutoscaling):
    target_sequences_per_replica: float = Field(
        12.0, gt=0, description="sequences decoding or waiting for a slot per replica that Serve aims for"
    )
    target_kv_cache_usage: float = Field(
        0.8, gt=0, le=1, description="mean KV cache use per replica above which Serve adds replicas"
    )

    def serve_config(self) -> dict[str, Any]:
        return self._serve_config(
            DecoderAutoscalingPolicy,
            {
                "target_sequences_per_replica": self.target_sequences_per_replica,
                "target_kv_cache_usage": self.target_kv_cache_usage,
            },
        )
