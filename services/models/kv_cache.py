"""A preallocated KV cache of fixed slots, one per running sequence, shared by one batched forward.

Layout per layer: keys and values `[max_slots, kv_heads, max_len, head_dim]`. The engine keeps running
sequences in slots 0..B-1 (a finished sequence's slot is refilled by moving the last one down), so a
decode step attends over the contiguous view `[:B, :, :longest]`: no gather, no per-sequence objects.
Padding positions are masked out by the caller's attention mask; the buffers start zeroed so that masked
positions never hold NaNs that `0 * NaN` would spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        size = (max_slots, shape.kv_heads, max_len, shape.head_dim)
        self.keys = [torch.zeros(size, dtype=shape.dtype, device=device) for _ in range(shape.num_layers)]
        self.values = [torch.zeros(size, dtype=shape.dtype, device=device) for _ in range(shape.num_layers)]
        self.max_slots = max_slots
        self.max_len = max_len
        self.shape = shape

    @property
    def num_bytes(self) -> int:
        return self.max_slots * self.max_len * self.shape.bytes_per_token()

    def prefill_view(self, first_slot: int) -> KVCacheView:
        """For whole prompts, right-padded to one length, of the sequences in slots first_slot, first_slot+1..."""
        return KVCacheView(self, first_slot=first_slot)

    def decode_view(self, lengths: torch.Tensor) -> KVCacheView:
        """For one new token of each sequence in slots 0..B-1; `lengths[b]` tokens are cached before it."""
        return KVCacheView(self, lengths=lengths)

    def move(self, source: int, target: int, length: int) -> None:
        for keys, values in zip(self.keys, self.values, strict=True):
            keys[target, :, :length] = keys[source, :, :length]
            values[target, :, :length] = values[source, :, :length]


class KVCacheView:
    """What the attention layers see as their `cache`: `update` stores the new keys and values and
    returns everything the queries attend over (transformers' Cache protocol, the one method used)."""

    def __init__(self, cache: SlotKVCache, first_slot: int = 0, lengths: torch.Tensor | None = None) -> None:
        self._cache = cache
        self._first_slot = first_slot
        self._lengths = lengths
        if lengths is not None:
            self._batch = torch.arange(lengths.shape[0], device=lengths.device)
            self._kv_len = int(lengths.max()) + 1

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # key_states, value_states: [B, kv_heads, S, head_dim]
        keys, values = self._cache.keys[layer_idx], self._cache.values[layer_idx]
        batch = key_states.shape[0]
        if self._lengths is None:
            # Padding positions get (finite) keys too; they lie past each sequence's length, where decode
            # masks them until it overwrites them.
            rows, length = slice(self._first_slot, self._first_slot + batch), key_states.shape[2]
            keys[rows, :, :length] = key_states
            values[rows, :, :length] = value_states
            return keys[rows, :, :length], values[rows, :, :length]
        keys[self._batch, :, self._lengths] = key_states[:, :, 0]
        values[self._batch, :, self._lengths] = value_states[:, :, 0]
        return keys[:batch, :, : self._kv_len], values[:batch, :, : self._kv_len]
