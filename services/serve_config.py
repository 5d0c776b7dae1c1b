"""The Serve application that `serve_config.yaml` describes: the one source of its name, route, builder and
arguments. `flashvqa serve` deploys it with its local overrides and the Helm chart renders it with the
cluster's (`services/serve_config.yaml` and `helm/flashvqa/files/serve_config.yaml` link to that file)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from services.common.dtype_name import DTypeName


@dataclass(frozen=True)
class ServeApplication:
    name: str
    route_prefix: str
    import_path: str
    args: dict[str, Any]

    def with_args(self, overrides: dict[str, Any]) -> ServeApplication:
        return replace(self, args=merge(self.args, overrides))


def load_application(text: str | None = None) -> ServeApplication:
    """The one application of `serve_config.yaml` (or of `text`, a Serve config in the same form)."""
    if text is None:
        text = files("services").joinpath("serve_config.yaml").read_text()
    (application,) = yaml.safe_load(text)["applications"]
    return ServeApplication(
        application["name"], application["route_prefix"], application["import_path"], application.get("args") or {}
    )


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep merge, as the chart's `mergeOverwrite` does: mappings merge key by key, other values replace."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def local_args(
    model: Path, device: str | None = None, api_keys_file: str | None = None, dtype: DTypeName = "auto"
) -> dict[str, Any]:
    """The overrides of a local run (`flashvqa serve`, the load test's stack): this machine's model, device and
    dtype, anonymous access unless a key file is given."""
    # On a CPU host the encoder may use every core (it runs in bursts between the decoder's steps); the
    # decoder keeps Ray's one thread, so that its steps do not fight the per-token streaming work.
    encoder_threads = None if (device or "").startswith("cuda") else os.cpu_count()
    return {
        "model": str(model),
        "device": device,
        "dtype": dtype,
        "encoder": {"torch_threads": encoder_threads},
        "gateway": {"auth": {"api_keys_file": api_keys_file, "allow_anonymous": api_keys_file is None}},
    }
