"""A preallocated KV cache of fixed slots, one per running sequence, shared by one batched forward.

Layout: one buffer `[num_layers, 2 (keys, values), max_slots, kv_heads, max_len, head_dim]`. The engine keeps
running sequences in slots 0..B-1 (a finished sequence's slot is refilled by moving the last one down), so a
decode step attends over the contiguous view `[:B, :, :longest]`: no gather, no per-sequence objects.
Padding positions are masked out by the caller's attention mask; the buffer starts zeroed so that masked
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
        size = (shape.num_layers, 2, max_slots, shape.kv_heads, max_len, shape.head_dim)
        self.buffer = torch.zeros(size, dtype=shape.dtype, device=device)
        self.max_slots = max_slots
        self.max_len = max_len
        self.shape = shape

    @property
    def num_bytes(self) -> int:
        return self.max_slots * self.max_len * self.shape.bytes_per_token()

    def view(self, first_slot: int, cached_lengths: torch.Tensor, num_new: int) -> KVCacheView:
        """For `num_new` new tokens of each sequence in slots first_slot, first_slot+1, ...; `cached_lengths[b]`
        tokens of row b are cached before them. A prefill passes the prompts' reused lengths (0 without reuse)
        and the longest remaining prompt part; a decode step passes slot 0, the cache lengths and 1."""
        return KVCacheView(self, first_slot, cached_lengths, num_new)

    def read(self, slot: int, length: int) -> torch.Tensor:
        """A copy of a slot's first `length` tokens: `[num_layers, 2, kv_heads, length, head_dim]`."""
        return self.buffer[:, :, slot, :, :length].clone()

    def write(self, slot: int, kv: torch.Tensor) -> None:
        """The inverse of `read`: the slot's first `kv.shape[3]` tokens become `kv`."""
        self.buffer[:, :, slot, :, : kv.shape[3]] = kv

    def move(self, source: int, target: int, length: int) -> None:
        self.buffer[:, :, target, :, :length] = self.buffer[:, :, source, :, :length]


class KVCacheView:
    """What the attention layers see as their `cache`: `update` stores the new keys and values and
    returns everything the queries attend over (transformers' Cache protocol, the one method used)."""

    def __init__(self, cache: SlotKVCache, first_slot: int, cached_lengths: torch.Tensor, num_new: int) -> None:
        batch = cached_lengths.shape[0]
        device = cached_lengths.device
        self._cache = cache
        self._rows = slice(first_slot, first_slot + batch)
        # query_positions: [B, S], where each new token's key goes in its slot.
        self._query_positions = cached_lengths.unsqueeze(1) + torch.arange(num_new, device=device)
        # The right padding of a short prompt may run past the end of its slot: those keys land on the last
        # position, which a prompt that fits the context (room for one output token) never occupies.
        self._write_positions = self._query_positions.clamp(max=cache.max_len - 1)
        self._write_rows = torch.arange(first_slot, first_slot + batch, device=device).unsqueeze(1)
        self.kv_len = min(int(cached_lengths.max()) + num_new, cache.max_len)

    def causal_mask(self) -> torch.Tensor:
        """`[B, 1, S, kv_len]`, True where a query may attend: row b's s-th new token sees its own cached tokens,
        the new ones before it, and itself. Padding queries see only finite keys: never a NaN row."""
        key_positions = torch.arange(self.kv_len, device=self._query_positions.device)
        return (key_positions <= self._query_positions.unsqueeze(-1)).unsqueeze(1)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # key_states, value_states: [B, kv_heads, S, head_dim]; the indexed target is [B, S, kv_heads, head_dim].
        keys, values = self._cache.buffer[layer_idx]
        keys[self._write_rows, :, self._write_positions] = key_states.transpose(1, 2)
        values[self._write_rows, :, self._write_positions] = value_states.transpose(1, 2)
        return keys[self._rows, :, : self.kv_len], values[self._rows, :, : self.kv_len]
