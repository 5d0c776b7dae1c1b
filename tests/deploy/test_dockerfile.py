"""The container image recipe: multi-stage, a CUDA base chosen at build time, non-root, no weights."""

from __future__ import annotations

import fnmatch
import re

from tests.deploy.manifests import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    re.sub(r"\\\n\s*", " ", line).strip()
    for line in re.split(r"(?<!\\)\n", DOCKERFILE)
    if line.strip() and not line.lstrip().startswith("#")
]


def _stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for instruction in INSTRUCTIONS:
        if instruction.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_the_base_image_is_a_build_argument_with_a_cuda_default() -> None:
    first_from = next(i for i, line in enumerate(INSTRUCTIONS) if line.startswith("FROM "))
    (base,) = [line for line in INSTRUCTIONS[:first_from] if line.startswith("ARG BASE_IMAGE=")]
    assert base.startswith("ARG BASE_IMAGE=nvidia/cuda:")
    build, runtime = _stages()[-2:]
    assert build[0] == "FROM ${BASE_IMAGE} AS build"
    assert runtime[0] == "FROM ${BASE_IMAGE} AS runtime"


def test_the_runtime_stage_is_slim_and_runs_as_a_user() -> None:
    runtime = _stages()[-1]
    copies = [line for line in runtime if line.startswith("COPY")]
    assert copies and all(line.startswith("COPY --from=build /opt/") for line in copies)  # no sources, no tools
    (user,) = [line for line in runtime if line.startswith("USER ")]
    assert user == "USER 1000:1000"  # the chart's runAsUser
    assert "--no-install-recommends" in " ".join(runtime)


def test_the_package_is_installed_and_its_serve_config_loads() -> None:
    build = _stages()[-2]
    assert any("uv pip install" in line and "--no-deps ." in line for line in build)
    assert any("load_application()" in line for line in build)


def test_no_weights_or_local_state_reach_the_build_context() -> None:
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]

    def sent(path: str) -> bool:
        included = True
        for pattern in ignore:
            negated = pattern.startswith("!")
            pattern = pattern.removeprefix("!").rstrip("/")
            parts = path.split("/")
            if any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))):
                included = negated
        return included

    for path in (
        "models/tiny-glm4v/model.safetensors",
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "helm/flashvqa/Chart.yaml",
        "services/__pycache__/cli.cpython-311.pyc",
        "bench/results/x.json",
    ):
        assert not sent(path), path
    copied = [
        source
        for line in INSTRUCTIONS
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]
    for source in [*copied, "services/app_builder.py", "services/serve_config.yaml"]:
        assert (ROOT / source).exists() and sent(source), source
