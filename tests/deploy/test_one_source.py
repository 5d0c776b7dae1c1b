"""The Serve application the chart renders and the one `flashvqa serve` deploys come from one file,
serve_config.yaml: the chart reads it through the link helm/flashvqa/files/serve_config.yaml, the package
through services/serve_config.yaml. Each side sets only what belongs to its environment."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from services import local_server
from services.cli import main
from services.serve_config import ServeApplication, load_application
from tests.deploy import manifests

# Per pool: how many replicas and where they run; per environment: the model, the device, who may call.
PLACEMENT = {"num_replicas", "autoscaling_config", "ray_actor_options", "torch_threads"}
ENVIRONMENT = {"model", "device", "dtype", "served_model_name"}


def _without_environment(args: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in args.items() if key not in ENVIRONMENT}
    for pool in ("encoder", "decoder", "gateway"):
        kept[pool] = {key: value for key, value in kept.get(pool, {}).items() if key not in PLACEMENT}
    kept["gateway"].pop("auth", None)
    return kept


def test_both_sides_read_the_same_file() -> None:
    source = manifests.ROOT / "serve_config.yaml"
    for link in (manifests.ROOT / "services" / "serve_config.yaml", manifests.CHART / "files" / "serve_config.yaml"):
        assert link.is_symlink() and link.resolve() == source.resolve(), link
    with helm_python.Chart.load(manifests.CHART) as chart:
        (chart_copy,) = [file["data"] for file in chart.files if file["name"] == "files/serve_config.yaml"]
    assert chart_copy == source.read_text()


def test_the_chart_deploys_what_flashvqa_serve_deploys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chart_renders: dict[str, Any]
) -> None:
    deployed: list[ServeApplication] = []
    monkeypatch.setattr(local_server, "serve_until_signalled", lambda application, *_: deployed.append(application))
    model = tmp_path / "glm4v-demo"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert main(["serve", "--model", str(model)]) == 0
    (local,) = deployed

    (rayservice,) = manifests.find(manifests.objects(chart_renders["cpu-only"]), "RayService")
    config = manifests.serve_config(rayservice)
    (cluster,) = config["applications"]
    assert (cluster["name"], cluster["route_prefix"], cluster["import_path"]) == (
        local.name,
        local.route_prefix,
        local.import_path,
    )
    assert _without_environment(cluster["args"]) == _without_environment(local.args)
    assert cluster["args"]["model"] == "/models/glm4v-demo"
    file = yaml.safe_load((manifests.ROOT / "serve_config.yaml").read_text())
    assert (config["http_options"], config["proxy_location"]) == (file["http_options"], file["proxy_location"])


def test_a_change_to_the_file_reaches_both_sides(tmp_path: Path) -> None:
    """Tuning serve_config.yaml changes the chart's render and `flashvqa serve` alike: nothing to copy."""
    shutil.copytree(manifests.CHART, tmp_path / "helm" / "flashvqa", symlinks=True)
    text = (manifests.ROOT / "serve_config.yaml").read_text().replace("max_num_seqs: 16", "max_num_seqs: 7")
    assert "max_num_seqs: 7" in text
    (tmp_path / "serve_config.yaml").write_text(text)

    rendered = manifests.render(manifests.values("production"), chart=tmp_path / "helm" / "flashvqa")
    (rayservice,) = rendered["flashvqa/templates/rayservice.yaml"]
    chart_args = manifests.serve_config(rayservice)["applications"][0]["args"]
    assert chart_args["decoder"]["max_num_seqs"] == 64  # values-production.yaml tunes it for GPUs
    assert chart_args["encoder"]["batching"]["max_batch_size"] == 16
    rendered = manifests.render(manifests.values("cpu-only"), chart=tmp_path / "helm" / "flashvqa")
    (rayservice,) = rendered["flashvqa/templates/rayservice.yaml"]
    assert manifests.serve_config(rayservice)["applications"][0]["args"]["decoder"]["max_num_seqs"] == 7
    assert load_application(text).args["decoder"]["max_num_seqs"] == 7
