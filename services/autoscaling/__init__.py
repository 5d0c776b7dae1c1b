"""Independent autoscaling of the encoder and decoder pools, each on the load that really costs it."""

from services.autoscaling.pending_images import PendingImages
from services.autoscaling.pool_autoscaling import DecoderAutoscaling, EncoderAutoscaling
from services.autoscaling.signals import DecoderSignal, EncoderSignal

__all__ = ["DecoderAutoscaling", "DecoderSignal", "EncoderAutoscaling", "EncoderSignal", "PendingImages"]
