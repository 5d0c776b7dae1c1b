"""The image models behind one interface, chosen by name."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from PIL import Image

from services.safety.nudenet_detector import NudeNetDetector
from services.safety.opennsfw_classifier import OpenNSFWClassifier
from services.safety.options import ImageModel


class ImageClassifier(Protocol):
    def scores(self, image: Image.Image) -> dict[str, float]:
        """A score in [0, 1] per category, for an RGB image of at most 512x512 pixels."""
        ...


def load_image_classifier(model: ImageModel, model_path: Path | None = None) -> ImageClassifier | None:
    """The named model, loaded (None for "none"); a model that cannot load raises ModelLoadError."""
    match model:
        case "opennsfw":
            return OpenNSFWClassifier(model_path)
        case "nudenet":
            return NudeNetDetector(model_path)
    return None
