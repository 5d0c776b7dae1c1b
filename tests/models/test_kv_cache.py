"""The slot cache: a slot's prefix read out, written back and moved to another slot."""

from __future__ import annotations

import torch

from services.models.kv_cache import KVShape, SlotKVCache


def test_read_write_and_move_copy_a_slots_prefix() -> None:
    cache = SlotKVCache(KVShape(2, 2, 4, torch.float32), max_slots=3, max_len=16, device=torch.device("cpu"))
    kv = torch.randn(2, 2, 2, 6, 4)
    cache.write(0, kv)
    assert torch.equal(cache.read(0, 6), kv)
    cache.move(source=0, target=2, length=6)
    assert torch.equal(cache.read(2, 6), kv)
    read = cache.read(2, 6)
    cache.write(2, torch.zeros(2, 2, 2, 6, 4))
    assert torch.equal(read, kv)  # a read is a copy: the slot's later use cannot change it
