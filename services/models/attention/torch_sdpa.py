"""The reference backend: torch's scaled_dot_product_attention over each row's real length. It runs on any
device; on a GPU it is the correctness baseline for the fast kernels.

Each layer gathers the rows' keys out of the block pool through their block tables: decode rows in one
batched call (every row's context padded to the longest, masked by its length; the query heads that share a
kv head go in as its queries), each prompt chunk in a call of its own with a causal mask shifted by the
chunk's start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.functional import scaled_dot_product_attention

from services.common.device import to_device
from services.models.attention.layout import BatchLayout
from services.models.kv_cache import gather


@dataclass(frozen=True)
class _Chunk:
    offset: int  # of its first token in the flat batch
    length: int
    context_len: int
    blocks: torch.Tensor  # [1, blocks of its context]
    mask: torch.Tensor  # [length, context_len], True where a query may attend


@dataclass(frozen=True)
class PreparedSDPA:
    num_decodes: int
    decode_blocks: torch.Tensor  # [num_decodes, most blocks of a decode row]
    decode_len: int  # keys the longest decode row attends over
    decode_mask: torch.Tensor  # [num_decodes, 1, 1, decode_len]
    chunks: tuple[_Chunk, ...]


class TorchSDPABackend:
    name = "torch_sdpa"

    def prepare(self, layout: BatchLayout, device: torch.device) -> PreparedSDPA:
        decodes = layout.decodes
        decode_len = max((row.context_len for row in decodes), default=0)
        lengths = torch.tensor([row.context_len for row in decodes], dtype=torch.long)
        decode_mask = torch.arange(decode_len) < lengths.unsqueeze(1)
        chunks = tuple(
            _Chunk(
                offset,
                chunk.length,
                chunk.context_len,
                to_device(layout.block_tables([chunk]), device),
                to_device(_shifted_causal_mask(chunk.start, chunk.length), device, torch.bool),
            )
            for offset, chunk in zip(layout.chunk_offsets(), layout.chunks, strict=True)
        )
        return PreparedSDPA(
            num_decodes=len(decodes),
            decode_blocks=to_device(layout.block_tables(decodes), device),
            decode_len=decode_len,
            decode_mask=to_device(decode_mask.view(len(decodes), 1, 1, decode_len), device, torch.bool),
            chunks=chunks,
        )

    def attend(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, prepared: PreparedSDPA, scale: float
    ) -> torch.Tensor:
        output = torch.empty_like(query)
        if prepared.num_decodes:
            decodes, heads, kv_heads = prepared.num_decodes, query.shape[1], keys.shape[2]
            # A decode row has one query per head: the heads that share a kv head go in as that head's queries
            # (`[rows, kv_heads, heads per kv head, head_dim]`), which SDPA runs ~3x faster on a CPU than
            # enable_gqa's one query per head. Head h reads kv head h // (heads / kv_heads), as in enable_gqa.
            grouped = query[0, :, :decodes].transpose(0, 1).reshape(decodes, kv_heads, heads // kv_heads, -1)
            attended = scaled_dot_product_attention(
                grouped,
                _gather(keys, prepared.decode_blocks, prepared.decode_len),
                _gather(values, prepared.decode_blocks, prepared.decode_len),
                attn_mask=prepared.decode_mask,
                scale=scale,
            )
            output[0, :, :decodes] = attended.reshape(decodes, heads, -1).transpose(0, 1)
        for chunk in prepared.chunks:
            rows = slice(chunk.offset, chunk.offset + chunk.length)
            output[:, :, rows] = scaled_dot_product_attention(
                query[:, :, rows],
                _gather(keys, chunk.blocks, chunk.context_len),
                _gather(values, chunk.blocks, chunk.context_len),
                attn_mask=chunk.mask,
                scale=scale,
                enable_gqa=True,
            )
        return output.transpose(1, 2)


def _gather(pool: torch.Tensor, block_tables: torch.Tensor, length: int) -> torch.Tensor:
    """`[rows, kv_heads, length, head_dim]`, the layout SDPA reads."""
    return gather(pool, block_tables, length).transpose(1, 2)


def _shifted_causal_mask(start: int, length: int) -> torch.Tensor:
    """`[length, start + length]`: the chunk's i-th token sees every cached key and the chunk's keys up to
    itself."""
    return torch.arange(start + length) <= (torch.arange(length) + start).unsqueeze(1)
