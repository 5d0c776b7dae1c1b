"""Which KV blocks each sequence holds, and which full blocks are kept, by their content, for reuse.

Every block has a reference count: the running sequences whose block tables hold it. A full block of a
sequence is registered under its chained content hash (prefix_keys: token ids, and the image for placeholder
tokens), so a later or concurrent prompt that starts with the same tokens takes a reference on the same block
instead of computing it again: zero-copy prefix caching, for a follow-up question as for two users asking about
one image at once. A block nobody references is free. Free blocks are handed out in eviction order: those
holding nothing cached first, then cached ones, least recently freed first; a cached block is forgotten only
when it is handed out again, so a finished conversation stays reusable for as long as the memory is not needed.
Only full blocks are shared and no sequence ever writes below what it has computed, so a shared block is never
written (no copy-on-write).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class OutOfBlocksError(RuntimeError):
    """More blocks were asked for than are free (the scheduler checks first: this is a bug)."""


class BlockManager:
    """Used by the engine's thread only."""

    def __init__(self, num_blocks: int, enable_caching: bool = True) -> None:
        self.num_blocks = num_blocks
        self.enable_caching = enable_caching
        self._ref_counts = [0] * num_blocks
        self._hash_of: list[bytes | None] = [None] * num_blocks
        self._block_of: dict[bytes, int] = {}
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))  # first: handed out first

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    @property
    def num_used_blocks(self) -> int:
        """Blocks some running sequence holds."""
        return self.num_blocks - len(self._free)

    @property
    def num_cached_blocks(self) -> int:
        """Blocks registered by content, held or free."""
        return len(self._block_of)

    def ref_count(self, block: int) -> int:
        return self._ref_counts[block]

    def cached_prefix(self, hashes: Sequence[bytes]) -> list[int]:
        """The blocks holding the longest leading run of `hashes` (changes nothing)."""
        blocks = []
        for block_hash in hashes:
            block = self._block_of.get(block_hash)
            if block is None:
                break
            blocks.append(block)
        return blocks

    def num_blocks_to_take(self, shared: Sequence[int], num_new: int) -> int:
        """Free blocks that sharing `shared` and allocating `num_new` more would use up."""
        return num_new + sum(1 for block in shared if self._ref_counts[block] == 0)

    def share(self, blocks: Sequence[int]) -> None:
        """Take a reference on each of these (cached) blocks."""
        for block in blocks:
            if self._ref_counts[block] == 0:
                del self._free[block]
            self._ref_counts[block] += 1

    def allocate(self, num_blocks: int) -> list[int]:
        """`num_blocks` fresh blocks, each referenced once. Raises OutOfBlocksError if fewer are free."""
        if num_blocks > len(self._free):
            raise OutOfBlocksError(f"{num_blocks} KV blocks asked for, {len(self._free)} free")
        blocks = []
        for _ in range(num_blocks):
            block, _ = self._free.popitem(last=False)
            self._forget(block)
            self._ref_counts[block] = 1
            blocks.append(block)
        return blocks

    def free(self, blocks: Sequence[int]) -> None:
        """Drop a reference on each block. A sequence's last blocks are released first, so that when memory runs
        short a conversation's end is evicted before its beginning (which more prompts share)."""
        for block in reversed(blocks):
            if self._ref_counts[block] < 1:
                raise ValueError(f"KV block {block} is freed more often than it was taken")
            self._ref_counts[block] -= 1
            if self._ref_counts[block] == 0:
                self._free[block] = None
                if self._hash_of[block] is None:
                    self._free.move_to_end(block, last=False)

    def register(self, block: int, block_hash: bytes) -> None:
        """Make a full, held block findable by its content hash, unless another block holds that content."""
        if self.enable_caching and block_hash not in self._block_of and self._hash_of[block] is None:
            self._block_of[block_hash] = block
            self._hash_of[block] = block_hash

    def _forget(self, block: int) -> None:
        block_hash = self._hash_of[block]
        if block_hash is not None:
            del self._block_of[block_hash]
            self._hash_of[block] = None
