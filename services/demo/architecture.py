"""The demo model's shape: a small Glm4vForConditionalGeneration with the project's tokenizer and the
real processor, written as an ordinary model directory that `flashvqa ask` and `serve` load."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoProcessor, GenerationConfig, Glm4vForConditionalGeneration
from transformers.image_processing_utils import SizeDict

from services.models.checkpoint import quiet_transformers
from services.tiny_models.model_builder import build_tiny_model

# The processor scales a larger picture down to this many pixels (aspect kept): at most 64 image tokens, so
# a 512-pixel upload costs the demo model no more than twice a 168-pixel training scene (36).
DEMO_MAX_PIXELS = 224 * 224


@dataclass(frozen=True)
class DemoDims:
    text_hidden: int = 128
    text_layers: int = 3
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 256
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 128
    # M-RoPE gives image rows and columns their own rotary frequencies. With the real model's theta
    # (500k) and a small head, the row and column frequencies turn less than a degree across the picture's
    # six tokens, and the decoder cannot tell one place from another: a total is then unreadable.
    rope_theta: float = 10.0
    mrope_section: tuple[int, int, int] = (2, 3, 3)  # (t, h, w) rotary pairs: a quarter of the head size


def new_demo_model(dims: DemoDims, seed: int) -> tuple[Glm4vForConditionalGeneration, Any, GenerationConfig]:
    """A freshly initialised model with the tiny GLM model's tokenizer, processor and generation config."""
    with tempfile.TemporaryDirectory() as scratch:
        template = build_tiny_model("glm4v", Path(scratch), seed=seed)
        config = AutoConfig.from_pretrained(template)
        processor = AutoProcessor.from_pretrained(template)
        generation_config = GenerationConfig.from_pretrained(template)
    # GLM's resize counts the two temporal copies of a still picture: its pixel bound is twice the picture's.
    processor.image_processor.size = SizeDict(
        shortest_edge=processor.image_processor.size.shortest_edge, longest_edge=2 * DEMO_MAX_PIXELS
    )
    assert sum(dims.mrope_section) * 4 == dims.text_hidden // dims.text_heads, "GLM rotates half of each head"
    text, vision = config.text_config, config.vision_config
    text.hidden_size, text.num_hidden_layers = dims.text_hidden, dims.text_layers
    text.num_attention_heads, text.num_key_value_heads = dims.text_heads, dims.text_kv_heads
    text.intermediate_size = dims.text_intermediate
    text.rope_parameters = {
        **text.rope_parameters,
        "rope_theta": dims.rope_theta,
        "mrope_section": list(dims.mrope_section),
    }
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
