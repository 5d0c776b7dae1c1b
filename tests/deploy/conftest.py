from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import manifests


@pytest.fixture(scope="session")
def chart_renders() -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each values file's render, once per session (rendering is fast; the checks import Ray once)."""
    return {name: manifests.render(manifests.values(name)) for name in manifests.VALUES_FILES}


@pytest.fixture(scope="session")
def overlay_objects() -> dict[str, list[dict[str, Any]]]:
    return {name: manifests.kustomize(manifests.K8S / "overlays" / name) for name in manifests.VALUES_FILES}
