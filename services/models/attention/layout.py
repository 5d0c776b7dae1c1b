"""Where the tokens of one step's flat batch come from and where their keys go, in host integers: the
scheduler knows all of it, so no backend has to read a length back from the device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowLayout:
    """A run of consecutive tokens of one sequence, positions [start, start + length); the sequence's keys
    live in the blocks of `block_table`, in order (the row's own keys are written there by this step)."""

    block_table: Sequence[int]
    start: int
    length: int

    @property
    def context_len(self) -> int:
        """Keys the row's last token attends over: the cached ones before the row and the row itself."""
        return self.start + self.length

    def num_blocks(self, block_size: int) -> int:
        """Blocks holding the row's context."""
        return -(-self.context_len // block_size)


@dataclass(frozen=True)
class BatchLayout:
    """Decode rows first (one token each, at position `start`), then prompt chunks, in the order their tokens
    sit in the flat batch."""

    decodes: tuple[RowLayout, ...]
    chunks: tuple[RowLayout, ...]
    block_size: int

    def __post_init__(self) -> None:
        if any(decode.length != 1 for decode in self.decodes):
            raise ValueError("a decode row is one token")
        if any(row.num_blocks(self.block_size) > len(row.block_table) for row in self.rows):
            raise ValueError("a row's block table does not cover its context")

    @property
    def num_tokens(self) -> int:
        return len(self.decodes) + sum(chunk.length for chunk in self.chunks)

    @property
    def rows(self) -> tuple[RowLayout, ...]:
        return self.decodes + self.chunks

    def chunk_offsets(self) -> list[int]:
        """Index in the flat batch of each chunk's first token."""
        offsets, offset = [], len(self.decodes)
        for chunk in self.chunks:
            offsets.append(offset)
            offset += chunk.length
        return offsets

    def slot_mapping(self) -> torch.Tensor:
        """The slot of the flattened block pool that every token's keys go to, in batch order (host longs)."""
        size = self.block_size
        parts = [
            torch.tensor(
                [row.block_table[row.start // size] * size + row.start % size for row in self.decodes], dtype=torch.long
            )
        ]
        for chunk in self.chunks:
            positions = torch.arange(chunk.start, chunk.context_len)
            table = torch.tensor(chunk.block_table[: chunk.num_blocks(size)], dtype=torch.long)
            parts.append(table[positions // size] * size + positions % size)
        return torch.cat(parts)

    def block_tables(self, rows: Sequence[RowLayout]) -> torch.Tensor:
        """`[len(rows), most blocks of any row]` host block ids of the rows' contexts, padded with block 0 (its
        keys are masked out wherever a row is shorter)."""
        width = max((row.num_blocks(self.block_size) for row in rows), default=0)
        table = torch.zeros(len(rows), width, dtype=torch.long)
        for index, row in enumerate(rows):
            blocks = row.block_table[: row.num_blocks(self.block_size)]
            table[index, : len(blocks)] = torch.tensor(blocks, dtype=torch.long)
        return table
