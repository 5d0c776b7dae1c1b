"""The scenario on a local Ray with the tiny model (small bounds, short delays): the encoder pool grows under
image-heavy load and the decoder pool does not, the reverse under decode-heavy load, both drain back when the
load moves away or stops, and no request fails while replicas start and drain."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

from loadtest.autoscaling.timeline import Timeline
from tests.process_group import run_in_own_session

pytestmark = pytest.mark.ray

RUN_TIMEOUT_S = 420


@pytest.mark.slow
def test_each_pool_follows_its_own_load(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "loadtest.autoscaling.run",
        "--model",
        str(tiny_model_dirs["glm4v"]),
        "--out",
        str(tmp_path),
    ]
    finished = run_in_own_session(command, RUN_TIMEOUT_S)
    verdict = (tmp_path / "verdict.txt").read_text() if (tmp_path / "verdict.txt").exists() else finished.stdout[-4000:]
    assert finished.returncode == 0, verdict
    assert "FAIL" not in verdict
    timeline = Timeline.read(tmp_path / "timeline.json")
    assert len(timeline.requests) > 100 and all(record.ok for record in timeline.requests)
    with Image.open(tmp_path / "autoscaling.png") as plot:
        assert plot.format == "PNG"
