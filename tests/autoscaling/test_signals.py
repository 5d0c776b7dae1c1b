"""The per-replica numbers the replicas report add up to the pool's signal; no report is no signal."""

from __future__ import annotations

from services.autoscaling.pending_images import PendingImages
from services.autoscaling.signals import (
    KV_CACHE_USAGE,
    QUEUED_IMAGES,
    QUEUED_PIXELS,
    RUNNING_SEQUENCES,
    WAITING_SEQUENCES,
    DecoderSignal,
    EncoderSignal,
)


class TestEncoderSignal:
    def test_sums_the_replicas_and_estimates_what_waits_at_handles(self) -> None:
        metrics = {QUEUED_PIXELS: {"a": 300.0, "b": 100.0}, QUEUED_IMAGES: {"a": 3.0, "b": 1.0}}
        signal = EncoderSignal.from_metrics(metrics, queued_at_handles=2)
        assert signal == EncoderSignal(queued_pixels=400, queued_images=4, queued_at_handles=2)
        assert signal.total_pixels == 600

    def test_no_report_yet_is_no_signal(self) -> None:
        assert EncoderSignal.from_metrics({}, queued_at_handles=5) is None


class TestDecoderSignal:
    def test_counts_running_waiting_and_handle_queued_sequences(self) -> None:
        metrics = {
            RUNNING_SEQUENCES: {"a": 16.0, "b": 4.0},
            WAITING_SEQUENCES: {"a": 6.0, "b": 0.0},
            KV_CACHE_USAGE: {"a": 0.9, "b": 0.2},
        }
        signal = DecoderSignal.from_metrics(metrics, queued_at_handles=1)
        assert signal is not None
        assert signal.sequences == 27
        assert abs(signal.kv_cache_usage - 1.1) < 1e-9

    def test_no_report_yet_is_no_signal(self) -> None:
        assert DecoderSignal.from_metrics({QUEUED_PIXELS: {"a": 1.0}}, queued_at_handles=0) is None


class TestPendingImages:
    """An image counts from the moment the encoder accepts it until its batch is done, error or not."""

    def test_counts_only_while_held(self) -> None:
        pending = PendingImages()
        with pending.holding(512 * 512), pending.holding(100):
            assert pending.autoscaling_stats() == {QUEUED_PIXELS: 512 * 512 + 100, QUEUED_IMAGES: 2}
        assert pending.autoscaling_stats() == {QUEUED_PIXELS: 0, QUEUED_IMAGES: 0}

    def test_a_failed_encode_stops_counting(self) -> None:
        pending = PendingImages()
        try:
            with pending.holding(400):
                raise RuntimeError("the tower failed")
        except RuntimeError:
            pass
        assert pending.autoscaling_stats()[QUEUED_PIXELS] == 0
