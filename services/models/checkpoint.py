"""Loading one half of a vision-language checkpoint without reading the other half."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from transformers import PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from services.common.dtype import serving_dtype
from services.common.dtype_name import DTypeName

# Where a half's weights come from: the directory's safetensors, or random tensors at its config's dimensions.
Weights = Literal["checkpoint", "random"]


@contextmanager
def quiet_transformers() -> Iterator[None]:
    # Loading a half reports the other half's keys as "unexpected": true, and noise in our logs.
    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def load_submodel(
    model_dir: Path,
    model_class: Any,
    config: PretrainedConfig,
    key_mapping: dict[str, str],
    device: torch.device,
    dtype: torch.dtype,
) -> PreTrainedModel:
    """Instantiate `model_class` from `config` and fill it with the checkpoint tensors that
    `key_mapping` renames onto it; the other tensors are never materialised."""
    with quiet_transformers():
        module, info = model_class.from_pretrained(
            model_dir,
            config=config,
            key_mapping=key_mapping,
            dtype=dtype,
            device_map=device,
            output_loading_info=True,
        )
    if info["missing_keys"]:
        # from_pretrained would leave these randomly initialised: a silently wrong model.
        missing = sorted(info["missing_keys"])
        raise ValueError(f"{model_dir} lacks {len(missing)} tensors of {model_class.__name__}, e.g. {missing[:3]}")
    module.eval()
    return module


def random_submodel(
    model_class: Any, config: PretrainedConfig, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> PreTrainedModel:
    """`model_class` from `config` with random weights made on `device`, nothing read from disk: a checkpoint's
    dimensions without its 20 GB, for benchmarks on a host that has no weights (vLLM's `load_format=dummy`)."""
    torch.manual_seed(seed)
    with torch.device(device), quiet_transformers():
        module = model_class._from_config(config, dtype=dtype)
    module.eval()
    return module


def checkpoint_dtype(model_dir: Path) -> torch.dtype | None:
    """The dtype the checkpoint was saved in, as its config.json states it (`dtype`; `torch_dtype` before
    transformers 5), or None when it does not say."""
    config = json.loads((model_dir / "config.json").read_text())
    name = config.get("dtype") or config.get("torch_dtype")
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    return dtype if isinstance(dtype, torch.dtype) else None


def model_dtype(model_dir: Path, device: torch.device, requested: DTypeName = "auto") -> torch.dtype:
    return serving_dtype(requested, device, checkpoint_dtype(model_dir))


def read_tensor(model_dir: Path, name: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """One tensor of a (possibly sharded) safetensors checkpoint, e.g. `lm_head.weight`."""
    index_file = model_dir / "model.safetensors.index.json"
    if index_file.exists():
        weight_map: dict[str, str] = json.loads(index_file.read_text())["weight_map"]
        if name not in weight_map:
            raise KeyError(f"{name} is not in {index_file}")
        shard = model_dir / weight_map[name]
    else:
        shard = model_dir / "model.safetensors"
    with safe_open(str(shard), framework="pt", device=str(device)) as checkpoint:
        return checkpoint.get_tensor(name).to(dtype)
