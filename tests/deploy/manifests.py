"""The deployment manifests, rendered and checked offline.

The Helm chart renders through Helm's own Go SDK in this process (`helm_python`), with values.schema.json
enforced; the kustomize overlays through `kubectl kustomize`. Built-in objects are checked against the
Kubernetes OpenAPI schemas (`kubernetes_validate`, strict: unknown fields fail), a RayService against
KubeRay's CRD (made strict the same way, since the API server would silently drop unknown fields), and its
serveConfigV2 against Ray Serve's own schema and this package's builder.

`python -m tests.deploy.manifests` regenerates k8s/ (the kustomize base and overlays) from the chart.
"""

from __future__ import annotations

import functools
import importlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import yaml
from ray.serve._private.build_app import build_app as build_serve_app
from ray.serve.schema import ServeDeploySchema

from services.serve_config import merge

ROOT = Path(__file__).parents[2]
CHART = ROOT / "helm" / "flashvqa"
K8S = ROOT / "k8s"
# KubeRay v1.7.0 CRD, vendored from the workspace's shared/k8s-schemas so that a clone validates on its own.
CRDS = ROOT / "tests" / "deploy" / "kuberay_crds"
RELEASE = "flashvqa"
NAMESPACE = "flashvqa"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version())
VALUES_FILES = {
    "cpu-only": CHART / "values-cpu-only.yaml",
    "single-gpu": CHART / "values-single-gpu.yaml",
    "production": CHART / "values-production.yaml",
}
# Objects Helm adds for `helm test` or labels only Helm can fill are not part of the plain manifests.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
# kustomize cannot generate a random password: the plain manifests use a Secret the user creates.
KUSTOMIZE_VALUES = {"redis": {"auth": {"existingSecret": "flashvqa-redis"}}}


