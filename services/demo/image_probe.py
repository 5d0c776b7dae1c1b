"""The auxiliary image objective: small heads read each scene's attributes straight off the merged image
tokens, so the vision tower and merger get a direct, dense signal from the first step instead of only
what trickles back through the decoder."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from services.demo.dataset import Sample
from services.demo.scene import CATEGORIES, COLOURS, MAX_COUNT, SHAPES, WORDS, ShapesScene, TextScene
from services.demo.varied_scene import VariedReceipt, VariedShapes, VariedText

IGNORE = -100
TOTAL_DIGITS = 5  # every total reads "ddd.dd"
_NO_TENS = 10  # the tens class of a one-digit number
# attribute -> number of classes. Numbers and totals are read digit by digit, like their answers' tokens.
ATTRIBUTES: dict[str, int] = {
    "colour": len(COLOURS),
    "shape": len(SHAPES),
    "count": MAX_COUNT,
    "number_tens": _NO_TENS + 1,
    "number_units": 10,
    "word": len(WORDS),
    "category": len(CATEGORIES),
    **{f"total_{i}": 10 for i in range(TOTAL_DIGITS)},
}


class ImageProbe(nn.Module):
    """One learned attention query per attribute over an image's tokens, then a linear classifier."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(len(ATTRIBUTES), hidden) * hidden**-0.5)
        self.heads = nn.ModuleList(nn.Linear(hidden, classes) for classes in ATTRIBUTES.values())

    def forward(self, image_tokens: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """image_tokens: one [tokens, hidden] tensor per image -> per attribute [B, classes] logits."""
        # Normalised per token as the decoder's input norm does: the merger's output starts about 1e-3 in
        # scale, and a probe reading it raw learns nothing for hundreds of steps.
        normalised = [functional.layer_norm(tokens, tokens.shape[-1:]) for tokens in image_tokens]
        pooled = torch.stack([torch.softmax(self.queries @ tokens.T, dim=-1) @ tokens for tokens in normalised])
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
        """Per attribute, over the pictures that have it; a number's or a total's digits count as one (all right)."""
        correct = torch.stack([logits.argmax(-1) for logits in self.forward(image_tokens)], dim=1) == targets
        present = targets != IGNORE
        names = list(ATTRIBUTES)
        grouped = {"number": ["number_tens", "number_units"], "total": [f"total_{i}" for i in range(TOTAL_DIGITS)]}
        in_groups = {name for group in grouped.values() for name in group}
        columns = {name: [index] for index, name in enumerate(names) if name not in in_groups}
        columns |= {group: [names.index(name) for name in members] for group, members in grouped.items()}
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
    if isinstance(scene, VariedShapes | VariedText | VariedReceipt) and scene.look.fogged:
        return list(values.values())  # nothing to read
    if isinstance(scene, ShapesScene):
        values.update(colour=scene.colour, shape=scene.shape, count=scene.count - 1)
    elif isinstance(scene, VariedShapes):
        values["count"] = scene.count - 1
        if not scene.mixed:  # one colour and one shape to name
            values.update(colour=scene.figures[0].colour, shape=scene.figures[0].shape)
    elif isinstance(scene, TextScene | VariedText):
        values["colour"] = scene.colour
        if scene.is_number:
            tens, units = divmod(int(scene.text), 10)
            values.update(number_tens=tens if len(scene.text) == 2 else _NO_TENS, number_units=units)
        else:
            values["word"] = WORDS.index(scene.text)
    else:
        values["category"] = scene.category
        digits = [int(character) for character in scene.total if character.isdigit()]
        values.update({f"total_{i}": digit for i, digit in enumerate(digits)})
    return list(values.values())
