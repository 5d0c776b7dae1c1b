"""The Helm chart, rendered offline with each values file through Helm's own Go SDK."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest

from services.app_builder import AppArgs
from services.demo.shipped import DEMO_MODEL
from tests.deploy import manifests
from tests.deploy.checks import check_objects, ray_resources

VALUES_FILES = list(manifests.VALUES_FILES)
Rendered = dict[str, dict[str, list[dict[str, Any]]]]


@pytest.mark.parametrize("values_file", VALUES_FILES)
def test_lint_is_clean_in_strict_mode(values_file: str) -> None:
    assert manifests.lint(manifests.values(values_file)) == []


class TestEveryValuesFile:
    """Each values file renders objects that Kubernetes, KubeRay and Ray Serve accept, hardened."""

    @pytest.mark.parametrize("values_file", VALUES_FILES)
    def test_objects_validate(self, values_file: str, chart_renders: Rendered) -> None:
        check_objects(manifests.objects(chart_renders[values_file]))

    @pytest.mark.parametrize("values_file", VALUES_FILES)
    def test_notes_and_helm_test_explain_the_first_request(self, values_file: str, chart_renders: Rendered) -> None:
        rendered = chart_renders[values_file]
        notes = rendered["flashvqa/templates/NOTES.txt"][0]["text"]
        assert "port-forward svc/flashvqa 8000:8000" in notes
        assert "/v1/chat/completions" in notes
        (test_pod,) = rendered["flashvqa/templates/tests/test-request.yaml"]
        assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        script = test_pod["spec"]["containers"][0]["args"][0]
        assert "/health" in script
        assert "/v1/chat/completions" in script
        compile(script, "test-request", "exec")


def test_production_separates_and_autoscales_the_pools(chart_renders: Rendered) -> None:
    docs = manifests.objects(chart_renders["production"])
    (rayservice,) = manifests.find(docs, "RayService")
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    groups = {group["groupName"]: group for group in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "encoder-gpu", "decoder-gpu"}
    for name in ("encoder-gpu", "decoder-gpu"):
        pod = groups[name]["template"]["spec"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"flashvqa.io/pool": name}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert groups[name]["minReplicas"] < groups[name]["maxReplicas"]
    args = manifests.serve_config(rayservice)["applications"][0]["args"]
    for pool, target in (
        ("encoder", "target_megapixels_per_replica"),
        ("decoder", "target_sequences_per_replica"),
        ("gateway", "target_ongoing_requests"),
    ):
        assert "num_replicas" not in args[pool]
        scaling = args[pool]["autoscaling_config"]
        assert scaling["min_replicas"] < scaling["max_replicas"]
        assert scaling[target] > 0
    assert AppArgs.model_validate(args).decoder.serve_options(1)["autoscaling_config"]["policy"]["policy_kwargs"] == {
        "target_sequences_per_replica": 48,
        "target_kv_cache_usage": 0.8,
    }  # the file's target, the chart's bound
    assert args["gateway"]["auth"] == {"allow_anonymous": False}
    kinds = {doc["kind"] for doc in docs}
    assert {"Ingress", "ServiceMonitor", "ConfigMap", "PodDisruptionBudget", "StatefulSet", "Service"} <= kinds
    (ingress,) = manifests.find(docs, "Ingress")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "32m"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "flashvqa"
    assert rayservice["spec"]["serveService"]["metadata"]["name"] == "flashvqa"
    head_env = {var["name"] for var in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"FLASHVQA_API_KEYS_FILE", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_RESOURCE_ATTRIBUTES"} <= head_env


def test_single_gpu_shares_one_gpu_between_encoder_and_decoder(chart_renders: Rendered) -> None:
    (rayservice,) = manifests.find(manifests.objects(chart_renders["single-gpu"]), "RayService")
    groups = {group["groupName"]: group for group in rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    assert groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert ray_resources(groups["gpu"]) == {"worker-group-gpu": 1000}
    args = manifests.serve_config(rayservice)["applications"][0]["args"]
    fractions = [args[pool]["ray_actor_options"]["num_gpus"] for pool in ("encoder", "decoder")]
    assert all(0 < fraction < 1 for fraction in fractions)
    assert sum(fractions) <= 1
    volume = groups["gpu"]["template"]["spec"]["volumes"][0]
    assert volume == {"name": "model", "hostPath": {"path": "/srv/models", "type": "Directory"}}


def test_cpu_only_installs_the_demo_model_and_asks_for_no_gpu(chart_renders: Rendered) -> None:
    docs = manifests.objects(chart_renders["cpu-only"])
    (rayservice,) = manifests.find(docs, "RayService")
    assert "nvidia.com/gpu" not in str(rayservice)
    for _, pod, _ in manifests.containers(rayservice):
        assert [container["name"] for container in pod["initContainers"]] == ["model-demo"]
    (secret,) = manifests.find(docs, "Secret")  # the generated Redis password
    assert secret["metadata"]["name"] == "flashvqa-redis"


def test_the_demo_init_container_installs_the_trained_model_once(chart_renders: Rendered, tmp_path: Path) -> None:
    """Its script, run here as the pod would run it (the image's python on PATH), copies the shipped weights."""
    (rayservice,) = manifests.find(manifests.objects(chart_renders["cpu-only"]), "RayService")
    (init,) = next(iter(manifests.containers(rayservice)))[1]["initContainers"]
    environment = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MODEL_PATH": str(tmp_path / "glm4v-demo"),
    }

    def run_init() -> str:
        return subprocess.run(
            [*init["command"], *init["args"]], env=environment, check=True, capture_output=True, text=True, cwd=tmp_path
        ).stdout

    run_init()
    installed = tmp_path / "glm4v-demo"
    for shipped in DEMO_MODEL.iterdir():
        assert (installed / shipped.name).read_bytes() == shipped.read_bytes()
    assert "holds a model" in run_init()  # a restarted pod keeps what its volume holds


