"""Every metric flashvqa exports, declared once. Names and labels follow Prometheus conventions (`_seconds`,
`_total`, base units); the gateway, encoder and decoder each record their own."""

from __future__ import annotations

import prometheus_client

from services.telemetry.metric_backends import MetricBackend, PrometheusBackend, RayBackend

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)
TOKEN_SECONDS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1)
TOKENS = (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
PIXELS = tuple(float(side * side) for side in (32, 64, 128, 256, 384, 512, 768, 1024, 2048, 4096, 8192))
BATCH = (1, 2, 4, 8, 16, 32, 64)


class FlashvqaMetrics:
    def __init__(self, backend: MetricBackend) -> None:
        self.backend = backend
        counter, histogram, gauge = backend.counter, backend.histogram, backend.gauge
        # The gateway: what the client sees.
        # `model`: the model id that answered, the base or a LoRA adapter ("" before one was resolved).
        self.requests = counter("flashvqa_requests_total", "HTTP requests answered", ("route", "status", "model"))
        self.request_duration = histogram(
            "flashvqa_request_duration_seconds", "request to last byte", SECONDS, ("route",)
        )
        self.time_to_first_token = histogram(
            "flashvqa_time_to_first_token_seconds", "request to the first output (text or finish)", SECONDS, ("model",)
        )
        self.time_per_output_token = histogram(
            "flashvqa_time_per_output_token_seconds", "first to last output, per later token", TOKEN_SECONDS, ("model",)
        )
        self.prompt_tokens = histogram(
            "flashvqa_prompt_tokens", "prompt tokens per request, images included", TOKENS, ("model",)
        )
        self.completion_tokens = histogram(
            "flashvqa_completion_tokens", "completion tokens per request", TOKENS, ("model",)
        )
        self.image_pixels = histogram("flashvqa_image_pixels", "pixels of each image as sent", PIXELS)
        self.gateway_stage = histogram(
            "flashvqa_gateway_stage_seconds", "the gateway's own stages", SECONDS, ("stage",)
        )
        self.response_cache = counter("flashvqa_response_cache_lookups_total", "response cache lookups", ("result",))
        self.safety_verdicts = counter(
            "flashvqa_safety_verdicts_total", "safety verdicts that were not allow", ("source", "category", "action")
        )
        self.provenance_verdicts = counter(
            "flashvqa_provenance_verdicts_total", "provenance check per image", ("action",)
        )
        self.rate_limit_refusals = counter(
            "flashvqa_rate_limit_refusals_total", "requests refused with 429 by a tenant limit", ("limit",)
        )
        self.overload_refusals = counter(
            "flashvqa_overload_refusals_total",
            "requests refused with 503 at the door: the gateway replica had its in-flight budget of requests",
        )
        # The vision encoder.
        self.encoder_queue = histogram("flashvqa_encoder_queue_seconds", "arrival to the start of its batch", SECONDS)
        self.encode = histogram("flashvqa_encode_seconds", "one batch through the vision tower", SECONDS)
        self.encoder_batch_size = histogram("flashvqa_encoder_batch_size", "images per batch", BATCH)
        self.embedding_cache = counter("flashvqa_embedding_cache_lookups_total", "embedding cache lookups", ("result",))
        self.image_tokens = histogram("flashvqa_image_tokens", "tokens per encoded image", TOKENS)
        # The LLM decoder.
        self.decoder_queue = histogram("flashvqa_decoder_queue_seconds", "arrival to the start of its prefill", SECONDS)
        self.prefill = histogram("flashvqa_prefill_seconds", "the prefill step that included the request", SECONDS)
        self.running_sequences = gauge(
            "flashvqa_decoder_running_sequences", "sequences in the running batch", ("replica",)
        )
        self.waiting_sequences = gauge(
            "flashvqa_decoder_waiting_sequences", "sequences waiting for a slot", ("replica",)
        )
        self.kv_cache_usage = gauge(
            "flashvqa_kv_cache_usage_ratio", "share of the KV cache's blocks held by running sequences", ("replica",)
        )
        self.preemptions = counter(
            "flashvqa_decoder_preemptions_total",
            "running sequences sent back to the queue for lack of KV blocks (computed again when resumed)",
            ("replica",),
        )
        self.prefix_cache_queried_tokens = counter(
            "flashvqa_prefix_cache_queried_tokens_total", "prompt tokens looked up in the prefix cache", ("replica",)
        )
        self.prefix_cache_hit_tokens = counter(
            "flashvqa_prefix_cache_hit_tokens_total", "prompt tokens whose KV the prefix cache held", ("replica",)
        )


_metrics: FlashvqaMetrics | None = None


def metrics() -> FlashvqaMetrics:
    """This process's metrics: in `prometheus_client`'s default registry unless `export_to_ray` ran first."""
    global _metrics
    if _metrics is None:
        _metrics = FlashvqaMetrics(PrometheusBackend(prometheus_client.REGISTRY))
    return _metrics


def export_to_ray() -> None:
    """For a Serve replica: record through Ray's metrics agent, which exports every worker of the node."""
    global _metrics
    if _metrics is None or not isinstance(_metrics.backend, RayBackend):
        _metrics = FlashvqaMetrics(RayBackend())
