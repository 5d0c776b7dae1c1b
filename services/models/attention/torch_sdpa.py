"""The reference backend: torch's scaled_dot_product_attention over each row's real length. It runs on any
device; on a GPU it is the correctness baseline for the fast kernels.

Decode rows go in one batched call over the slots in use (running sequences hold slots 0..n-1), a query
placed in each decoding slot and a mask of that slot's length; each prompt chunk is one call over its slot's
keys with a causal mask shifted by the chunk's start.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.functional import scaled_dot_product_attention

from services.common.device import to_device
from services.models.attention.layout import BatchLayout


@dataclass(frozen=True)
class _Chunk:
    offset: int  # of its first token in the flat batch
    slot: int
    length: int
    context_len: int
    mask: torch.Tensor  # [length, context_len], True where a query may attend


@dataclass(frozen=True)
class PreparedSDPA:
    num_decodes: int
    num_slots: int  # slots 0..num_slots-1 hold every decoding row
    decode_slots: torch.Tensor  # [num_decodes]
    decode_len: int  # keys the longest decode row attends over
    decode_mask: torch.Tensor  # [num_slots, 1, 1, decode_len]
    chunks: tuple[_Chunk, ...]


class TorchSDPABackend:
    name = "torch_sdpa"

    def prepare(self, layout: BatchLayout, device: torch.device) -> PreparedSDPA:
        decodes = layout.decodes
        num_slots = max((row.slot for row in decodes), default=-1) + 1
        decode_len = max((row.context_len for row in decodes), default=0)
        lengths = [1] * num_slots  # a slot with no decode row sees one key: no NaN row
        for row in decodes:
            lengths[row.slot] = row.context_len
        decode_mask = torch.arange(decode_len) < torch.tensor(lengths, dtype=torch.long).unsqueeze(1)
        chunks = tuple(
            _Chunk(offset, chunk.slot, chunk.length, chunk.context_len,
                   to_device(_shifted_causal_mask(chunk.start, chunk.length), device, torch.bool))
            for offset, chunk in zip(layout.chunk_offsets(), layout.chunks, strict=True)
        )
        return PreparedSDPA(
            num_decodes=len(decodes),
            num_slots=num_slots,
            decode_slots=to_device([row.slot for row in decodes], device),
            decode_len=decode_len,
            decode_mask=to_device(decode_mask.view(num_slots, 1, 1, decode_len), device, torch.bool),
            chunks=chunks,
        )

    def attend(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, prepared: PreparedSDPA, scale: float
    ) -> torch.Tensor:
        output = torch.empty_like(query)
        if prepared.num_decodes:
            decodes = prepared.num_decodes
            slot_queries = query.new_zeros(prepared.num_slots, query.shape[1], 1, query.shape[3])
            slot_queries[prepared.decode_slots] = query[0, :, :decodes].transpose(0, 1).unsqueeze(2)
            attended = scaled_dot_product_attention(
                slot_queries,
                keys[: prepared.num_slots, :, : prepared.decode_len],
                values[: prepared.num_slots, :, : prepared.decode_len],
                attn_mask=prepared.decode_mask,
                scale=scale,
                enable_gqa=True,
            )
            output[0, :, :decodes] = attended[prepared.decode_slots, :, 0].transpose(0, 1)
        for chunk in prepared.chunks:
            rows = slice(chunk.offset, chunk.offset + chunk.length)
            output[:, :, rows] = scaled_dot_product_attention(
                query[:, :, rows],
                keys[chunk.slot : chunk.slot + 1, :, : chunk.context_len],
                values[chunk.slot : chunk.slot + 1, :, : chunk.context_len],
                attn_mask=chunk.mask,
                scale=scale,
                enable_gqa=True,
            )
        return output.transpose(1, 2)


def _shifted_causal_mask(start: int, length: int) -> torch.Tensor:
    """`[length, start + length]`: the chunk's i-th token sees every cached key and the chunk's keys up to
    itself."""
    return torch.arange(start + length) <= (torch.arange(length) + start).unsqueeze(1)
