"""Shared fixtures: one throwaway signing chain per session (key generation is the slow part)."""

from __future__ import annotations

import pytest

from tests.provenance.c2pa_signing import SigningChain, make_chain


@pytest.fixture(scope="session")
def signing_chain() -> SigningChain:
    return make_chain()
