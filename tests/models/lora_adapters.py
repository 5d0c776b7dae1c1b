"""Random, non-zero LoRA adapters for the tiny models, saved as `peft` saves them, and the whole Hugging Face
model they are built on (the tests' reference, and the LoRA benchmark's adapters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

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
