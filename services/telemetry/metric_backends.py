"""Where metrics go: a `prometheus_client` registry (one process: the in-process app, tests) or Ray's
metrics agent (Serve replicas: each node exports its workers' metrics on Ray's metrics port, which the Helm
chart's ServiceMonitor scrapes, with Ray's `ray_` prefix)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import prometheus_client


class Counter(Protocol):
    def inc(self, amount: float = 1, **labels: str) -> None: ...


class Histogram(Protocol):
    def observe(self, value: float, **labels: str) -> None: ...


class Gauge(Protocol):
    def set(self, value: float, **labels: str) -> None: ...


class MetricBackend(Protocol):
    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter: ...

    def histogram(self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram: ...

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge: ...


class PrometheusBackend:
    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.registry = registry

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return _PrometheusMetric(prometheus_client.Counter(name, doc, labels, registry=self.registry), "inc")

    def histogram(self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram:
        metric = prometheus_client.Histogram(name, doc, labels, registry=self.registry, buckets=buckets)
        return _PrometheusMetric(metric, "observe")

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return _PrometheusMetric(prometheus_client.Gauge(name, doc, labels, registry=self.registry), "set")


class _PrometheusMetric:
    def __init__(self, metric: prometheus_client.metrics.MetricWrapperBase, method: str) -> None:
        self._metric = metric
        self._method = method

    def _record(self, value: float, labels: dict[str, str]) -> None:
        target = self._metric.labels(**labels) if labels else self._metric
        getattr(target, self._method)(value)

    def inc(self, amount: float = 1, **labels: str) -> None:
        self._record(amount, labels)

    def observe(self, value: float, **labels: str) -> None:
        self._record(value, labels)

    def set(self, value: float, **labels: str) -> None:
        self._record(value, labels)


class RayBackend:
    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        from ray.util import metrics

        return _RayMetric(metrics.Counter(name.removesuffix("_total"), doc, tag_keys=tuple(labels)), "inc")

    def histogram(self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> Histogram:
        from ray.util import metrics

        return _RayMetric(metrics.Histogram(name, doc, boundaries=list(buckets), tag_keys=tuple(labels)), "observe")

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        from ray.util import metrics

        return _RayMetric(metrics.Gauge(name, doc, tag_keys=tuple(labels)), "set")


class _RayMetric:
    def __init__(self, metric: object, method: str) -> None:
        self._record = getattr(metric, method)

    def inc(self, amount: float = 1, **labels: str) -> None:
        if amount:  # Ray's Counter refuses 0 (prometheus_client takes it): adding nothing is nothing to record
            self._record(amount, tags=labels or None)

    def observe(self, value: float, **labels: str) -> None:
        self._record(value, tags=labels or None)

    def set(self, value: float, **labels: str) -> None:
        self._record(value, tags=labels or None)
