"""The whole model in one process: vision half, then language half, one request at a time.

This is `flashvqa ask`, and the baseline the split (encoder and decoder as separate deployments) is
measured against. It uses exactly the two halves the deployments use, so what it answers they answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.detokenizer import IncrementalDetokenizer
from services.models.language_half import LanguageHalf
from services.models.vision_half import VisionHalf


@dataclass(frozen=True)
class GreedyRequest:
    messages: list[dict[str, Any]]
    images: list[Image.Image]
    max_tokens: int = 256
    enable_thinking: bool = False


class LocalPipeline:
    def __init__(self, model_dir: Path, device: torch.device | None = None) -> None:
        device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        self.vision = VisionHalf(model_dir, device, dtype)
        self.language = LanguageHalf(model_dir, device, dtype)

    def generate_token_ids(self, request: GreedyRequest) -> Iterator[int]:
        """Greedy decoding; the stop token, if reached, is the last id yielded."""
        embeddings: list[ImageEmbedding] = self.vision.encode(request.images)
        prompt = self.language.render_prompt(
            request.messages, [image.grid_thw for image in embeddings], request.enable_thinking
        )
        cache = self.language.new_cache()
        logits = self.language.forward(
            self.language.embed_prompt(prompt, embeddings), prompt.positions.unsqueeze(1), cache
        )
        for _ in range(request.max_tokens):
            token_id = int(logits.argmax(-1)[0])
            yield token_id
            if token_id in self.language.stop_token_ids:
                return
            positions = self.language.decode_positions([cache.get_seq_length()], [prompt.rope_delta])
            logits = self.language.forward(self.language.embed_tokens(torch.tensor([[token_id]])), positions, cache)

    def stream_answer(self, request: GreedyRequest) -> Iterator[str]:
        """The answer as text deltas, never splitting a multi-byte character."""
        detokenizer = IncrementalDetokenizer(self.language.tokenizer)
        for token_id in self.generate_token_ids(request):
            if token_id not in self.language.stop_token_ids:
                yield detokenizer.add(token_id)
        yield detokenizer.flush()


def image_question(question: str, num_images: int) -> list[dict[str, Any]]:
    """The OpenAI-style user message for images followed by a question."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    content.append({"type": "text", "text": question})
    return [{"role": "user", "content": content}]
