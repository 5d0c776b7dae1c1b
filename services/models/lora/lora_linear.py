"""A linear layer of the language model with every resident adapter's low-rank update beside it.

The adapters sit in slots of two stacked tensors (`a`: [slots, max_rank, in], `b`: [slots, out, max_rank],
ranks below `max_rank` padded with zeros, which changes nothing); slot 0 stays zero, the base. A step sets,
through the pool's shared `LoRAStep`, which of its tokens belong to which slot; each non-base group gets its
update in one gathered matmul pair (`x[rows] @ a.T @ b.T`, added back with `index_add_`): the S-LoRA / Punica
idea, in torch, so that rows of several adapters and of the base run in the same forward."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LoRAStep:
    """The token rows of one forward per adapter slot (base rows are in none); empty: no adapter runs."""

    groups: list[tuple[int, torch.Tensor]] = field(default_factory=list)  # (slot, flat token indices [N])


class LoRALinear(torch.nn.Module):
    def __init__(self, base: torch.nn.Linear, step: LoRAStep, slots: int, max_rank: int) -> None:
        super().__init__()
        self.base = base
        self.step = step
        weight = base.weight
        self.a = torch.zeros(slots, max_rank, base.in_features, dtype=weight.dtype, device=weight.device)
        self.b = torch.zeros(slots, base.out_features, max_rank, dtype=weight.dtype, device=weight.device)

    def load(self, slot: int, a: torch.Tensor | None, b: torch.Tensor | None) -> None:
        """Put one adapter's weights for this layer in `slot` (None: the adapter leaves this layer alone)."""
        self.a[slot].zero_()
        self.b[slot].zero_()
        if a is not None and b is not None:
            rank = a.shape[0]
            self.a[slot, :rank].copy_(a, non_blocking=True)
            self.b[slot, :, :rank].copy_(b, non_blocking=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.step.groups:
            return y
        flat_x = x.reshape(-1, x.shape[-1])
        flat_y = y.view(-1, y.shape[-1])
        for slot, rows in self.step.groups:
            update = (flat_x.index_select(0, rows) @ self.a[slot].T) @ self.b[slot].T
            flat_y.index_add_(0, rows, update)
        return y
