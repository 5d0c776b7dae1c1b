"""Where the tokens of one step's flat batch come from and where their keys go, in host integers: the
scheduler knows all of it, so no backend has to read a length back from the device."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkLayout:
    """A run of consecutive tokens of one sequence: positions [start, start + length) of its KV slot."""

    slot: int
    start: int
    length: int

    @property
    def context_len(self) -> int:
        """Keys the chunk's last token attends over: the cached ones before the chunk and the chunk itself."""
        return self.start + self.length


@dataclass(frozen=True)
class BatchLayout:
    """Decode rows first (one token each, at position `start` of their slot), then prompt chunks, in the
    order their tokens sit in the flat batch."""

    decodes: tuple[ChunkLayout, ...]
    chunks: tuple[ChunkLayout, ...]

    def __post_init__(self) -> None:
        if any(decode.length != 1 for decode in self.decodes):
            raise ValueError("a decode row is one token")

    @property
    def num_tokens(self) -> int:
        return len(self.decodes) + sum(chunk.length for chunk in self.chunks)

    @property
    def rows(self) -> tuple[ChunkLayout, ...]:
        return self.decodes + self.chunks

    def chunk_offsets(self) -> list[int]:
        """Index in the flat batch of each chunk's first token."""
        offsets, offset = [], len(self.decodes)
        for chunk in self.chunks:
            offsets.append(offset)
            offset += chunk.length
        return offsets

    def write_slots(self) -> list[int]:
        """The slot of every token, in batch order."""
        return [row.slot for row in self.rows for _ in range(row.length)]

    def write_positions(self) -> list[int]:
        """The position within its slot of every token, in batch order."""
        return [position for row in self.rows for position in range(row.start, row.start + row.length)]
