"""k8s/: the plain manifests for people who do not use Helm, a kustomize base and one overlay per values file."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy import manifests
from tests.deploy.checks import check_objects

OVERLAYS = list(manifests.VALUES_FILES)


def test_k8s_is_what_the_chart_renders() -> None:
    """k8s/ is generated from the chart; regenerate with `python -m tests.deploy.manifests`."""
    expected = manifests.k8s_files()
    committed = {path for path in manifests.K8S.rglob("*") if path.is_file() and path.suffix == ".yaml"}
    assert committed == set(expected), "run `.venv/bin/python -m tests.deploy.manifests`"
    stale = [str(path) for path, text in expected.items() if path.read_text() != text]
    assert stale == [], "run `.venv/bin/python -m tests.deploy.manifests`"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_validate(overlay: str, overlay_objects: dict[str, list[dict[str, Any]]]) -> None:
    check_objects(overlay_objects[overlay])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_mirrors_its_values_file(overlay: str, overlay_objects: dict[str, list[dict[str, Any]]]) -> None:
    rendered = manifests.plain_manifests()[overlay]
    key = lambda doc: (doc["kind"], doc["metadata"]["name"])  # noqa: E731
    assert sorted(overlay_objects[overlay], key=key) == sorted(rendered, key=key)