def test_the_model_download_is_opt_in() -> None:
    chart_values = manifests.values("production")
    plain = manifests.render(chart_values)
    assert "initContainers" not in str(plain["flashvqa/templates/rayservice.yaml"])
    chart_values["model"]["download"] = {"enabled": True, "endpoint": "https://hub.example.com"}
    (rayservice,) = manifests.render(chart_values)["flashvqa/templates/rayservice.yaml"]
    check_objects(manifests.objects(manifests.render(chart_values)))
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    (init,) = head["initContainers"]
    assert init["name"] == "model-download"
    assert {"name": "HF_ENDPOINT", "value": "https://hub.example.com"} in init["env"]
    assert head["volumes"][0]["persistentVolumeClaim"] == {"claimName": "flashvqa-models", "readOnly": False}


def test_an_external_redis_replaces_the_statefulset() -> None:
    chart_values = manifests.values("production")
    chart_values["redis"] = {"enabled": False, "urlSecret": {"name": "shared-redis", "key": "url"}}
    docs = manifests.objects(manifests.render(chart_values))
    check_objects(docs)
    assert not manifests.find(docs, "StatefulSet")
    (rayservice,) = manifests.find(docs, "RayService")
    env = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["env"]
    (redis,) = [var for var in env if var["name"] == "FLASHVQA_REDIS_URL"]
    assert redis["valueFrom"]["secretKeyRef"] == {"name": "shared-redis", "key": "url"}


