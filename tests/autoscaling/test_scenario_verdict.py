"""The scenario's judge and plot, on made-up timelines: a pool that follows the other's load, a pool left
scaled up after the idle phase, or one failed request each fail the run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from loadtest.autoscaling.local_serve import ReplicaSample
from loadtest.autoscaling.plot import plot_timeline
from loadtest.autoscaling.scenario import Load
from loadtest.autoscaling.timeline import PhaseSpan, Timeline
from loadtest.autoscaling.traffic import RequestRecord
from loadtest.autoscaling.verdict import DECODER, ENCODER, checks

PHASES = [
    PhaseSpan(Load.IMAGE_HEAVY, 8, 0, 20),
    PhaseSpan(Load.DECODE_HEAVY, 8, 20, 40),
    PhaseSpan(Load.IDLE, 0, 40, 60),
]
REACTION_S = 5.0


def _counts(second: float) -> tuple[int, int]:
    """(encoder, decoder) replicas of a run where each pool follows its own load."""
    if 5 <= second < 25:
        return (2, 1)
    if 25 <= second < 35:
        return (1, 3)
    return (1, 1)


def _timeline(counts: Callable[[float], tuple[int, int]] = _counts, failed_at: float | None = None) -> Timeline:
    samples = []
    for tenth in range(600):
        encoder, decoder = counts(tenth / 10)
        pools = {ENCODER: encoder, DECODER: decoder}
        samples.append(ReplicaSample(tenth / 10, pools, pools))
    requests = [
        RequestRecord(
            0 if second < 20 else 1,
            second,
            0.4,
            ok=second != failed_at,
            error="" if second != failed_at else "RemoteProtocolError: dropped",
        )
        for second in range(40)
    ]
    return Timeline(PHASES, samples, requests, min_replicas=1, max_replicas=3)


def _failed(timeline: Timeline) -> list[str]:
    return [check.name for check in checks(timeline, REACTION_S) if not check.passed]


class TestVerdict:
    def test_pools_that_follow_their_own_load_pass(self) -> None:
        assert _failed(_timeline()) == []

    def test_a_decoder_that_grows_under_image_heavy_load_fails(self) -> None:
        def decoder_follows_images(second: float) -> tuple[int, int]:
            encoder, decoder = _counts(second)
            return (encoder, 2) if 10 <= second < 15 else (encoder, decoder)

        assert _failed(_timeline(decoder_follows_images)) == ["phase 1 (image-heavy): llm_decoder does not"]

    def test_growth_within_the_reaction_time_is_the_previous_load(self) -> None:
        def encoder_late(second: float) -> tuple[int, int]:
            encoder, decoder = _counts(second)
            return (3, decoder) if 20 <= second < 23 else (encoder, decoder)

        assert _failed(_timeline(encoder_late)) == []

    def test_a_pool_that_stays_up_under_the_other_s_load_fails(self) -> None:
        def encoder_stays(second: float) -> tuple[int, int]:
            encoder, decoder = _counts(second)
            return (2, decoder) if 5 <= second < 40 else (encoder, decoder)

        assert _failed(_timeline(encoder_stays)) == [
            "phase 2 (decode-heavy): vision_encoder back at the minimum by its end"
        ]

    def test_an_encoder_that_never_scales_fails(self) -> None:
        assert "phase 1 (image-heavy): vision_encoder scales up" in _failed(_timeline(lambda s: (1, _counts(s)[1])))

    def test_a_pool_left_scaled_up_when_idle_fails(self) -> None:
        def decoder_left_up(second: float) -> tuple[int, int]:
            encoder, decoder = _counts(second)
            return (encoder, 2) if second >= 50 else (encoder, decoder)

        assert _failed(_timeline(decoder_left_up)) == ["phase 3 (idle): both pools back at the minimum"]

    def test_one_failed_request_fails_the_run(self) -> None:
        assert _failed(_timeline(failed_at=21)) == ["no request failed"]


def test_the_timeline_round_trips_and_plots(tmp_path: Path) -> None:
    timeline = _timeline(failed_at=3)
    timeline.write(tmp_path / "timeline.json")
    assert Timeline.read(tmp_path / "timeline.json") == timeline
    plot_timeline(timeline, tmp_path / "autoscaling.png")
    with Image.open(tmp_path / "autoscaling.png") as image:
        assert image.format == "PNG" and image.width >= 1000
