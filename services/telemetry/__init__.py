"""Tracing, metrics and request logs, shared by the gateway, the encoder and the decoder."""
