"""The in-cluster load test: a Job (loadtest/k8s/job.yaml) running the load test image
(loadtest/Dockerfile) against the chart's API Service. Checked offline, as tests/deploy checks the chart."""

from __future__ import annotations

import re
from typing import Any

import yaml

from loadtest.targets import load_profiles
from tests.deploy import checks, manifests

JOB_FILE = manifests.ROOT / "loadtest" / "k8s" / "job.yaml"
DOCKERFILE = manifests.ROOT / "loadtest" / "Dockerfile"
APP_VERSION = yaml.safe_load((manifests.CHART / "Chart.yaml").read_text())["appVersion"]


def _documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(JOB_FILE.read_text()) if doc]


def _container() -> dict[str, Any]:
    (job,) = manifests.find(_documents(), "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def test_the_manifests_are_valid_and_hardened() -> None:
    docs = _documents()
    assert {doc["kind"] for doc in docs} == {"Job", "PersistentVolumeClaim"}
    for doc in docs:
        manifests.validate_builtin(doc)
    checks.check_hardened(docs)


def test_the_job_targets_the_charts_api_service() -> None:
    """The default release (`helm install flashvqa`) names the Service; the URL must follow the chart."""
    rendered = manifests.render(manifests.values("production"))
    (rayservice,) = manifests.find(manifests.objects(rendered), "RayService")
    service = rayservice["spec"]["serveService"]
    (port,) = service["spec"]["ports"]
    env = {var["name"]: var for var in _container()["env"]}
    assert env["FLASHVQA_URL"]["value"] == f"http://{service['metadata']['name']}:{port['port']}"
    assert "$(FLASHVQA_URL)" in _container()["args"]


def test_the_job_runs_the_gpu_profile_with_a_core_per_locust_process() -> None:
    container = _container()
    args = container["args"]
    profile = load_profiles()[args[args.index("--profile") + 1]]
    assert profile.local_stack == {}
    assert int(container["resources"]["limits"]["cpu"]) >= profile.locust_processes
    assert container["command"] == ["python", "-m", "loadtest.run"]


def test_the_image_is_the_projects_image_plus_the_loadtest_extra() -> None:
    text = DOCKERFILE.read_text()
    assert f"ARG BASE_IMAGE=flashvqa:{APP_VERSION}\n" in text  # the chart's default image
    assert _container()["image"] == f"flashvqa-loadtest:{APP_VERSION}"
    assert re.search(r"uv pip install .*-r pyproject.toml --extra loadtest", text)
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    for source in re.findall(r"^COPY (?!--from)(\S+) ", text, flags=re.MULTILINE):
        assert f"!{source.rstrip('/')}/" in ignore or f"!{source}" in ignore, source
