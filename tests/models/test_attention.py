"""Attention over a flat batch on a paged KV cache: each token's keys land in its block at its offset, and
every backend gives every row what full causal attention over its own sequence gives it (decode rows with
blocks anywhere in the pool, prompt chunks that start after cached tokens, blocks shared by two rows,
grouped-query heads)."""

from __future__ import annotations

import pytest
import torch

from services.models.attention import AttentionStep, BatchLayout, RowLayout, available_backends, choose_backend
from services.models.attention.padded_decode import PaddedDecode, PaddedDecodeAttention
from services.models.kv_cache import KVShape, PagedKVCache

CPU = torch.device("cpu")
HEADS, KV_HEADS, HEAD_DIM = 4, 2, 8
BLOCK = 4


def test_the_layout_maps_each_token_to_its_blocks_slot() -> None:
    layout = BatchLayout(
        decodes=(RowLayout([5, 2], 7, 1), RowLayout([0], 3, 1)), chunks=(RowLayout([3, 1, 6], 3, 3),), block_size=BLOCK
    )
    assert layout.num_tokens == 5
    # position 7 of [5, 2] is block 2 offset 3; position 3 of [0] is block 0 offset 3; 3..5 of [3, 1, 6] run
    # from block 3's last slot into block 1.
    assert layout.slot_mapping().tolist() == [2 * 4 + 3, 3, 3 * 4 + 3, 1 * 4, 1 * 4 + 1]
    assert layout.chunk_offsets() == [2]
    assert layout.block_tables(layout.decodes).tolist() == [[5, 2], [0, 0]]
    assert layout.block_tables(layout.chunks).tolist() == [[3, 1]]  # its context (6 tokens) needs two blocks
    with pytest.raises(ValueError, match="one token"):
        BatchLayout(decodes=(RowLayout([0], 2, 2),), chunks=(), block_size=BLOCK)
    with pytest.raises(ValueError, match="does not cover"):
        BatchLayout(decodes=(RowLayout([0], 4, 1),), chunks=(), block_size=BLOCK)


def test_update_writes_each_token_into_its_block() -> None:
    cache = PagedKVCache(KVShape(num_layers=1, kv_heads=1, head_dim=1, dtype=torch.float32), 3, CPU, block_size=BLOCK)
    layout = BatchLayout(decodes=(RowLayout([2, 1], 5, 1),), chunks=(RowLayout([0], 0, 3),), block_size=BLOCK)
    step = AttentionStep.for_layout(choose_backend(CPU), layout, cache, layout.slot_mapping())
    new = torch.tensor([10.0, 20.0, 21.0, 22.0]).view(1, 1, 4, 1)
    keys, values = step.update(new, -new, layer_idx=0)
    assert keys.shape == (3, BLOCK, 1, 1) and keys.data_ptr() == cache.buffer[0, 0].data_ptr()
    assert keys[1, :, 0, 0].tolist() == [0, 10, 0, 0]  # position 5: the second block (1), offset 1
    assert keys[0, :, 0, 0].tolist() == [20, 21, 22, 0]
    assert values[0, :3, 0, 0].tolist() == [-20, -21, -22]
    assert cache.buffer[0, :, 2].abs().sum() == 0  # a block no token of this step goes to is untouched


