"""The knobs become an `AutoscalingConfig` Serve accepts, whose policy Serve can load and call with its own
`AutoscalingContext`: the targets reach the policy, and the replicas' reports drive its answer."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from pydantic import ValidationError
from ray.serve._private.common import DeploymentID
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from services.app_builder import AppArgs
from services.autoscaling import DecoderAutoscaling, EncoderAutoscaling
from services.autoscaling.signals import (
    KV_CACHE_USAGE,
    QUEUED_IMAGES,
    QUEUED_PIXELS,
    RUNNING_SEQUENCES,
    WAITING_SEQUENCES,
)
from services.serve_config import load_application


def _serve_config(knobs: dict[str, Any]) -> AutoscalingConfig:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # metrics_interval_s: still Serve's only push knob
        return AutoscalingConfig(**knobs)


def _context(
    config: AutoscalingConfig,
    metrics: dict[str, dict[str, float]] | None,
    target: int = 1,
    queued_at_handles: float = 0,
) -> AutoscalingContext:
    return AutoscalingContext(
        deployment_id=DeploymentID(name="pool", app_name="flashvqa"),
        deployment_name="pool",
        app_name="flashvqa",
        current_num_replicas=target,
        target_num_replicas=target,
        running_replicas=[],
        total_num_requests=0,
        total_queued_requests=queued_at_handles,
        aggregated_metrics=metrics,
        raw_metrics={},
        capacity_adjusted_min_replicas=config.min_replicas,
        capacity_adjusted_max_replicas=config.max_replicas,
        policy_state={},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=0.0,
        config=config,
    )


def _policy(config: AutoscalingConfig) -> Any:
    """The policy as Serve's controller builds it: unpickled, then instantiated with its kwargs."""
    return config.policy.get_policy()(**config.policy.policy_kwargs)


class TestEncoderPolicyInServe:
    def test_the_target_reaches_the_policy_and_pixels_drive_it(self) -> None:
        config = _serve_config(EncoderAutoscaling(max_replicas=4, target_megapixels_per_replica=0.5).serve_config())
        assert (config.min_replicas, config.max_replicas) == (1, 4)
        metrics = {QUEUED_PIXELS: {"r1": 1.2e6, "r2": 0.3e6}, QUEUED_IMAGES: {"r1": 4, "r2": 1}}
        desired, _ = _policy(config)(_context(config, metrics))
        assert desired == pytest.approx(3)

    def test_before_any_report_it_keeps_the_current_target(self) -> None:
        config = _serve_config(EncoderAutoscaling(max_replicas=4).serve_config())
        assert _policy(config)(_context(config, None, target=3))[0] == 3


class TestDecoderPolicyInServe:
    def test_sequences_and_handle_queue_drive_it(self) -> None:
        knobs = DecoderAutoscaling(max_replicas=8, target_sequences_per_replica=4, target_kv_cache_usage=0.9)
        config = _serve_config(knobs.serve_config())
        metrics = {RUNNING_SEQUENCES: {"r1": 8}, WAITING_SEQUENCES: {"r1": 2}, KV_CACHE_USAGE: {"r1": 0.3}}
        desired, _ = _policy(config)(_context(config, metrics, queued_at_handles=2))
        assert desired == pytest.approx(3)

    def test_an_encoder_report_is_no_decoder_signal(self) -> None:
        config = _serve_config(DecoderAutoscaling(max_replicas=8).serve_config())
        assert _policy(config)(_context(config, {QUEUED_PIXELS: {"r1": 9e6}}, target=2))[0] == 2


class TestKnobs:
    def test_delays_and_bounds_are_serve_s_own(self) -> None:
        config = _serve_config(
            EncoderAutoscaling(min_replicas=0, max_replicas=2, upscale_delay_s=1, downscale_delay_s=5).serve_config()
        )
        assert (config.min_replicas, config.upscale_delay_s, config.downscale_delay_s) == (0, 1, 5)

    @pytest.mark.parametrize(
        "bad",
        [
            {"min_replicas": 3, "max_replicas": 2},
            {"target_ongoing_requests": 8},  # Serve's request-count policy is the wrong signal for this pool
            {"target_megapixels_per_replica": 0},
            {"look_back_period_s": 10},  # no longer than Serve's 10 s push period: one report per window
            {"look_back_period_s": 2, "metrics_interval_s": 2},
        ],
    )
    def test_bad_encoder_knobs_are_refused(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            EncoderAutoscaling.model_validate(bad)

    def test_kv_cache_target_is_a_fraction(self) -> None:
        with pytest.raises(ValidationError):
            DecoderAutoscaling(target_kv_cache_usage=1.5)


@pytest.mark.parametrize("pool", ["encoder", "decoder"])
def test_the_shipped_configs_satisfy_serve_without_a_warning(pool: str) -> None:
    """Serve warns at every start of a window no longer than the push period, and means to refuse it."""
    args = AppArgs.model_validate(load_application().args)
    knobs = getattr(args, pool).autoscaling_config
    for window in ({}, {"look_back_period_s": 3, "metrics_interval_s": 0.5}):  # the file's, the local scenario's
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.filterwarnings("ignore", "The `metrics_interval_s` field", DeprecationWarning)
            AutoscalingConfig(**type(knobs).model_validate(knobs.model_dump() | window).serve_config())
