"""The demo model's shape: a small Glm4vForConditionalGeneration with the project's tokenizer and the
real processor, written as an ordinary model directory that `flashvqa ask` and `serve` load."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoProcessor, GenerationConfig, Glm4vForConditionalGeneration

from services.models.checkpoint import quiet_transformers
from services.models.tiny_model import build_tiny_model


@dataclass(frozen=True)
class DemoDims:
    # Head size 16 as in the tiny test model, so its M-RoPE sections carry over unchanged.
    text_hidden: int = 128
    text_layers: int = 3
    text_heads: int = 8
    text_kv_heads: int = 2
    text_intermediate: int = 256
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 128


def new_demo_model(dims: DemoDims, seed: int) -> tuple[Glm4vForConditionalGeneration, Any, GenerationConfig]:
    """A freshly initialised model with the tiny GLM model's tokenizer, processor and generation config."""
    with tempfile.TemporaryDirectory() as scratch:
        template = build_tiny_model("glm4v", Path(scratch), seed=seed)
        config = AutoConfig.from_pretrained(template)
        processor = AutoProcessor.from_pretrained(template)
        generation_config = GenerationConfig.from_pretrained(template)
    assert config.text_config.hidden_size // config.text_config.num_attention_heads == (
        dims.text_hidden // dims.text_heads
    ), "the template's mrope_section assumes its head size"
    text, vision = config.text_config, config.vision_config
    text.hidden_size, text.num_hidden_layers = dims.text_hidden, dims.text_layers
    text.num_attention_heads, text.num_key_value_heads = dims.text_heads, dims.text_kv_heads
    text.intermediate_size = dims.text_intermediate
    vision.hidden_size, vision.depth, vision.num_heads = dims.vision_hidden, dims.vision_depth, dims.vision_heads
    vision.intermediate_size, vision.out_hidden_size = dims.vision_intermediate, dims.text_hidden
    torch.manual_seed(seed)
    return Glm4vForConditionalGeneration(config), processor, generation_config


def save_demo_model(
    model: Glm4vForConditionalGeneration, processor: Any, generation_config: GenerationConfig, out: Path
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(out)
        processor.save_pretrained(out)
        generation_config.save_pretrained(out)
    return out
