"""Decode attention whose shapes do not depend on the rows' lengths, so that a CUDA graph can replay it.

Every row's keys are gathered through a block table of a fixed width and masked on the device by the row's
context length: the kernels and their shapes are a function of (rows, width) alone, and a step changes only
the contents of the tables and lengths. Queries are grouped by the KV head they share (GQA), so the keys are
never repeated per query head. It serves decode rows only (one token each); prompt chunks go through the
step's ordinary backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from services.common.device import to_device
from services.models.attention.layout import BatchLayout
from services.models.kv_cache import gather


@dataclass(frozen=True)
class PaddedDecode:
    block_tables: torch.Tensor  # [rows, width] on the device
    key_mask: torch.Tensor  # [rows, width * block_size], True where the key lies in the row's context


class PaddedDecodeAttention:
    name = "padded_decode"

    def prepare(self, layout: BatchLayout, device: torch.device) -> PaddedDecode:
        """Metadata for a decode-only layout at its own width (the CUDA graphs build theirs on the device)."""
        if layout.chunks:
            raise ValueError("padded decode attention runs decode rows only")
        tables = layout.block_tables(layout.decodes)
        lengths = torch.tensor([row.context_len for row in layout.decodes], dtype=torch.long)
        key_mask = torch.arange(tables.shape[1] * layout.block_size) < lengths.unsqueeze(1)
        return PaddedDecode(to_device(tables, device), to_device(key_mask, device, torch.bool))

    def attend(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, prepared: PaddedDecode, scale: float
    ) -> torch.Tensor:
        _, heads, rows, head_dim = query.shape
        kv_heads = keys.shape[2]
        length = prepared.key_mask.shape[1]
        grouped = query[0].transpose(0, 1).reshape(rows, kv_heads, heads // kv_heads, head_dim)
        context_keys = gather(keys, prepared.block_tables, length).permute(0, 2, 3, 1)  # [rows, kv_heads, d, L]
        context_values = gather(values, prepared.block_tables, length).transpose(1, 2)  # [rows, kv_heads, L, d]
        scores = torch.matmul(grouped, context_keys).float() * scale  # [rows, kv_heads, group, L]
        scores = scores.masked_fill(~prepared.key_mask[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1).to(context_values.dtype)
        output = torch.matmul(weights, context_values)  # [rows, kv_heads, group, d]
        return output.reshape(1, rows, heads, head_dim)
