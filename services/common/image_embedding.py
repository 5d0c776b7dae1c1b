"""The message from the vision encoder to the LLM decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageEmbedding:
    """One image, encoded: everything the language half needs and nothing of the pixels.

    `embeds` is `[num_tokens, hidden]` on the CPU; between deployments it travels once, by object
    reference, from the encoder's object store to the decoder.
    """

    content_hash: str
    grid_thw: tuple[int, int, int]
    embeds: torch.Tensor

    @property
    def num_tokens(self) -> int:
        return int(self.embeds.shape[0])
