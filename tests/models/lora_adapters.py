"""Random, non-zero LoRA adapters for the tiny models, saved as `peft` saves them; the same merged into the
weights (the answers to match); and the whole Hugging Face model they are built on (the tests' reference, and
the LoRA benchmark's adapters)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from services.models.family import FAMILIES


def full_model(model_dir: Path) -> Any:
    family_name = json.loads((model_dir / "config.json").read_text())["model_type"]
    model = FAMILIES[family_name].hf_class("model_class").from_pretrained(model_dir, dtype=torch.float32)
    return model.eval()


def make_adapter(model_dir: Path, out: Path, rank: int, seed: int, **options: Any) -> Path:
    """A random, non-zero adapter on the language model's layers, saved as `peft` saves it."""
    torch.manual_seed(seed)
    family = FAMILIES[json.loads((model_dir / "config.json").read_text())["model_type"]]
    targets = "|".join(family.lora_targets)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=rf".*language_model.*\.({targets})",
        init_lora_weights=False,  # B random too: the update is not zero
        **options,
    )
    get_peft_model(full_model(model_dir), config).save_pretrained(str(out))
    return out


def merged_model_dir(base: Path, adapter: Path, out: Path) -> Path:
    """The adapter merged into the weights, saved beside the base's tokenizer, processor and templates."""
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("*.safetensors", "*.safetensors.index.json"))
    PeftModel.from_pretrained(full_model(base), adapter).merge_and_unload().save_pretrained(str(out))
    return out
