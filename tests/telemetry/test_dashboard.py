"""The Grafana dashboard the chart ships queries only metrics we export (under Ray's `ray_` prefix)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from services.telemetry.metrics import FlashvqaMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "helm" / "flashvqa" / "files" / "grafana-dashboard.json"


class NameRecorder:
    """A metric backend that only notes what would be exported, with Prometheus' suffixes."""

    def __init__(self) -> None:
        self.series: set[str] = set()

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> object:
        self.series.add(name)
        return object()

    def histogram(self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()) -> object:
        self.series.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        return object()

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> object:
        self.series.add(name)
        return object()


def test_every_flashvqa_series_the_dashboard_queries_is_exported() -> None:
    recorder = NameRecorder()
    FlashvqaMetrics(recorder)  # type: ignore[arg-type]
    expressions = [
        target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel.get("targets", [])
    ]
    queried = {name.removeprefix("ray_") for expr in expressions for name in re.findall(r"ray_flashvqa_\w+", expr)}
    assert len(queried) >= 10, queried
    assert queried <= recorder.series, queried - recorder.series
