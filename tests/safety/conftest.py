"""Shared, built once: the normaliser (OpenCC tables) and the open_nsfw session are the slow parts."""

from __future__ import annotations

import pytest

from services.safety.opennsfw_classifier import OpenNSFWClassifier
from services.safety.term_list import DEFAULT_TERMS_PATH, Term, read_terms
from services.safety.text_normalizer import TextNormalizer


@pytest.fixture(scope="session")
def normalizer() -> TextNormalizer:
    return TextNormalizer()


@pytest.fixture(scope="session")
def default_terms() -> list[Term]:
    return read_terms(DEFAULT_TERMS_PATH)


@pytest.fixture(scope="session")
def opennsfw() -> OpenNSFWClassifier:
    return OpenNSFWClassifier()
