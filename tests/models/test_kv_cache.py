"""The paged KV cache: its pools per layer, and how many blocks a byte budget or a GPU's memory gives."""

from __future__ import annotations

import pytest
import torch

from services.models.kv_cache import KVShape, PagedKVCache, num_blocks_for_bytes

SHAPE = KVShape(num_layers=2, kv_heads=2, head_dim=4, dtype=torch.bfloat16)


def test_each_layer_has_a_key_and_a_value_pool_of_blocks() -> None:
    cache = PagedKVCache(SHAPE, num_blocks=5, device=torch.device("cpu"), block_size=16)
    keys, values = cache.layer(1)
    assert keys.shape == values.shape == (5, 16, 2, 4)
    assert keys.data_ptr() == cache.buffer[1, 0].data_ptr() and values.data_ptr() == cache.buffer[1, 1].data_ptr()
    assert cache.num_bytes == cache.buffer.numel() * 2 == 5 * SHAPE.bytes_per_block(16)
    with pytest.raises(ValueError, match="at least one block"):
        PagedKVCache(SHAPE, num_blocks=0, device=torch.device("cpu"))


def test_a_byte_budget_buys_whole_blocks() -> None:
    per_block = SHAPE.bytes_per_block()  # 16 tokens x 2 layers x (keys, values) x 2 heads x 4 dims x 2 bytes
    assert per_block == 16 * 2 * 2 * 2 * 4 * 2
    assert num_blocks_for_bytes(SHAPE, 10 * per_block + per_block - 1) == 10
