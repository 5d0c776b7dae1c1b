"""The auxiliary image objective: small heads read each scene's attributes straight off the merged image
tokens, so the vision tower and merger get a direct, dense signal from the first step instead of only
what trickles back through the decoder."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from services.demo.dataset import Sample
from services.demo.scene import CATEGORIES, COLOURS, MAX_COUNT, SHAPES, WORDS, ReceiptScene, ShapesScene, TextScene

IGNORE = -100
TOTAL_CHARS = 6  # "999.99", right-aligned; shorter totals are padded with a blank class
_TOTAL_ALPHABET = "0123456789."
# attribute -> number of classes; the total's characters are one attribute each.
ATTRIBUTES: dict[str, int] = {
    "colour": len(COLOURS), "shape": len(SHAPES), "count": MAX_COUNT, "text": 100 + len(WORDS),
    "category": len(CATEGORIES), **{f"total_{i}": len(_TOTAL_ALPHABET) + 1 for i in range(TOTAL_CHARS)},
}


class ImageProbe(nn.Module):
    """One learned attention query per attribute over an image's tokens, then a linear classifier."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(len(ATTRIBUTES), hidden) * hidden**-0.5)
        self.heads = nn.ModuleList(nn.Linear(hidden, classes) for classes in ATTRIBUTES.values())

    def forward(self, image_tokens: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """image_tokens: one [tokens, hidden] tensor per image -> per attribute [B, classes] logits."""
        pooled = torch.stack([torch.softmax(self.queries @ tokens.T, dim=-1) @ tokens for tokens in image_tokens])
        return [head(pooled[:, index]) for index, head in enumerate(self.heads)]  # pooled: [B, attributes, hidden]

    def loss(self, image_tokens: tuple[torch.Tensor, ...], targets: torch.Tensor) -> torch.Tensor:
        """Mean cross entropy over the attributes each picture has (targets: [B, attributes])."""
        losses = [
            functional.cross_entropy(logits, targets[:, index], ignore_index=IGNORE)
            for index, logits in enumerate(self.forward(image_tokens))
            if (targets[:, index] != IGNORE).any()
        ]
        return torch.stack(losses).mean()

    @torch.no_grad()
    def accuracy(self, image_tokens: tuple[torch.Tensor, ...], targets: torch.Tensor) -> dict[str, float]:
        """Per attribute, over the pictures that have it; the total's characters count as one (all right)."""
        correct = torch.stack([logits.argmax(-1) for logits in self.forward(image_tokens)], dim=1) == targets
        present = targets != IGNORE
        names = list(ATTRIBUTES)
        total_columns = [names.index(f"total_{i}") for i in range(TOTAL_CHARS)]
        columns = {name: [index] for index, name in enumerate(names) if index not in total_columns}
        columns["total"] = total_columns
        accuracy = {}
        for name, indices in columns.items():
            rows = present[:, indices].all(dim=1)
            if rows.any():
                accuracy[name] = correct[rows][:, indices].all(dim=1).float().mean().item()
        return accuracy


def probe_targets(samples: tuple[Sample, ...]) -> torch.Tensor:
    return torch.tensor([_targets(sample) for sample in samples])


def _targets(sample: Sample) -> list[int]:
    values = dict.fromkeys(ATTRIBUTES, IGNORE)
    scene = sample.scene
    if isinstance(scene, ShapesScene):
        values.update(colour=scene.colour, shape=scene.shape, count=scene.count - 1)
    elif isinstance(scene, TextScene):
        values.update(colour=scene.colour, text=int(scene.text) if scene.is_number else 100 + WORDS.index(scene.text))
    else:
        assert isinstance(scene, ReceiptScene)
        values["category"] = scene.category
        blank = len(_TOTAL_ALPHABET)
        characters = [blank] * (TOTAL_CHARS - len(scene.total)) + [_TOTAL_ALPHABET.index(c) for c in scene.total]
        values.update({f"total_{i}": character for i, character in enumerate(characters)})
    return list(values.values())
