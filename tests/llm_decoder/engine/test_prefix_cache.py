"""The prefix index on its own: exact matches, images keyed by content, LRU within the budget, one entry per
conversation, and block hashes any process can compute."""

from __future__ import annotations

import hashlib

import torch

from services.common.image_embedding import ImageEmbedding
from services.llm_decoder.engine.prefix_cache import PrefixCache
from services.llm_decoder.engine.prefix_keys import BLOCK_SIZE, PrefixKeys, block_hashes, prompt_keys
from services.models.language_half import Prompt

IMAGE_TOKEN = 9
BYTES_PER_TOKEN = 8  # the fake KV below: [1 layer, 2, 1 head, tokens, 1 dim] of float32


def kv_for(keys: PrefixKeys) -> torch.Tensor:
    """A fake KV whose values are the token index, so a view of the wrong tokens shows."""
    return torch.arange(len(keys), dtype=torch.float32).view(1, 1, 1, -1, 1).expand(1, 2, 1, -1, 1).clone()


def text(*token_ids: int) -> PrefixKeys:
    return tuple(token_ids)


def image_prompt_keys(content_hash: str) -> PrefixKeys:
    """5 text tokens, a 16-token image, 20 text tokens: the same token ids whatever the image."""
    token_ids = [1, 2, 3, 4, 5] + [IMAGE_TOKEN] * 16 + list(range(100, 120))
    prompt = Prompt(token_ids, ((1, 8, 8),), torch.zeros(3, len(token_ids), dtype=torch.long), 0, ((5, 21),))
    return prompt_keys(prompt, [ImageEmbedding(content_hash, (1, 8, 8), torch.zeros(16, 4))])


class TestMatching:
    """A match is exact to the token, never past `limit`, and an image matches only the same image."""

    def test_the_match_runs_past_the_last_whole_block(self) -> None:
        cache = PrefixCache(max_bytes=1 << 20)
        stored = text(*range(40))
        cache.store(stored, kv_for(stored))
        query = text(*range(37), 999, 998)
        match = cache.match(query, limit=len(query))
        assert match.num_tokens == 37
        assert match.kv is not None and match.kv.shape[3] == 37
        assert cache.match(query, limit=20).num_tokens == 20

    def test_less_than_a_whole_block_in_common_is_no_match(self) -> None:
        cache = PrefixCache(max_bytes=1 << 20)
        cache.store(text(*range(40)), kv_for(text(*range(40))))
        query = text(*range(BLOCK_SIZE - 1), 999, *range(20))
        assert cache.match(query, limit=len(query)).num_tokens == 0

    def test_same_placeholders_of_another_image_match_only_the_text_before_it(self) -> None:
        first, other = image_prompt_keys("hash-of-image-a"), image_prompt_keys("hash-of-image-b")
        cache = PrefixCache(max_bytes=1 << 20)
        cache.store(first, kv_for(first))
        assert cache.match(other, limit=len(other)).num_tokens == 0  # 5 shared tokens: less than a block
        assert cache.match(first, limit=len(first)).num_tokens == len(first)

    def test_the_entry_sharing_the_most_whole_blocks_wins(self) -> None:
        cache = PrefixCache(max_bytes=1 << 20)
        for keys in (text(*range(20)), text(*range(40)), text(*range(16), 500, *range(17, 40))):
            cache.store(keys, kv_for(keys))
        query = text(*range(36), 7, 7)
        assert cache.match(query, limit=len(query)).num_tokens == 36

    def test_within_a_block_the_newest_entry_stands_for_its_peers(self) -> None:
        """Entries that share the same whole blocks and part of the next: the newest is compared (the price of
        never visiting every holder of a block is at most a block's tail)."""
        cache = PrefixCache(max_bytes=1 << 20)
        for tail in ([60, 61, 62, 63, 64, 65], [50, 51]):
            keys = text(*range(20), *tail)
            cache.store(keys, kv_for(keys))
        assert cache.match(text(*range(20), 50, 51, 7), limit=30).num_tokens == 22
        assert cache.match(text(*range(20), 60, 61, 7), limit=30).num_tokens == 20

    def test_each_of_many_conversations_finds_its_own_entry(self) -> None:
        """Every entry shares the first block (the chat template's opening); each follow-up still finds its
        own conversation, and storing a later turn drops only that conversation's earlier one."""
        cache = PrefixCache(max_bytes=1 << 24)
        first_turns = [text(*range(16), conversation, *range(1000, 1040)) for conversation in range(200)]
        for keys in first_turns:
            cache.store(keys, kv_for(keys))
        follow_up = (*first_turns[123], *range(2000, 2010))
        match = cache.match(follow_up, limit=len(follow_up))
        assert match.num_tokens == len(first_turns[123]) and match.entry is not None
        assert match.entry.keys == first_turns[123]
        cache.store(follow_up, kv_for(follow_up))
        assert cache.stats().num_entries == 200
        assert cache.match(first_turns[124], limit=len(first_turns[124])).num_tokens == len(first_turns[124])


class TestBudget:
    """Entries stay within the byte budget, the least recently used going first."""

    def test_least_recently_used_goes_first(self) -> None:
        a, b, c = (text(base, *range(1, 32)) for base in (1000, 2000, 3000))
        cache = PrefixCache(max_bytes=2 * 32 * BYTES_PER_TOKEN)
        cache.store(a, kv_for(a))
        cache.store(b, kv_for(b))
        cache.use(cache.match(a, limit=32), num_prompt_tokens=33)
        cache.store(c, kv_for(c))
        assert [cache.match(keys, limit=32).num_tokens for keys in (a, b, c)] == [32, 0, 32]
        assert cache.stats().num_bytes <= cache.max_bytes and cache.stats().num_entries == 2

    def test_an_entry_larger_than_the_budget_is_not_kept(self) -> None:
        cache = PrefixCache(max_bytes=16 * BYTES_PER_TOKEN)
        keys = text(*range(17))
        cache.store(keys, kv_for(keys))
        assert cache.stats().num_entries == 0

    def test_a_later_turn_replaces_the_turn_it_extends(self) -> None:
        cache = PrefixCache(max_bytes=1 << 20)
        first_turn = text(*range(30))
        cache.store(first_turn, kv_for(first_turn))
        other = text(*range(20), 77, 78)  # shares a block, but is no prefix of the next turn
        cache.store(other, kv_for(other))
        second_turn = (*first_turn, *range(200, 230))
        assert cache.should_store(second_turn)
        cache.store(second_turn, kv_for(second_turn))
        assert cache.stats().num_entries == 2
        assert cache.stats().num_bytes == (len(second_turn) + len(other)) * BYTES_PER_TOKEN
        assert not cache.should_store(first_turn)  # all held by the second turn's entry

    def test_off_keeps_and_counts_nothing(self) -> None:
        cache = PrefixCache(max_bytes=0)
        keys = text(*range(40))
        assert not cache.should_store(keys)
        cache.use(cache.match(keys, limit=39), num_prompt_tokens=40)
        assert cache.stats().queried_tokens == 0


def test_block_hashes_are_chained_blake2b_of_the_keys_text() -> None:
    """A router in another process computes the same hashes from the same keys (no per-process salt)."""
    keys = (*range(BLOCK_SIZE), *["image:abc:1x4x4"] * BLOCK_SIZE, 5)
    first = hashlib.blake2b(repr(keys[:BLOCK_SIZE]).encode(), digest_size=16).digest()
    second = hashlib.blake2b(first + repr(keys[BLOCK_SIZE : 2 * BLOCK_SIZE]).encode(), digest_size=16).digest()
    assert block_hashes(keys) == [first, second]
