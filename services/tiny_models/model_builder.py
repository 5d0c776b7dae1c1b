"""Random-weight models of the real architectures, written as ordinary Hugging Face model directories.

Nothing can be downloaded here, so tests (size `tiny`, a few MB) and benchmarks (size `small`, tens of
millions of parameters) run on these. A directory loads exactly like GLM-4.6V-Flash's or Qwen2.5-VL's:
config, safetensors, tokenizer, processor configs and chat template. At GLM-4.6V-Flash's own dimensions
(`FULL_GLM4V_DIMS`, for the GPU benchmark) only the files around the weights are written, and the halves are
loaded with `weights="random"`: 20 GB of random tensors are made on the device faster than read from a disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast

from services.models.checkpoint import quiet_transformers
from services.models.family import FAMILIES, GLM4V, QWEN2_5_VL, ModelFamily
from services.tiny_models.sizes import Size
from services.tiny_models.tokenizer_builder import PAD_TOKEN, STOP_TOKENS, build_tokenizer


@dataclass(frozen=True)
class ModelDims:
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_depth: int
    vision_heads: int
    vision_intermediate: int  # the merger's; GLM's vision blocks are text_hidden wide
    vocab_size: int | None = None  # None: the project tokenizer's, rounded up to 64


DIMS: dict[Size, ModelDims] = {
    "tiny": ModelDims(64, 2, 4, 2, 128, 32, 2, 2, 64),
    "small": ModelDims(512, 8, 8, 2, 1536, 384, 6, 6, 1536),
}
# GLM-4.6V-Flash (its config.json): 40 layers of 4096 with 32 query and 2 KV heads of 128, a 151,552-token
# vocabulary, a 24-layer ViT of width 1536 and 12 heads; 10.3 B parameters.
FULL_GLM4V_DIMS = ModelDims(4096, 40, 32, 2, 13696, 1536, 24, 12, 13696, vocab_size=151552)
# `small` stands in for the real checkpoints in benchmarks, and like them is saved in bf16; `tiny` stays fp32.
_CHECKPOINT_DTYPE: dict[Size, torch.dtype] = {"tiny": torch.float32, "small": torch.bfloat16}
# The real checkpoints' image processor bounds (pixels): the processors are the production ones.
_IMAGE_SIZE_BOUNDS = {GLM4V.name: (12544, 9633792), QWEN2_5_VL.name: (3136, 12845056)}
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def build_tiny_model(family_name: str, out: Path, seed: int = 0, size: Size = "tiny") -> Path:
    """Write a random-weight model directory of `family_name`; identical bytes for identical arguments."""
    config = write_model_files(family_name, out, DIMS[size])
    torch.manual_seed(seed)
    model = FAMILIES[family_name].hf_class("model_class")(config).eval().to(_CHECKPOINT_DTYPE[size])
    with quiet_transformers():
        model.save_pretrained(out)
    return out


def write_model_files(family_name: str, out: Path, dims: ModelDims) -> Any:
    """Write everything of a model directory but its weights (config, tokenizer, processor and generation
    configs, chat template); returns the model config."""
    family = FAMILIES[family_name]
    tokenizer = build_tokenizer(family)
    config = _model_config(family, tokenizer, dims)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        config.save_pretrained(out)
        _processor(family, tokenizer).save_pretrained(out)
        _generation_config(family, tokenizer).save_pretrained(out)
    return config


def chat_template(family: ModelFamily) -> str:
    return resources.files("services.tiny_models").joinpath(f"chat_templates/{family.name}.jinja").read_text()


def _vocab_size(tokenizer: PreTrainedTokenizerFast) -> int:
    return (len(tokenizer) + 63) // 64 * 64


def _token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(token_id, int) and token_id != tokenizer.unk_token_id, token
    return token_id


def _model_config(family: ModelFamily, tokenizer: PreTrainedTokenizerFast, dims: ModelDims) -> Any:
    head_dim = dims.text_hidden // dims.text_heads
    eos_ids = [_token_id(tokenizer, token) for token in STOP_TOKENS[family.name]]
    text = {
        "vocab_size": dims.vocab_size or _vocab_size(tokenizer),
        "hidden_size": dims.text_hidden,
        "intermediate_size": dims.text_intermediate,
        "num_hidden_layers": dims.text_layers,
        "num_attention_heads": dims.text_heads,
        "num_key_value_heads": dims.text_kv_heads,
        "max_position_embeddings": 32768,
        "eos_token_id": eos_ids,
        "pad_token_id": _token_id(tokenizer, PAD_TOKEN[family.name]),
    }
    vision = {
        "depth": dims.vision_depth,
        "hidden_size": dims.vision_hidden,
        "num_heads": dims.vision_heads,
        "intermediate_size": dims.vision_intermediate,
        "out_hidden_size": dims.text_hidden,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    config_class = family.hf_class("model_class").config_class
    if family is GLM4V:
        # GLM rotates half of each head (partial_rotary_factor 0.5); mrope_section splits those
        # head_dim / 4 frequencies over (t, h, w) in the real model's proportions 8:12:12.
        rotary_pairs = head_dim // 4
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 500000.0,
            "partial_rotary_factor": 0.5,
            "mrope_section": _split_like(rotary_pairs, (8, 12, 12)),
        }
        return config_class(
            text_config=text,
            vision_config={**vision, "image_size": 336},
            image_token_id=_token_id(tokenizer, "<|image|>"),
            video_token_id=_token_id(tokenizer, "<|video|>"),
            image_start_token_id=_token_id(tokenizer, "<|begin_of_image|>"),
            image_end_token_id=_token_id(tokenizer, "<|end_of_image|>"),
            video_start_token_id=_token_id(tokenizer, "<|begin_of_video|>"),
            video_end_token_id=_token_id(tokenizer, "<|end_of_video|>"),
        )
    text["bos_token_id"] = _token_id(tokenizer, "<|endoftext|>")
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 1000000.0,
        "mrope_section": _split_like(head_dim // 2, (16, 24, 24)),
    }
    return config_class(
        text_config=text,
        vision_config={
            **vision,
            "window_size": 112,
            "fullatt_block_indexes": [dims.vision_depth - 1],
            "tokens_per_second": 2,
        },
        image_token_id=_token_id(tokenizer, "<|image_pad|>"),
        video_token_id=_token_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=_token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=_token_id(tokenizer, "<|vision_end|>"),
    )


def _split_like(total: int, proportions: tuple[int, int, int]) -> list[int]:
    """Split `total` into three positive parts in roughly these proportions (t, h, w)."""
    parts = [max(1, total * share // sum(proportions)) for share in proportions]
    parts[0] += total - sum(parts)
    assert parts[0] > 0 and sum(parts) == total, (total, parts)
    return parts


def _processor(family: ModelFamily, tokenizer: PreTrainedTokenizerFast) -> Any:
    min_pixels, max_pixels = _IMAGE_SIZE_BOUNDS[family.name]
    common: dict[str, Any] = {
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": _CLIP_MEAN,
        "image_std": _CLIP_STD,
    }
    if family is GLM4V:
        common["size"] = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    else:
        common.update(min_pixels=min_pixels, max_pixels=max_pixels)
    image_processor = family.hf_class("image_processor_class")(**common)
    video_processor = family.hf_class("video_processor_class")(**common)
    return family.hf_class("processor_class")(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template(family),
    )


def _generation_config(family: ModelFamily, tokenizer: PreTrainedTokenizerFast) -> GenerationConfig:
    return GenerationConfig(
        eos_token_id=[_token_id(tokenizer, token) for token in STOP_TOKENS[family.name]],
        pad_token_id=_token_id(tokenizer, PAD_TOKEN[family.name]),
        do_sample=False,
    )


def describe(model_dir: Path) -> dict[str, Any]:
    """A short summary of a model directory, for the CLI."""
    config = json.loads((model_dir / "config.json").read_text())
    weights = sum(path.stat().st_size for path in model_dir.glob("*.safetensors"))
    return {"model_type": config["model_type"], "weights_bytes": weights, "path": str(model_dir)}
