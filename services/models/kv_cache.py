"""A preallocated KV cache of fixed slots, one per running sequence, shared by one batched forward.

Layout: one buffer `[num_layers, 2 (keys, values), max_slots, kv_heads, max_len, head_dim]`. The engine keeps
running sequences in slots 0..n-1 (a finished sequence's slot is refilled by moving the last one down), so a
decode step attends over the contiguous view `[:n, :, :longest]`: no gather, no per-sequence objects.
Positions past a row's length are masked out by the attention backend; the buffer starts zeroed so that
masked positions never hold NaNs that `0 * NaN` would spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KVShape:
    num_layers: int
    kv_heads: int
    head_dim: int
    dtype: torch.dtype

    def bytes_per_token(self) -> int:
        return 2 * self.num_layers * self.kv_heads * self.head_dim * self.dtype.itemsize


class SlotKVCache:
    def __init__(self, shape: KVShape, max_slots: int, max_len: int, device: torch.device) -> None:
        size = (shape.num_layers, 2, max_slots, shape.kv_heads, max_len, shape.head_dim)
        self.buffer = torch.zeros(size, dtype=shape.dtype, device=device)
        self.max_slots = max_slots
        self.max_len = max_len
        self.shape = shape

    @property
    def num_bytes(self) -> int:
        return self.max_slots * self.max_len * self.shape.bytes_per_token()

    def read(self, slot: int, length: int) -> torch.Tensor:
        """A copy of a slot's first `length` tokens: `[num_layers, 2, kv_heads, length, head_dim]`."""
        return self.buffer[:, :, slot, :, :length].clone()

    def write(self, slot: int, kv: torch.Tensor) -> None:
        """The inverse of `read`: the slot's first `kv.shape[3]` tokens become `kv`."""
        self.buffer[:, :, slot, :, : kv.shape[3]] = kv

    def move(self, source: int, target: int, length: int) -> None:
        self.buffer[:, :, target, :, :length] = self.buffer[:, :, source, :, :length]
