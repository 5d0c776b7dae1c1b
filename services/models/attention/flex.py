"""torch's flex attention: one fused kernel for the whole flat batch, decode rows and prompt chunks alike.

Each layer gathers every row's context out of the block pool into one contiguous key sequence (the rows one
after another) and runs a single attention call over it, with a block-sparse mask in which a query sees the
keys of its own row up to its own position. On CUDA the call is compiled into a fused kernel and the mask's
block sparsity skips every other row's keys; on a CPU it runs unfused (it materialises the scores), which is
slow but the same computation, so the CPU tests check it against the reference. The gather costs one read and
write of the step's context per layer, small beside the weights at decode batch sizes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

from services.common.device import to_device
from services.models.attention.layout import BatchLayout


@dataclass(frozen=True)
class PreparedFlex:
    kv_slots: torch.Tensor  # [keys]: the pool slot of every key of the contiguous sequence, row after row
    block_mask: BlockMask


class FlexAttentionBackend:
    name = "flex_attention"

    def prepare(self, layout: BatchLayout, device: torch.device) -> PreparedFlex:
        size = layout.block_size
        rows = layout.rows
        kv_slots, kv_rows, kv_positions, query_rows, query_positions = [], [], [], [], []
        for index, row in enumerate(rows):
            positions = torch.arange(row.context_len)
            table = torch.tensor(row.block_table[: row.num_blocks(size)], dtype=torch.long)
            kv_slots.append(table[positions // size] * size + positions % size)
            kv_rows.append(torch.full((row.context_len,), index, dtype=torch.long))
            kv_positions.append(positions)
            query_rows.append(torch.full((row.length,), index, dtype=torch.long))
            query_positions.append(torch.arange(row.start, row.context_len))
        key_row, key_position = (to_device(torch.cat(parts), device) for parts in (kv_rows, kv_positions))
        query_row, query_position = (to_device(torch.cat(parts), device) for parts in (query_rows, query_positions))

        def own_row_causal(batch: Any, head: Any, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
            return (query_row[query] == key_row[key]) & (key_position[key] <= query_position[query])

        block_mask = create_block_mask(
            own_row_causal,
            B=None,
            H=None,
            Q_LEN=layout.num_tokens,
            KV_LEN=len(key_row),
            device=device,
            _compile=device.type == "cuda",
        )
        return PreparedFlex(to_device(torch.cat(kv_slots), device), block_mask)

    def attend(
        self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, prepared: PreparedFlex, scale: float
    ) -> torch.Tensor:
        flat = (-1, *keys.shape[2:])
        context_keys = keys.view(flat)[prepared.kv_slots].transpose(0, 1).unsqueeze(0)
        context_values = values.view(flat)[prepared.kv_slots].transpose(0, 1).unsqueeze(0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            output = _flex_attention(query.device.type)(
                query, context_keys, context_values, block_mask=prepared.block_mask, scale=scale, enable_gqa=True
            )
        return output.transpose(1, 2)


@cache
def _flex_attention(device_type: str) -> Callable[..., torch.Tensor]:
    if device_type == "cuda":
        return torch.compile(flex_attention, dynamic=True)
    return flex_attention