def values(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(VALUES_FILES[name].read_text())
    return loaded


def render(chart_values: dict[str, Any], chart: Path = CHART) -> dict[str, list[dict[str, Any]]]:
    """Template path -> the objects it renders (NOTES.txt as one {"text": ...} entry)."""
    with helm_python.Chart.load(chart) as loaded:
        rendered = loaded.render(chart_values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    documents: dict[str, list[dict[str, Any]]] = {}
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            documents[path] = [{"text": text}]
        else:
            documents[path] = [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


def objects(rendered: dict[str, list[dict[str, Any]]], with_tests: bool = True) -> list[dict[str, Any]]:
    return [
        doc
        for path, docs in sorted(rendered.items())
        for doc in docs
        if "kind" in doc and (with_tests or "/templates/tests/" not in path)
    ]


def lint(chart_values: dict[str, Any]) -> list[str]:
    """`helm lint --strict` findings that are warnings or errors."""
    report = helm_python.lint(CHART, chart_values, strict=True, kube_version=f"v{KUBE_VERSIONS[-1]}")
    return [f"{m['path']}: {m['error']}" for m in report["messages"] if m["severity"] >= 2] + report["errors"]


def kustomize(overlay: Path) -> list[dict[str, Any]]:
    result = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


# --- validation -------------------------------------------------------------------------------------


def validate_builtin(obj: dict[str, Any]) -> None:
    """Against the Kubernetes schemas; custom resources are left to their own checks."""
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.utils.SchemaNotFoundError:
            assert "." in obj["apiVersion"].split("/")[0], f"no schema for built-in {obj['kind']}"
            return


@functools.cache
def _crd_validator(crd_file: str) -> jsonschema.protocols.Validator:
    crd = yaml.safe_load((CRDS / crd_file).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return validator_class(schema)


def _strict(schema: Any) -> Any:
    """Unknown fields fail, as `kubectl apply --validate=strict` would have them."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


def validate_rayservice(rayservice: dict[str, Any]) -> None:
    errors = sorted(_crd_validator("ray.io_rayservices.yaml").iter_errors(rayservice), key=lambda e: e.path)
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
    # What the operator checks and the schema does not express (shared/k8s-schemas/README.md).
    assert len(rayservice["metadata"]["name"]) <= 47
    cluster = rayservice["spec"]["rayClusterConfig"]
    for group in [cluster["headGroupSpec"], *cluster.get("workerGroupSpecs", [])]:
        assert all(isinstance(value, str) for value in group["rayStartParams"].values())
    for group in cluster.get("workerGroupSpecs", []):
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], group["groupName"]


def serve_config(rayservice: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    return config


def check_serve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Serve's schema, then the application itself: the import path exists in the package and builds
    the deployments from the args. Returns the built deployments by name."""
    schema = ServeDeploySchema.model_validate(config)
    (application,) = schema.applications
    module, _, attribute = application.import_path.partition(":")
    builder: Callable[[dict[str, Any]], Any] = getattr(importlib.import_module(module), attribute)
    built = build_serve_app(builder(application.args), name=application.name)
    return {deployment.name: deployment for deployment in built.deployments}


def containers(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(where, pod spec, container) for every container the object runs, init containers included."""
    for where, pod in _pod_specs(obj):
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield f"{obj['kind']}/{obj['metadata']['name']} {where} {container['name']}", pod, container


def _pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if obj["kind"] == "Pod":
        yield "", obj["spec"]
    elif obj["kind"] in ("StatefulSet", "Deployment", "DaemonSet", "Job"):
        yield "", obj["spec"]["template"]["spec"]
    elif obj["kind"] == "RayService":
        cluster = obj["spec"]["rayClusterConfig"]
        yield "head", cluster["headGroupSpec"]["template"]["spec"]
        for group in cluster.get("workerGroupSpecs", []):
            yield group["groupName"], group["template"]["spec"]


# --- the plain manifests (k8s/) ---------------------------------------------------------------------


def plain_manifests() -> dict[str, list[dict[str, Any]]]:
    """Overlay name -> the chart's objects for its values file, as plain manifests (no Helm labels, no tests)."""
    manifests = {}
    for name in VALUES_FILES:
        chart_values = merge(values(name), KUSTOMIZE_VALUES)
        docs = [_without_helm_labels(doc) for doc in objects(render(chart_values), with_tests=False)]
        for doc in docs:
            doc["metadata"].pop("namespace", None)
        manifests[name] = docs
    return manifests


def k8s_files() -> dict[Path, str]:
    """k8s/ as it should be: objects common to every overlay in base/, the others in their overlay."""
    manifests = plain_manifests()
    common = [doc for doc in manifests["cpu-only"] if all(doc in docs for docs in manifests.values())]
    files: dict[Path, str] = {}
    files.update(_kustomization(K8S / "base", common, bases=[]))
    for name, docs in manifests.items():
        own = [doc for doc in docs if doc not in common]
        files.update(_kustomization(K8S / "overlays" / name, own, bases=["../../base"], values_file=name))
    return files


def write_k8s() -> None:
    for path, text in k8s_files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _kustomization(
    directory: Path, docs: list[dict[str, Any]], bases: list[str], values_file: str | None = None
) -> dict[Path, str]:
    source = f"helm/flashvqa/values-{values_file}.yaml" if values_file else "the chart's values files (all of them)"
    header = f"# Generated from helm/flashvqa with {source} by `python -m tests.deploy.manifests`; do not edit.\n"
    files: dict[Path, str] = {}
    for doc in docs:
        name = f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        files[directory / name] = header + _dump(doc)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": bases + sorted(path.name for path in files),
    }
    files[directory / "kustomization.yaml"] = header + _dump(kustomization)
    return files


def _without_helm_labels(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {
            key: _without_helm_labels(value)
            for key, value in doc.items()
            if not (key in HELM_ONLY_LABELS and isinstance(value, str))
        }
    if isinstance(doc, list):
        return [_without_helm_labels(item) for item in doc]
    return doc


class _BlockStyleDumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def _dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_BlockStyleDumper, sort_keys=False, width=120)


if __name__ == "__main__":
    write_k8s()
