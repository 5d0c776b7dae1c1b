"""The optional NudeNet detector: numpy post-processing keeps the best box of each overlapping group, as
NudeNet's OpenCV code does, and the model (when the AGPL extra is installed) runs from its wheel."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from services.safety.nudenet_detector import LABELS, NudeNetDetector, decode_detections, preprocess
from tests.safety.images import receipt, shapes_open_nsfw_misreads

requires_nudenet = pytest.mark.skipif(
    importlib.util.find_spec("nudenet") is None, reason="the optional nudenet extra is not installed"
)


def raw_output(*candidates: tuple[tuple[float, float, float, float], str, float]) -> np.ndarray:
    """A detector output, [4 + labels, 2100], holding the given (centre box, label, score) candidates."""
    output = np.zeros((4 + len(LABELS), 2100), dtype=np.float32)
    for index, (box, label, score) in enumerate(candidates):
        output[:4, index * 7] = box
        output[4 + LABELS.index(label), index * 7] = score
    return output


class TestDecodeDetections:
    """Class-agnostic non-maximum suppression at IoU 0.45 over candidates scoring at least 0.25."""

    def test_overlapping_boxes_keep_the_best(self) -> None:
        output = raw_output(
            ((100, 100, 50, 50), "FACE_FEMALE", 0.9),
            ((105, 100, 50, 50), "BUTTOCKS_EXPOSED", 0.8),  # IoU 0.82 with the face: suppressed
            ((300, 300, 20, 20), "FEET_COVERED", 0.7),
            ((250, 50, 40, 40), "ANUS_EXPOSED", 0.24),  # under the score threshold
        )
        detections = decode_detections(output, (320.0, 320.0))
        assert [(detection.label, round(detection.score, 2)) for detection in detections] == [
            ("FACE_FEMALE", 0.9),
            ("FEET_COVERED", 0.7),
        ]
        assert detections[0].box == (75.0, 75.0, 50.0, 50.0)

    def test_boxes_are_clipped_to_the_image_not_the_padding(self) -> None:
        output = raw_output(((300, 100, 60, 40), "FACE_MALE", 0.6))
        (detection,) = decode_detections(output, (310.0, 200.0))
        assert detection.box == (270.0, 80.0, 40.0, 40.0)

    def test_nothing_above_threshold(self) -> None:
        assert decode_detections(raw_output(), (320.0, 320.0)) == []

    def test_preprocess_pads_right_and_bottom(self) -> None:
        batch, visible = preprocess(receipt())  # 384x512: padded on the right
        assert batch.shape == (1, 3, 320, 320) and batch.dtype == np.float32
        assert visible == (240.0, 320.0)
        assert batch[0, :, :, 250:].max() == 0.0 and batch[0, :, :, :230].min() >= 0.0
        assert batch.max() <= 1.0


@requires_nudenet
class TestModel:
    """The detector loads from the installed package and finds nothing explicit in plain pictures."""

    def test_plain_pictures(self) -> None:
        detector = NudeNetDetector()
        assert detector.scores(receipt()) == {"sexual": 0.0}
        score = detector.scores(shapes_open_nsfw_misreads())["sexual"]
        assert 0.0 <= score <= 1.0
