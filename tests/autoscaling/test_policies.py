"""Each pool's rule reads only its own load: pixels to encode for the encoder, sequences and KV cache for the
decoder. A load that costs one pool nothing leaves that pool's count alone."""

from __future__ import annotations

import pytest

from services.autoscaling.policies import decoder_replicas, encoder_replicas
from services.autoscaling.signals import DecoderSignal, EncoderSignal

MEGAPIXEL = 1_000_000


class TestEncoderReplicas:
    """Desired replicas = pixels waiting to be encoded / the target per replica."""

    def test_scales_with_the_pixels_not_the_number_of_images(self) -> None:
        thumbnails = EncoderSignal(queued_pixels=8 * 160 * 120, queued_images=8, queued_at_handles=0)
        photos = EncoderSignal(queued_pixels=2 * 2 * MEGAPIXEL, queued_images=2, queued_at_handles=0)
        assert encoder_replicas(thumbnails, target_megapixels_per_replica=1) < 1
        assert encoder_replicas(photos, target_megapixels_per_replica=1) == pytest.approx(4)

    def test_requests_queued_at_handles_count_at_the_mean_image_size(self) -> None:
        signal = EncoderSignal(queued_pixels=3 * MEGAPIXEL, queued_images=3, queued_at_handles=3)
        assert encoder_replicas(signal, target_megapixels_per_replica=2) == pytest.approx(3)

    def test_nothing_to_encode_asks_for_none(self) -> None:
        assert encoder_replicas(EncoderSignal(0, 0, 0), target_megapixels_per_replica=1) == 0


class TestDecoderReplicas:
    """Desired replicas = the larger of sequences / target and KV cache use / target."""

    def test_sequences_drive_it_when_the_caches_have_room(self) -> None:
        signal = DecoderSignal(sequences=30, kv_cache_usage=0.5)
        assert decoder_replicas(signal, target_sequences_per_replica=10, target_kv_cache_usage=0.8) == 3

    def test_full_caches_drive_it_when_few_long_sequences_fill_them(self) -> None:
        signal = DecoderSignal(sequences=4, kv_cache_usage=1.8)  # two replicas at 90 %
        assert decoder_replicas(signal, target_sequences_per_replica=10, target_kv_cache_usage=0.6) == pytest.approx(3)

    def test_idle_asks_for_none(self) -> None:
        assert decoder_replicas(DecoderSignal(0, 0), target_sequences_per_replica=4, target_kv_cache_usage=0.8) == 0
