"""The vision half: the image processor, the vision tower and the merger, and nothing else."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoImageProcessor

from services.common.image_embedding import ImageEmbedding
from services.messages import RawImage
from services.models.checkpoint import Weights, load_submodel, random_submodel
from services.models.family import family_for_model_type


class VisionHalf:
    """Images -> one embedding block per image, in the language model's hidden size.

    Images of different sizes go through the tower in one call: the processor flattens them into one
    patch sequence and the tower's attention keeps them apart by `grid_thw`.
    """

    def __init__(
        self, model_dir: Path, device: torch.device, dtype: torch.dtype = torch.float32, weights: Weights = "checkpoint"
    ) -> None:
        """`weights="random"`: the directory's dimensions with random weights, nothing read (benchmarks)."""
        config = AutoConfig.from_pretrained(model_dir)
        self.family = family_for_model_type(config.model_type)
        self.device = device
        self.image_processor = AutoImageProcessor.from_pretrained(model_dir)
        vision_class = self.family.hf_class("vision_class")
        self.tower = (
            random_submodel(vision_class, config.vision_config, device, dtype)
            if weights == "random"
            else load_submodel(
                model_dir, vision_class, config.vision_config, self.family.vision_key_mapping, device, dtype
            )
        )
        self.merge_size: int = config.vision_config.spatial_merge_size

    @torch.inference_mode()
    def encode(self, images: list[RawImage]) -> list[ImageEmbedding]:
        """Each image's content hash travels on into its embedding: it was computed once, by the caller."""
        if not images:
            return []
        inputs = self.image_processor(images=[image.to_image() for image in images], return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(self.device, self.tower.dtype)
        grids = inputs["image_grid_thw"].to(self.device)
        # pooler_output: [sum of image tokens, hidden], after the patch merger.
        merged = self.tower(pixel_values, grid_thw=grids).pooler_output
        sizes = (grids.prod(-1) // self.merge_size**2).tolist()
        blocks = torch.split(merged.cpu(), sizes)
        return [
            ImageEmbedding(content_hash=image.content_hash, grid_thw=_grid(grid), embeds=block)
            for image, grid, block in zip(images, grids.tolist(), blocks, strict=True)
        ]


def _grid(values: list[int]) -> tuple[int, int, int]:
    t, h, w = values
    return (t, h, w)
