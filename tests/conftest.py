"""Shared fixtures: tiny random models of both real architectures, built once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.models.family import FAMILIES
from services.tiny_models.model_builder import build_tiny_model
from tests.redis_server import RedisServer

FAMILY_NAMES = sorted(FAMILIES)


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: build_tiny_model(name, root / name, seed=0) for name in FAMILY_NAMES}


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic RGB image whose content (not just size) differs by seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()
