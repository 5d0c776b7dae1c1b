"""The model families we serve, and the one place that names their Hugging Face classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import transformers


@dataclass(frozen=True)
class ModelFamily:
    """What the split needs to know about one architecture family.

    Checkpoint key patterns are regexes rewritten to the sub-model's own key names, so one loader reads
    both the current layout (`model.visual.*`, `model.language_model.*`) and the legacy one that
    published Qwen2.5-VL checkpoints still use (`visual.*`, `model.layers.*`).
    """

    name: str
    model_type: str
    model_class: str
    vision_class: str
    text_class: str
    processor_class: str
    image_processor_class: str
    video_processor_class: str
    image_token: str
    vision_key_mapping: dict[str, str]
    text_key_mapping: dict[str, str]
    lora_targets: tuple[str, ...]  # the language model's linear layers a LoRA adapter may adapt

    def hf_class(self, attribute: str) -> Any:
        """The transformers class named by one of this family's `*_class` fields."""
        return getattr(transformers, getattr(self, attribute))


GLM4V = ModelFamily(
    name="glm4v",
    model_type="glm4v",
    model_class="Glm4vForConditionalGeneration",
    vision_class="Glm4vVisionModel",
    text_class="Glm4vTextModel",
    # GLM-4.6V-Flash ships the Glm46V processor classes with the Glm4v model class.
    processor_class="Glm46VProcessor",
    image_processor_class="Glm46VImageProcessor",
    video_processor_class="Glm46VVideoProcessor",
    image_token="<|image|>",
    vision_key_mapping={r"^model\.visual\.": ""},
    text_key_mapping={r"^model\.language_model\.": ""},
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),
)

QWEN2_5_VL = ModelFamily(
    name="qwen2_5_vl",
    model_type="qwen2_5_vl",
    model_class="Qwen2_5_VLForConditionalGeneration",
    vision_class="Qwen2_5_VisionTransformerPretrainedModel",
    text_class="Qwen2_5_VLTextModel",
    processor_class="Qwen2_5_VLProcessor",
    image_processor_class="Qwen2VLImageProcessor",
    video_processor_class="Qwen2VLVideoProcessor",
    image_token="<|image_pad|>",
    vision_key_mapping={r"^(model\.)?visual\.": ""},
    text_key_mapping={r"^model\.(language_model\.)?": ""},
    lora_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)

FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (GLM4V, QWEN2_5_VL)}


class UnsupportedModelError(ValueError):
    """The model directory holds an architecture flashvqa does not serve."""


def family_for_model_type(model_type: str) -> ModelFamily:
    for family in FAMILIES.values():
        if family.model_type == model_type:
            return family
    supported = ", ".join(f.model_type for f in FAMILIES.values())
    raise UnsupportedModelError(f"model_type {model_type!r} is not supported (supported: {supported})")
