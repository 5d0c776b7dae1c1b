"""The whole model in one process: the vision half, then the decoder engine, no Ray.

This is `flashvqa ask`, and the baseline the split deployments are measured against. It runs exactly
the code the deployments run, so what it answers they answer.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from services.common.device import default_device
from services.common.dtype_name import DTypeName
from services.llm_decoder.engine import EngineConfig, LLMEngine
from services.messages import RawImage, RequestOutput, SamplingParams
from services.models.checkpoint import model_dtype
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf


class LocalPipeline:
    def __init__(
        self,
        model_dir: Path,
        device: torch.device | None = None,
        config: EngineConfig | None = None,
        dtype: DTypeName = "auto",
    ) -> None:
        device = device or default_device()
        torch_dtype = model_dtype(model_dir, device, dtype)
        self.vision = VisionHalf(model_dir, device, torch_dtype)
        self.engine = LLMEngine(LanguageHalf(model_dir, device, torch_dtype), config)
        self._ids = itertools.count()

    def generate(
        self,
        messages: list[dict[str, Any]],
        images: list[Image.Image],
        params: SamplingParams,
        enable_thinking: bool = False,
    ) -> Iterator[RequestOutput]:
        """One request, start to finish: the engine's outputs as it produces them."""
        request_id = f"local-{next(self._ids)}"
        embeddings = self.vision.encode([RawImage.from_image(image) for image in images])
        self.engine.add_request(request_id, messages, embeddings, params, enable_thinking)
        try:
            while True:
                for output in self.engine.step():
                    yield output
                    if output.finished:
                        return
        finally:
            self.engine.abort(request_id)


def image_question(question: str, num_images: int) -> list[dict[str, Any]]:
    """The OpenAI-style user message for images followed by a question."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": question})
    return [{"role": "user", "content": content}]
