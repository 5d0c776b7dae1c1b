"""What the scenario sends and for how long, and the Serve arguments it runs the stack with: small bounds
and short delays, so that a whole shift of load and back fits in a CI job on a few CPU cores."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Load(Enum):
    IMAGE_HEAVY = "image-heavy"  # a new large picture every request, a two-token answer: the encoder's work
    DECODE_HEAVY = "decode-heavy"  # the same (cached) picture, a long answer: the decoder's work
    IDLE = "idle"


@dataclass(frozen=True)
class Phase:
    load: Load
    seconds: float
    users: int = 0  # concurrent clients, each sending its next request as soon as the last one ends


@dataclass(frozen=True)
class Scenario:
    phases: tuple[Phase, ...]
    image_heavy_max_tokens: int
    decode_heavy_max_tokens: int
    serve_overrides: dict[str, Any]
    reaction_s: float  # after a shift, how long the pools may still act on the previous load

    @property
    def seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)


MAX_REPLICAS = 3
# 1280x720: a screenshot, 0.92 Mpx, about 72 ms of the tiny vision tower on one of these cores (a 512x512
# picture takes 20 ms, too little next to the gateway's own work on each upload to load the encoder first).
SCREENSHOT_PIXELS = 1280 * 720
_FAST_AUTOSCALING = {
    "min_replicas": 1,
    "max_replicas": MAX_REPLICAS,
    "upscale_delay_s": 2,
    "downscale_delay_s": 8,
    "look_back_period_s": 3,
    "metrics_interval_s": 0.5,
}

CI = Scenario(
    phases=(
        # Long enough for the reaction (~7 s) plus a replica's start on a busy 2-core machine (23-42 s measured
        # under this load: a new worker process importing torch and transformers while eight users keep both
        # cores busy, the slowest the first start after a fresh install), and for the other pool to drain back
        # to its minimum (reaction + downscale delay, ~15 s).
        Phase(Load.IMAGE_HEAVY, 60, users=8),
        Phase(Load.DECODE_HEAVY, 60, users=8),
        Phase(Load.IMAGE_HEAVY, 60, users=8),
        Phase(Load.IDLE, 20),
    ),
    # The mean over the look-back window, the upscale delay and one report's travel, with a second to spare.
    reaction_s=_FAST_AUTOSCALING["look_back_period_s"]
    + _FAST_AUTOSCALING["upscale_delay_s"]
    + _FAST_AUTOSCALING["metrics_interval_s"]
    + 1,
    image_heavy_max_tokens=2,
    decode_heavy_max_tokens=96,
    serve_overrides={
        # Six replicas and a gateway on a shared 2-core machine: Ray's CPU accounting must not be what stops them.
        "encoder": {
            "autoscaling_config": _FAST_AUTOSCALING | {"target_megapixels_per_replica": 0.9},
            "ray_actor_options": {"num_cpus": 0.25},
        },
        # Eight decode-heavy users ask for three replicas. A screenshot is ~1,150 prompt tokens: at the CPU's
        # default step budget (192) its prefill takes six steps, and once three encoder replicas feed it, one
        # decoder replica held enough prompts to ask for a second under image-heavy load. One step per prompt
        # and a target of 3.5 keep image-heavy load the encoder's.
        "decoder": {
            "autoscaling_config": _FAST_AUTOSCALING | {"target_sequences_per_replica": 3.5},
            "max_num_batched_tokens": 2048,
            "ray_actor_options": {"num_cpus": 0.25},
            "graceful_shutdown_timeout_s": 60,
        },
        "gateway": {
            "max_pixels": SCREENSHOT_PIXELS,
            "ray_actor_options": {"num_cpus": 0.25},
            "max_queued_requests": -1,
        },
    },
)
