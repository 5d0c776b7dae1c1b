"""What every rendering of the deployment (Helm or kustomize) must satisfy, whatever the values."""

from __future__ import annotations

import json
from typing import Any

from tests.deploy import manifests

POOLS = {"encoder": "vision_encoder", "decoder": "llm_decoder", "gateway": "gateway"}


def check_objects(docs: list[dict[str, Any]]) -> None:
    for obj in docs:
        if obj["kind"] == "RayService":
            manifests.validate_rayservice(obj)
        else:
            manifests.validate_builtin(obj)
    (rayservice,) = manifests.find(docs, "RayService")
    check_rayservice(rayservice)
    check_hardened(docs)


def check_rayservice(rayservice: dict[str, Any]) -> None:
    cluster = rayservice["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {group["groupName"]: group for group in cluster["workerGroupSpecs"]}
    config = manifests.serve_config(rayservice)
    deployments = manifests.check_serve_config(config)
    assert set(deployments) == set(POOLS.values())
    (application,) = config["applications"]
    args = application["args"]
    for pool, deployment_name in POOLS.items():
        # The options reach the deployment, and its pinning resource is offered by exactly one group.
        actor_options = deployments[deployment_name].ray_actor_options
        assert actor_options == args[pool]["ray_actor_options"]
        (resource,) = actor_options["resources"]
        offering = [name for name, group in groups.items() if resource in ray_resources(group)]
        assert offering == [resource.removeprefix("worker-group-")], (pool, resource, offering)
        gpus = _container(groups[offering[0]])["resources"]["limits"].get("nvidia.com/gpu", 0)
        assert actor_options.get("num_gpus", 0) <= gpus, pool
    for group_spec in [cluster["headGroupSpec"], *groups.values()]:
        env = {var["name"]: var for var in _container(group_spec)["env"]}
        assert env["MODEL_PATH"]["value"] == args["model"]
        assert "FLASHVQA_REDIS_URL" in env
        assert ("OTEL_EXPORTER_OTLP_ENDPOINT" in env) != ("OTEL_SDK_DISABLED" in env)


def check_hardened(docs: list[dict[str, Any]]) -> None:
    """Requests and limits on every container; non-root, no privilege escalation, read-only root."""
    for obj in docs:
        for where, pod, container in manifests.containers(obj):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{where}: {kind}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
        if obj["kind"] == "RayService" and obj["spec"]["rayClusterConfig"].get("enableInTreeAutoscaling"):
            autoscaler = obj["spec"]["rayClusterConfig"]["autoscalerOptions"]
            assert {"cpu", "memory"} <= set(autoscaler["resources"]["limits"])
            assert autoscaler["securityContext"]["allowPrivilegeEscalation"] is False


def ray_resources(group_spec: dict[str, Any]) -> dict[str, float]:
    """The custom resources a group advertises, parsed as the Ray autoscaler does (quoted, escaped JSON)."""
    quoted = group_spec["rayStartParams"].get("resources", '"{}"')
    assert quoted.startswith('"') and quoted.endswith('"'), quoted
    resources: dict[str, float] = json.loads(quoted[1:-1].replace("\\", ""))
    return resources


def _container(group_spec: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = group_spec["template"]["spec"]["containers"][0]
    return container
