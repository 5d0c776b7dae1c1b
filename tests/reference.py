"""transformers' own `generate` on the whole model, through the real processor: the ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from services.models.family import family_for_model_type


class ReferenceModel:
    def __init__(self, model_dir: Path) -> None:
        from transformers import AutoConfig, AutoProcessor

        family = family_for_model_type(AutoConfig.from_pretrained(model_dir).model_type)
        self.thinking_kwargs = {"enable_thinking": False} if family.name == "glm4v" else {}
        self.model = family.hf_class("model_class").from_pretrained(model_dir).eval()
        self.processor = AutoProcessor.from_pretrained(model_dir)

    def generate(self, messages: list[dict[str, Any]], images: list[Image.Image], max_new_tokens: int) -> list[int]:
        """Greedy token ids for chat-template `messages` whose image parts are filled, in order, by `images`."""
        inputs = self.processor.apply_chat_template(
            with_images(messages, images),
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            add_generation_prompt=True,
            **self.thinking_kwargs,
        )
        output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        tokens: list[int] = output[0, inputs["input_ids"].shape[1] :].tolist()
        config = self.model.generation_config
        while tokens and tokens[-1] == config.pad_token_id and tokens[-1] not in config.eos_token_id:
            tokens.pop()
        return tokens


def with_images(messages: list[dict[str, Any]], images: list[Image.Image]) -> list[dict[str, Any]]:
    """The same messages with each image part carrying its picture, as the processor wants them."""
    pictures = iter(images)

    def with_picture(part: dict[str, Any]) -> dict[str, Any]:
        return {**part, "image": next(pictures)} if part["type"] == "image" else part

    return [
        message
        if isinstance(message["content"], str)
        else {**message, "content": [with_picture(part) for part in message["content"]]}
        for message in messages
    ]
