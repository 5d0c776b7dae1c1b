"""Attention over a flat batch: each token's keys land in its slot at its position, and the reference
backend gives every row what full causal attention over its own sequence gives it (decode rows in any slots,
prompt chunks that start after cached tokens, grouped-query heads)."""

from __future__ import annotations

import pytest
import torch

from services.models.attention import AttentionStep, BatchLayout, ChunkLayout, available_backends, choose_backend
from services.models.kv_cache import KVShape, SlotKVCache

CPU = torch.device("cpu")
HEADS, KV_HEADS, HEAD_DIM = 4, 2, 8


def test_the_layout_lists_each_tokens_slot_and_position() -> None:
    layout = BatchLayout(decodes=(ChunkLayout(2, 7, 1), ChunkLayout(0, 3, 1)), chunks=(ChunkLayout(1, 4, 3),))
    assert layout.num_tokens == 5
    assert layout.write_slots() == [2, 0, 1, 1, 1]
    assert layout.write_positions() == [7, 3, 4, 5, 6]
    assert layout.chunk_offsets() == [2]
    with pytest.raises(ValueError, match="one token"):
        BatchLayout(decodes=(ChunkLayout(0, 3, 2),), chunks=())


def test_update_writes_each_token_at_its_slot_and_position() -> None:
    cache = SlotKVCache(KVShape(num_layers=1, kv_heads=1, head_dim=1, dtype=torch.float32), 3, 8, CPU)
    layout = BatchLayout(decodes=(ChunkLayout(2, 5, 1),), chunks=(ChunkLayout(0, 0, 3),))
    step = AttentionStep(choose_backend(CPU), layout, cache)
    new = torch.tensor([10.0, 20.0, 21.0, 22.0]).view(1, 1, 4, 1)
    keys, values = step.update(new, -new, layer_idx=0)
    assert keys.shape == (3, 1, 8, 1) and keys.data_ptr() == cache.buffer[0, 0].data_ptr()
    assert keys[2, 0, :, 0].tolist() == [0, 0, 0, 0, 0, 10, 0, 0]
    assert keys[0, 0, :, 0].tolist() == [20, 21, 22, 0, 0, 0, 0, 0]
    assert values[0, 0, :3, 0].tolist() == [-20, -21, -22]
    assert cache.buffer[0, :, 1].abs().sum() == 0  # the slot no row uses is untouched


def _full_causal(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float) -> torch.Tensor:
    """One sequence, written out: query [heads, q, d] at the last q of keys [kv_heads, k, d]'s positions."""
    keys = keys.repeat_interleave(HEADS // KV_HEADS, dim=0)
    values = values.repeat_interleave(HEADS // KV_HEADS, dim=0)
    scores = query @ keys.transpose(1, 2) * scale
    q, k = query.shape[1], keys.shape[1]
    allowed = torch.arange(k) <= (torch.arange(q) + k - q).unsqueeze(1)
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ values


def test_the_reference_backend_is_full_causal_attention_per_sequence() -> None:
    generator = torch.Generator().manual_seed(0)
    cache = SlotKVCache(KVShape(num_layers=1, kv_heads=KV_HEADS, head_dim=HEAD_DIM, dtype=torch.float32), 4, 32, CPU)
    cache.buffer.copy_(torch.randn(cache.buffer.shape, generator=generator))  # cached tokens of every slot
    # Decodes in slots 3 and 1 (slot 0 is mid-prompt, slot 2 idle), then two chunks: slot 0 continues its
    # prompt after 9 cached tokens, slot 2 starts one.
    layout = BatchLayout(decodes=(ChunkLayout(3, 12, 1), ChunkLayout(1, 20, 1)),
                         chunks=(ChunkLayout(0, 9, 5), ChunkLayout(2, 0, 4)))
    backend = choose_backend(CPU, "torch_sdpa")
    step = AttentionStep(backend, layout, cache)
    tokens = layout.num_tokens
    new_keys, new_values = (torch.randn(1, KV_HEADS, tokens, HEAD_DIM, generator=generator) for _ in range(2))
    query = torch.randn(1, HEADS, tokens, HEAD_DIM, generator=generator)
    keys, values = step.update(new_keys, new_values, layer_idx=0)
    scale = HEAD_DIM**-0.5
    output = backend.attend(query, keys, values, step.prepared, scale)
    assert output.shape == (1, tokens, HEADS, HEAD_DIM)

    offset = 0
    for row in layout.rows:
        rows = slice(offset, offset + row.length)
        expected = _full_causal(query[0, :, rows], keys[row.slot, :, : row.context_len],
                                values[row.slot, :, : row.context_len], scale)
        torch.testing.assert_close(output[0, rows].transpose(0, 1), expected, rtol=1e-5, atol=1e-5)
        offset += row.length


def test_backends_are_chosen_by_name_or_by_device() -> None:
    assert "torch_sdpa" in available_backends(CPU)
    assert choose_backend(CPU).name == available_backends(CPU)[0]
    with pytest.raises(ValueError, match="not available"):
        choose_backend(CPU, "no_such_backend")
