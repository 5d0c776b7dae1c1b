"""The slot cache's view: each row's new keys go after its own cached ones, and each query sees exactly its
cached tokens and the new ones up to itself."""

from __future__ import annotations

import torch

from services.models.kv_cache import KVShape, SlotKVCache

SHAPE = KVShape(num_layers=1, kv_heads=1, head_dim=1, dtype=torch.float32)


def _new_keys(values: list[list[float]]) -> torch.Tensor:
    """[B, kv_heads=1, S, head_dim=1] from one list of values per row."""
    return torch.tensor(values, dtype=torch.float32).view(len(values), 1, -1, 1)


def test_rows_continue_after_their_own_cached_tokens() -> None:
    cache = SlotKVCache(SHAPE, max_slots=3, max_len=8, device=torch.device("cpu"))
    # Slot 1 holds 5 reused tokens; slot 2 none. Row 0 (slot 1) has 1 new token, row 1 (slot 2) has 3: the
    # batch is padded to 3, and row 0's padding would run past the slot's end (5 + 3 > 8 - 1).
    cache.write(1, torch.arange(1.0, 6.0).view(1, 1, 1, 5, 1).expand(1, 2, 1, 5, 1))
    view = cache.view(first_slot=1, cached_lengths=torch.tensor([5, 0]), num_new=3)
    new = _new_keys([[10, 11, 12], [20, 21, 22]])
    keys, values = view.update(new, new, layer_idx=0)

    assert view.kv_len == 8
    assert keys.shape == values.shape == (2, 1, 8, 1)
    assert keys[0, 0, :6, 0].tolist() == [1, 2, 3, 4, 5, 10]  # the reused prefix, then its one real new token
    assert keys[1, 0, :3, 0].tolist() == [20, 21, 22]
    assert cache.buffer[0, 0, 0].abs().sum() == 0  # other slots untouched

    mask = view.causal_mask()[:, 0]
    assert mask.shape == (2, 3, 8)
    assert mask[0, 0].tolist() == [True] * 6 + [False] * 2  # row 0's new token sees its 5 cached and itself
    assert mask[1].int().tolist() == [[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]


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