def _full_causal(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float) -> torch.Tensor:
    """One sequence, written out: query [heads, q, d] at the last q of keys [kv_heads, k, d]'s positions."""
    keys = keys.repeat_interleave(HEADS // KV_HEADS, dim=0)
    values = values.repeat_interleave(HEADS // KV_HEADS, dim=0)
    scores = query @ keys.transpose(1, 2) * scale
    q, k = query.shape[1], keys.shape[1]
    allowed = torch.arange(k) <= (torch.arange(q) + k - q).unsqueeze(1)
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ values


def _sequence_keys(pool: torch.Tensor, row: RowLayout) -> torch.Tensor:
    """`[kv_heads, context, head_dim]`: a row's keys read block by block, the slow and obvious way."""
    blocks = [pool[block] for block in row.block_table[: row.num_blocks(BLOCK)]]
    return torch.cat(blocks)[: row.context_len].transpose(0, 1)


@pytest.mark.parametrize("backend_name", available_backends(CPU, include_slow=True))
def test_every_backend_is_full_causal_attention_per_sequence(backend_name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    shape = KVShape(num_layers=1, kv_heads=KV_HEADS, head_dim=HEAD_DIM, dtype=torch.float32)
    cache = PagedKVCache(shape, 16, CPU, block_size=BLOCK)
    cache.buffer.copy_(torch.randn(cache.buffer.shape, generator=generator))  # cached tokens of every block
    # Two decodes (one over blocks scattered through the pool), then two chunks: one continues its prompt after
    # 9 cached tokens, sharing its first two blocks with the first decode; one starts a prompt.
    layout = BatchLayout(
        decodes=(RowLayout([9, 4, 13, 2], 12, 1), RowLayout([1, 7, 3, 0, 5, 8], 20, 1)),
        chunks=(RowLayout([9, 4, 10, 11], 9, 5), RowLayout([6], 0, 4)),
        block_size=BLOCK,
    )
    backend = choose_backend(CPU, backend_name)
    step = AttentionStep.for_layout(backend, layout, cache, layout.slot_mapping())
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
        expected = _full_causal(query[0, :, rows], _sequence_keys(keys, row), _sequence_keys(values, row), scale)
        torch.testing.assert_close(output[0, rows].transpose(0, 1), expected, rtol=1e-5, atol=1e-5)
        offset += row.length


def test_padded_decode_attention_reads_only_each_rows_context_whatever_the_width() -> None:
    """The CUDA graphs' attention: tables padded wider than any row needs, with a pool full of other keys, still
    give each decode row full causal attention over its own keys."""
    generator = torch.Generator().manual_seed(1)
    shape = KVShape(num_layers=1, kv_heads=KV_HEADS, head_dim=HEAD_DIM, dtype=torch.float32)
    cache = PagedKVCache(shape, 16, CPU, block_size=BLOCK)
    cache.buffer.copy_(torch.randn(cache.buffer.shape, generator=generator))
    decodes = (RowLayout([9, 4, 13, 2], 12, 1), RowLayout([1, 7], 5, 1), RowLayout([3], 0, 1))
    layout = BatchLayout(decodes=decodes, chunks=(), block_size=BLOCK)
    backend = PaddedDecodeAttention()
    exact = backend.prepare(layout, CPU)
    assert exact.block_tables.shape == (3, 4) and exact.key_mask.sum(1).tolist() == [13, 6, 1]
    # Eight blocks wide, the padding pointing at block 15 (whose keys are noise): the graphs' layout.
    tables = torch.full((3, 8), 15)
    tables[:, :4] = exact.block_tables
    padded = PaddedDecode(tables, torch.arange(8 * BLOCK) < torch.tensor([13, 6, 1]).unsqueeze(1))
    step = AttentionStep(backend, padded, cache, layout.slot_mapping())
    new_keys, new_values = (torch.randn(1, KV_HEADS, 3, HEAD_DIM, generator=generator) for _ in range(2))
    query = torch.randn(1, HEADS, 3, HEAD_DIM, generator=generator)
    keys, values = step.update(new_keys, new_values, layer_idx=0)
    scale = HEAD_DIM**-0.5
    for prepared in (exact, padded):
        output = backend.attend(query, keys, values, prepared, scale)
        assert output.shape == (1, 3, HEADS, HEAD_DIM)
        for index, row in enumerate(decodes):
            expected = _full_causal(
                query[0, :, index : index + 1], _sequence_keys(keys, row), _sequence_keys(values, row), scale
            )
            torch.testing.assert_close(output[0, index : index + 1].transpose(0, 1), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="decode rows only"):
        backend.prepare(BatchLayout(decodes=(), chunks=(RowLayout([0], 0, 2),), block_size=BLOCK), CPU)


def test_backends_are_chosen_by_name_or_by_device() -> None:
    assert available_backends(CPU)[0] == "torch_sdpa"
    assert choose_backend(CPU).name == "torch_sdpa"
    with pytest.raises(ValueError, match="not available"):
        choose_backend(CPU, "no_such_backend")
