"""NudeNet's 320n detector, an optional extra: its model is AGPL-3.0, so the package stays out of the
default install. We read its .onnx file from the installed package and do the pre- and post-processing
in numpy (the package's own uses OpenCV and a Python loop over 2100 candidate boxes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from services.safety.onnx_session import check_input, load_session, packaged_file

CATEGORY = "sexual"
LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)
# The labels whose detection scores the "sexual" category.
EXPLICIT_LABELS = frozenset(
    {"BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "ANUS_EXPOSED", "MALE_GENITALIA_EXPOSED"}
)
INPUT_SIZE = 320
SCORE_THRESHOLD = 0.25  # NudeNet's own thresholds for its non-maximum suppression
IOU_THRESHOLD = 0.45


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x, y, width, height in the padded model input's pixels


def bundled_model_path() -> Path:
    return packaged_file("nudenet", "320n.onnx")


class NudeNetDetector:
    """`scores(image)` -> {"sexual": the best score of an explicit detection, or 0}; thread-safe."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._session = load_session(model_path or bundled_model_path())
        check_input(self._session, (None, 3, None, None))
        self._input_name = self._session.get_inputs()[0].name

    def detect(self, image: Image.Image) -> list[Detection]:
        batch, visible = preprocess(image)
        (output,) = self._session.run(None, {self._input_name: batch})  # [1, 4 + len(LABELS), candidates]
        return decode_detections(output[0], visible)

    def scores(self, image: Image.Image) -> dict[str, float]:
        explicit = [detection.score for detection in self.detect(image) if detection.label in EXPLICIT_LABELS]
        return {CATEGORY: max(explicit, default=0.0)}


def preprocess(image: Image.Image) -> tuple[np.ndarray, tuple[float, float]]:
    """Pad to a square at the right and bottom, resize to 320x320, RGB in [0, 1], NCHW. Also returns the
    width and height that the image itself covers in the model input. (NudeNet 3.4.2's own code swaps
    the channels twice and feeds BGR, a bug its issue #203 reports; the detector was trained on RGB.)"""
    side = max(image.size)
    square = Image.new("RGB", (side, side))
    square.paste(image.convert("RGB"), (0, 0))
    pixels = np.asarray(square.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
    batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis] / 255.0)
    scale = INPUT_SIZE / side
    return batch, (image.width * scale, image.height * scale)


def decode_detections(output: np.ndarray, visible: tuple[float, float]) -> list[Detection]:
    """The detector's raw output for one image, [4 + len(LABELS), candidates] (centre x, centre y, width,
    height, then a score per label), -> the detections kept by class-agnostic non-maximum suppression."""
    candidates = output.T
    class_scores = candidates[:, 4:]
    labels = class_scores.argmax(axis=1)
    scores = class_scores.max(axis=1)
    keep = scores >= SCORE_THRESHOLD
    centres, sizes = candidates[keep, 0:2], candidates[keep, 2:4]
    corners = np.clip(centres - sizes / 2, 0.0, visible)
    sizes = np.minimum(sizes, np.asarray(visible) - corners)
    boxes = np.concatenate([corners, sizes], axis=1)
    kept = _suppress_overlaps(boxes, scores[keep])
    return [
        Detection(LABELS[labels[keep][index]], float(scores[keep][index]), tuple(boxes[index].tolist()))
        for index in kept
    ]


def _suppress_overlaps(boxes: np.ndarray, scores: np.ndarray) -> list[int]:
    order = list(np.argsort(-scores, kind="stable"))
    area = boxes[:, 2].clip(0) * boxes[:, 3].clip(0)
    kept = []
    while order:
        best, rest = order[0], np.asarray(order[1:], dtype=np.intp)
        kept.append(int(best))
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, :2] + boxes[best, 2:], boxes[rest, :2] + boxes[rest, 2:])
        overlap = (bottom_right - top_left).clip(0).prod(axis=1)
        union = area[best] + area[rest] - overlap
        # Two empty boxes (clipped to nothing at the image's edge) count as the same box, as in OpenCV.
        iou = np.where(union > 0, overlap / np.maximum(union, 1e-9), 1.0)
        order = [int(index) for index in rest[iou <= IOU_THRESHOLD]]
    return kept
