"""A LoRA adapter as `peft` saves it (`adapter_config.json` + `adapter_model.safetensors`), read and checked
against the language model it is to run on.

Only plain LoRA on the language model's linear layers is served: the vision tower is refused (its embeddings
are cached by image content alone, shared by every adapter), as are DoRA, biases, per-layer ranks and
`modules_to_save`, which a per-token low-rank update cannot express. Everything is checked before the
adapter is used, so a bad one changes nothing."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load

from services.models.lora.lora_linear import LoRALinear

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# `...layers.3.self_attn.q_proj.lora_A.weight`, with whatever prefix the wrapped model gave it.
_KEY = re.compile(r"(?:^|\.)(?P<module>layers\.\d+\.[\w.]+?)\.lora_(?P<half>[AB])(?:\.[\w-]+)?\.weight$")
_VISION = re.compile(r"(?:^|\.)(visual|vision_tower|vision_model)\.")
# Options of a LoRA config that change what the update computes; any other value than these is refused.
_PLAIN: dict[str, tuple[object, ...]] = {
    "bias": ("none",),
    "use_dora": (False,),
    "fan_in_fan_out": (False,),
    "modules_to_save": (None, []),
}


class AdapterError(ValueError):
    """An adapter that cannot be served on this model; the message says why."""


@dataclass(frozen=True)
class LoRAWeights:
    """One linear layer's low-rank update, `y += x @ a.T @ b.T`, with the adapter's scale folded into `b`."""

    a: torch.Tensor  # [rank, in_features]
    b: torch.Tensor  # [out_features, rank]


@dataclass(frozen=True)
class LoRAAdapter:
    name: str
    rank: int
    digest: bytes  # of its files: the root of its prompts' KV block hashes
    weights: dict[str, LoRAWeights]  # by module path inside the text model, e.g. "layers.0.self_attn.q_proj"

    @property
    def num_bytes(self) -> int:
        return sum(w.a.numel() * w.a.element_size() + w.b.numel() * w.b.element_size() for w in self.weights.values())


def load_peft_adapter(name: str, directory: Path, text_model: torch.nn.Module, max_rank: int) -> LoRAAdapter:
    """The adapter in `directory`, on the host in the text model's dtype. Raises `AdapterError` for anything
    that cannot run on `text_model` or exceeds `max_rank`."""
    config_bytes = _read_file(directory, CONFIG_FILE)
    config = _parse_config(config_bytes)
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise AdapterError(f"{CONFIG_FILE}: r must be a positive integer, not {rank!r}")
    if rank > max_rank:
        raise AdapterError(f"rank {rank} is over this server's limit of {max_rank}")
    alpha = config.get("lora_alpha", rank)
    if not isinstance(alpha, int | float):
        raise AdapterError(f"{CONFIG_FILE}: lora_alpha must be a number, not {alpha!r}")
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    weights_bytes = _read_file(directory, WEIGHTS_FILE)
    tensors = _parse_tensors(weights_bytes)
    linears = dict(text_model.named_modules())
    dtype = next(text_model.parameters()).dtype
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if _VISION.search(key):
            raise AdapterError(f"{key} targets the vision tower; only the language model's linear layers are served")
        match = _KEY.search(key)
        if match is None:
            raise AdapterError(f"{key} is not a LoRA weight of a language-model layer")
        halves.setdefault(match["module"], {})[match["half"]] = tensor
    if not halves:
        raise AdapterError(f"{WEIGHTS_FILE} holds no LoRA weights")
    weights = {module: _layer_weights(module, pair, linears, rank, scale, dtype) for module, pair in halves.items()}
    digest = hashlib.blake2b(config_bytes + weights_bytes, digest_size=16).digest()
    return LoRAAdapter(name, rank, digest, weights)


def _read_file(directory: Path, name: str) -> bytes:
    """Each file is read once: parsed, and hashed into the adapter's digest, from the same bytes."""
    try:
        return (directory / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise AdapterError(f"{directory} has no {name}") from None
    except OSError as error:
        raise AdapterError(f"{name} cannot be read: {error}") from None


def _parse_config(raw: bytes) -> dict[str, object]:
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AdapterError(f"{CONFIG_FILE} cannot be read: {error}") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{CONFIG_FILE} is not a JSON object")
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"only LoRA adapters are served, not {config.get('peft_type')}")
    for option, plain in _PLAIN.items():
        if config.get(option, plain[0]) not in plain:
            raise AdapterError(f"{CONFIG_FILE}: {option}={config[option]!r} is not supported (only {plain[0]!r})")
    for pattern in ("rank_pattern", "alpha_pattern"):
        if config.get(pattern):
            raise AdapterError(f"{CONFIG_FILE}: per-layer {pattern} is not supported")
    return config


def _parse_tensors(raw: bytes) -> dict[str, torch.Tensor]:
    try:
        return load(raw)
    except (SafetensorError, ValueError) as error:
        raise AdapterError(f"{WEIGHTS_FILE} cannot be read: {error}") from None


def _layer_weights(
    module: str,
    pair: dict[str, torch.Tensor],
    linears: dict[str, torch.nn.Module],
    rank: int,
    scale: float,
    dtype: torch.dtype,
) -> LoRAWeights:
    if set(pair) != {"A", "B"}:
        raise AdapterError(f"{module} has lora_{next(iter(pair))} without its other half")
    linear = linears.get(module)
    if isinstance(linear, LoRALinear):  # the pool has wrapped it already
        linear = linear.base
    if not isinstance(linear, torch.nn.Linear):
        raise AdapterError(f"{module} is not a linear layer of this model's language half (another base model?)")
    a, b = pair["A"], pair["B"]
    if a.shape != (rank, linear.in_features) or b.shape != (linear.out_features, rank):
        raise AdapterError(
            f"{module}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} do not fit a linear layer of "
            f"{linear.in_features} -> {linear.out_features} at rank {rank} (another base model?)"
        )
    return LoRAWeights(a.to(dtype).contiguous(), (b.float() * scale).to(dtype).contiguous())
