"""The KV of finished sequences, kept within a byte budget and found again by token prefix.

When a sequence leaves the engine, the KV its slot holds (its prompt and output but the last token) is copied
into an entry. A new request whose prompt starts with an entry's keys gets that KV copied into its slot and
prefills only the rest: a follow-up question recomputes neither the image nor the earlier turns. Entries are
whole sequences, contiguous like the slots they come from and go back to, and indexed by the chained hashes of
their whole blocks: a lookup walks the prompt's block hashes as far as some entry holds them, then compares the
few keys after the last shared block with the newest of those entries, so a match is exact to the token. Every
entry shares its first block (the chat template's opening) with every other: no operation may visit all the
holders of a block, or a lookup would grow with the cache. An entry that a newly stored one begins with (the
previous turn of the same conversation) is dropped then: a conversation holds one entry.
The least recently used entries go first when the budget is spent; running sequences never read an entry
after their prefill copied it, so eviction cannot touch them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from services.llm_decoder.engine.prefix_keys import BLOCK_SIZE, PrefixKeys, block_hashes, common_length


@dataclass(eq=False)
class CachedPrefix:
    keys: PrefixKeys
    hashes: list[bytes]  # of its whole blocks
    kv: torch.Tensor  # [num_layers, 2, kv_heads, len(keys), head_dim], on the engine's device

    @property
    def num_tokens(self) -> int:
        return len(self.keys)

    @property
    def num_bytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()

    def begins(self, keys: PrefixKeys, hashes: list[bytes]) -> bool:
        """Whether `keys` (whose block hashes are `hashes`) start with all of this entry's keys."""
        if self.num_tokens > len(keys):
            return False
        whole = len(self.hashes) * BLOCK_SIZE
        return hashes[len(self.hashes) - 1] == self.hashes[-1] and keys[whole : self.num_tokens] == self.keys[whole:]


@dataclass(frozen=True)
class PrefixMatch:
    num_tokens: int
    entry: CachedPrefix | None = None

    @property
    def kv(self) -> torch.Tensor | None:
        """The matched tokens' KV, `[num_layers, 2, kv_heads, num_tokens, head_dim]` (a view of the entry's)."""
        return None if self.entry is None else self.entry.kv[:, :, :, : self.num_tokens]


NO_MATCH = PrefixMatch(0)


@dataclass(frozen=True)
class PrefixCacheStats:
    queried_tokens: int  # prompt tokens of the sequences admitted while the cache was on
    hit_tokens: int  # ... of which the KV was reused
    num_entries: int
    num_bytes: int


class PrefixCache:
    """Off when `max_bytes` is 0. Used by the engine's thread only (one step at a time)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CachedPrefix, None] = OrderedDict()  # least recently used first
        # block hash -> the entries holding that block, oldest stored first (dicts as ordered sets)
        self._holders: dict[bytes, dict[CachedPrefix, None]] = {}
        self._ending_with: dict[bytes, dict[CachedPrefix, None]] = {}  # an entry's last whole block -> entries
        self._bytes = 0
        self._queried_tokens = 0
        self._hit_tokens = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def match(self, keys: PrefixKeys, limit: int) -> PrefixMatch:
        """The longest cached prefix of `keys`, cut to `limit` tokens. Changes nothing: a router asking how much
        of a prompt this replica holds gets `match(keys, len(keys)).num_tokens`."""
        if not self._entries:
            return NO_MATCH
        holders: dict[CachedPrefix, None] = {}
        depth = 0
        for block_hash in block_hashes(keys):
            found = self._holders.get(block_hash)
            if not found:
                break
            holders, depth = found, depth + 1
        if not holders:
            return NO_MATCH
        # Every holder of the deepest shared block shares all keys so far and none the next whole block; the
        # newest (likely this conversation's last turn) stands for them, giving up at most a block's tail.
        entry = next(reversed(holders))
        best = PrefixMatch(common_length(entry.keys, keys, start=depth * BLOCK_SIZE), entry)
        if best.num_tokens > limit:
            return PrefixMatch(limit, best.entry) if limit > 0 else NO_MATCH
        return best

    def use(self, match: PrefixMatch, num_prompt_tokens: int) -> None:
        """Count an admitted prompt and what it reused, and mark the entry it reused as recently used."""
        if not self.enabled:
            return
        self._queried_tokens += num_prompt_tokens
        self._hit_tokens += match.num_tokens
        if match.entry is not None and match.entry in self._entries:
            self._entries.move_to_end(match.entry)

    def should_store(self, keys: PrefixKeys) -> bool:
        """Worth copying out of a slot: on, a whole block at least, and not all held already."""
        return self.enabled and len(keys) >= BLOCK_SIZE and self.match(keys, len(keys)).num_tokens < len(keys)

    def store(self, keys: PrefixKeys, kv: torch.Tensor) -> None:
        """Keep `kv` (`[num_layers, 2, kv_heads, len(keys), head_dim]`, owned from now on) for these keys."""
        assert kv.shape[3] == len(keys) >= BLOCK_SIZE
        entry = CachedPrefix(keys, block_hashes(keys), kv)
        if entry.num_bytes > self.max_bytes:
            return
        earlier_turns = [cached for block_hash in entry.hashes for cached in self._ending_with.get(block_hash, {})
                         if cached.begins(keys, entry.hashes)]
        for older in earlier_turns:
            self._remove(older)
        self._entries[entry] = None
        for block_hash in entry.hashes:
            self._holders.setdefault(block_hash, {})[entry] = None
        self._ending_with.setdefault(entry.hashes[-1], {})[entry] = None
        self._bytes += entry.num_bytes
        while self._bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))

    def stats(self) -> PrefixCacheStats:
        return PrefixCacheStats(self._queried_tokens, self._hit_tokens, len(self._entries), self._bytes)

    def _remove(self, entry: CachedPrefix) -> None:
        del self._entries[entry]
        for block_hash in entry.hashes:
            _discard(self._holders, block_hash, entry)
        _discard(self._ending_with, entry.hashes[-1], entry)
        self._bytes -= entry.num_bytes


def _discard(index: dict[bytes, dict[CachedPrefix, None]], block_hash: bytes, entry: CachedPrefix) -> None:
    entries = index[block_hash]
    del entries[entry]
    if not entries:
        del index[block_hash]