def _with(values_file: str, *changes: tuple[str, Any]) -> dict[str, Any]:
    chart_values = copy.deepcopy(manifests.values(values_file))
    for dotted, value in changes:
        *parents, last = dotted.split(".")
        node = chart_values
        for key in parents:
            node = node.setdefault(key, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return chart_values


_DELETE = object()
# Relations between values, which JSON Schema cannot express, are checked by templates/_validate.tpl when the
# chart renders (install, upgrade, template); `helm lint` runs templates in lint mode, where `fail` only logs.
REFUSED_BY_TEMPLATES = {
    "group min > max": (
        _with("production", ("workerGroups.encoder-gpu.minReplicas", 3), ("workerGroups.encoder-gpu.maxReplicas", 2)),
        "workerGroups.encoder-gpu: minReplicas (3) is greater than maxReplicas (2)",
    ),
    "autoscaling min > max": (
        _with("production", ("serve.decoder.autoscaling.minReplicas", 5), ("serve.decoder.autoscaling.maxReplicas", 2)),
        "serve.decoder.autoscaling: minReplicas (5) is greater than maxReplicas (2)",
    ),
    "another pool's autoscaling target": (
        _with("production", ("serve.encoder.autoscaling.targetOngoingRequests", 8)),
        "serve.encoder.autoscaling.targetOngoingRequests: not a target of this pool "
        "(its own: targetMegapixelsPerReplica)",
    ),
    "a pool on a disabled group": (
        _with("single-gpu", ("serve.decoder.workerGroup", "decoder-gpu")),
        'serve.decoder.workerGroup: "decoder-gpu" is not an enabled worker group',
    ),
    "more GPUs than the group has": (
        _with("single-gpu", ("serve.decoder.numGpus", 2)),
        "serve.decoder.numGpus (2) is more than a pod of workerGroups.gpu has (gpus: 1)",
    ),
    "LoRA adapters on the encoder": (
        _with("production", ("serve.encoder.lora", {"adapters": {"receipts": "/adapters/receipts"}})),
        "serve.encoder.lora: only the decoder serves LoRA adapters (serve.decoder.lora)",
    ),
    "an adapter beside its volume": (
        _with(
            "production",
            ("serve.decoder.lora.volume", {"existingClaim": "flashvqa-adapters"}),
            ("serve.decoder.lora.adapters", {"receipts": "/adapters-old/receipts"}),
        ),
        'serve.decoder.lora.adapters.receipts: "/adapters-old/receipts" is not under serve.decoder.lora.mountPath '
        "(/adapters), where serve.decoder.lora.volume is mounted",
    ),
    "an adapter root that climbs out of its volume": (
        _with(
            "production",
            ("serve.decoder.lora.volume", {"existingClaim": "flashvqa-adapters"}),
            ("serve.decoder.lora.adapterRoot", "/adapters/../models"),
        ),
        'serve.decoder.lora.adapterRoot: "/adapters/../models" is not under serve.decoder.lora.mountPath',
    ),
}
REFUSED_BY_SCHEMA = {
    "negative GPUs per pod": (
        _with("production", ("workerGroups.decoder-gpu.gpus", -1)),
        "at '/workerGroups/decoder-gpu/gpus': minimum: got -1, want 0",
    ),
    "negative GPUs per replica": (
        _with("single-gpu", ("serve.encoder.numGpus", -0.5)),
        "at '/serve/encoder/numGpus': minimum: got -0.5, want 0",
    ),
    "missing model volume": (
        _with("production", ("model.volume", _DELETE)),
        "at '/model': missing property 'volume'",
    ),
    "two model volumes": (
        _with("single-gpu", ("model.volume.existingClaim", "models")),
        "at '/model/volume': maxProperties: got 2, want 1",
    ),
    "an emptyDir nobody fills": (
        _with("cpu-only", ("model.demo.enabled", False)),
        "at '/model/demo/enabled': value must be true",
    ),
    "a misspelt value": (
        _with("production", ("workerGroups.cpu.maxReplica", 3)),
        "at '/workerGroups/cpu': additional properties 'maxReplica' not allowed",
    ),
    "no adapter slots": (
        _with("production", ("serve.decoder.lora.maxLoaded", 0)),
        "at '/serve/decoder/lora/maxLoaded': minimum: got 0, want 1",
    ),
    "a misspelt LoRA value": (
        _with("production", ("serve.decoder.lora.maxloaded", 2)),
        "at '/serve/decoder/lora': additional properties 'maxloaded' not allowed",
    ),
    "an adapters volume nobody fills": (
        _with("production", ("serve.decoder.lora.volume", {"emptyDir": {}})),
        "at '/serve/decoder/lora/volume': additional properties 'emptyDir' not allowed",
    ),
}


BAD_VALUES = REFUSED_BY_TEMPLATES | REFUSED_BY_SCHEMA


class TestBadValues:
    """Bad values stop `helm install` (the render) with a message naming the value; `helm lint` too, for the
    values.schema.json ones."""

    @pytest.mark.parametrize(("chart_values", "message"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
    def test_render_refuses(self, chart_values: dict[str, Any], message: str) -> None:
        with pytest.raises(helm_python.HelmError) as refused:
            manifests.render(chart_values)
        assert message in str(refused.value)

    @pytest.mark.parametrize(("chart_values", "message"), REFUSED_BY_SCHEMA.values(), ids=REFUSED_BY_SCHEMA.keys())
    def test_lint_refuses(self, chart_values: dict[str, Any], message: str) -> None:
        assert any(message in finding for finding in manifests.lint(chart_values))


ADAPTER_VOLUMES = {
    "a PVC on the decoder's own group": (
        "production",
        {"existingClaim": "flashvqa-adapters"},
        "decoder-gpu",
        {"persistentVolumeClaim": {"claimName": "flashvqa-adapters", "readOnly": True}},
    ),
    "a node directory on the group the encoder shares": (
        "single-gpu",
        {"hostPath": "/srv/adapters"},
        "gpu",
        {"hostPath": {"path": "/srv/adapters", "type": "Directory"}},
    ),
}


@pytest.mark.parametrize(
    ("values_file", "volume", "decoder_group", "source"), ADAPTER_VOLUMES.values(), ids=ADAPTER_VOLUMES.keys()
)
def test_lora_adapters_reach_the_decoder_from_a_read_only_volume(
    values_file: str, volume: dict[str, str], decoder_group: str, source: dict[str, Any]
) -> None:
    """The decoder serves the adapters the values name; only its group's pods mount their volume, read-only."""
    chart_values = _with(
        values_file,
        ("serve.decoder.lora.adapters", {"receipts": "/adapters/receipts"}),
        ("serve.decoder.lora.maxLoaded", 2),
        ("serve.decoder.lora.volume", volume),
    )
    docs = manifests.objects(manifests.render(chart_values))
    check_objects(docs)
    (rayservice,) = manifests.find(docs, "RayService")
    args = manifests.serve_config(rayservice)["applications"][0]["args"]
    assert args["decoder"]["lora"] == {"adapters": {"receipts": "/adapters/receipts"}, "max_loaded": 2}
    assert AppArgs.model_validate(args).decoder.engine_config().max_loras == 2
    cluster = rayservice["spec"]["rayClusterConfig"]
    pods = {group["groupName"]: group["template"]["spec"] for group in cluster["workerGroupSpecs"]}
    pods["head"] = cluster["headGroupSpec"]["template"]["spec"]
    mounted = {}
    for name, pod in pods.items():
        (container,) = pod["containers"]
        mounts = [mount for mount in container["volumeMounts"] if mount["name"] == "lora-adapters"]
        if mounts:
            mounted[name] = (mounts, [entry for entry in pod["volumes"] if entry["name"] == "lora-adapters"])
    assert mounted == {
        decoder_group: (
            [{"name": "lora-adapters", "mountPath": "/adapters", "readOnly": True}],
            [{"name": "lora-adapters", **source}],
        )
    }


def test_only_the_lora_values_set_reach_the_decoder(chart_renders: Rendered) -> None:
    """Nothing by default; serve.args' adapters and limits stay beside those of serve.decoder.lora."""
    for rendered in chart_renders.values():
        (rayservice,) = rendered["flashvqa/templates/rayservice.yaml"]
        assert "lora" not in manifests.serve_config(rayservice)["applications"][0]["args"]["decoder"]
    chart_values = _with(
        "production",
        ("serve.args.decoder.lora", {"adapters": {"moderation": "/adapters/moderation"}, "max_rank": 32}),
        ("serve.decoder.lora.adapters", {"receipts": "/adapters/receipts"}),
        ("serve.decoder.lora.adapterRoot", "/adapters/runtime"),
        ("serve.decoder.lora.maxHeld", 8),
    )
    (rayservice,) = manifests.render(chart_values)["flashvqa/templates/rayservice.yaml"]
    args = manifests.serve_config(rayservice)["applications"][0]["args"]
    assert args["decoder"]["lora"] == {
        "adapters": {"moderation": "/adapters/moderation", "receipts": "/adapters/receipts"},
        "max_rank": 32,
        "adapter_root": "/adapters/runtime",
        "max_held": 8,
    }
    loading = AppArgs.model_validate(args).decoder.lora.loading()
    assert (str(loading.root), loading.max_held) == ("/adapters/runtime", 8)


def test_the_schema_covers_every_value() -> None:
    """values.yaml has no key that the schema does not describe (the schema forbids unknown keys)."""
    with helm_python.Chart.load(manifests.CHART) as chart:
        schema = chart.schema
        defaults = chart.values
    assert schema is not None
    missing = list(_undescribed(defaults, schema, schema, "values"))
    assert missing == []


def _undescribed(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    while "$ref" in schema or "allOf" in schema:
        schema = root["definitions"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema["allOf"][0]
    if not isinstance(value, dict) or schema.get("type") != "object":
        return []
    found = []
    for key, child in value.items():
        properties = schema.get("properties", {})
        if key in properties:
            found += _undescribed(child, properties[key], root, f"{where}.{key}")
        elif isinstance(schema.get("additionalProperties"), dict):
            found += _undescribed(child, schema["additionalProperties"], root, f"{where}.{key}")
        elif schema.get("additionalProperties", True) is False or "properties" in schema:
            found.append(f"{where}.{key}")
    return found


class TestTheChecksThemselves:
    """The validators reject what the cluster would reject or silently drop."""

    def test_an_unknown_rayservice_field_fails(self, chart_renders: Rendered) -> None:
        (rayservice,) = manifests.find(manifests.objects(chart_renders["production"]), "RayService")
        broken = copy.deepcopy(rayservice)
        broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 3
        with pytest.raises(AssertionError, match="maxReplica"):
            manifests.validate_rayservice(broken)

    def test_an_unknown_application_arg_fails(self, chart_renders: Rendered) -> None:
        (rayservice,) = manifests.find(manifests.objects(chart_renders["production"]), "RayService")
        config = manifests.serve_config(rayservice)
        config["applications"][0]["args"]["decoder"]["max_num_seq"] = 8
        with pytest.raises(ValueError, match="max_num_seq"):
            manifests.check_serve_config(config)

    def test_an_unknown_container_field_fails(self, chart_renders: Rendered) -> None:
        (statefulset,) = manifests.find(manifests.objects(chart_renders["production"]), "StatefulSet")
        broken = copy.deepcopy(statefulset)
        broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
        with pytest.raises(kubernetes_validate.utils.ValidationError):
            manifests.validate_builtin(broken)
