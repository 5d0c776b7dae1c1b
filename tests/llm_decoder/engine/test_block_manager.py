"""The block manager: allocation, sharing by reference count, freeing, eviction order of cached blocks, and
no leak over thousands of random admissions and finishes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.llm_decoder.engine.block_manager import BlockManager, OutOfBlocksError


def test_allocated_blocks_are_distinct_and_counted() -> None:
    blocks = BlockManager(4)
    taken = blocks.allocate(3)
    assert len(set(taken)) == 3 and all(blocks.ref_count(block) == 1 for block in taken)
    assert (blocks.num_free_blocks, blocks.num_used_blocks) == (1, 3)
    with pytest.raises(OutOfBlocksError):
        blocks.allocate(2)
    blocks.free(taken)
    assert blocks.num_free_blocks == 4
    with pytest.raises(ValueError, match="freed more often"):
        blocks.free(taken[:1])


def test_a_registered_block_is_found_by_its_hash_and_shared() -> None:
    blocks = BlockManager(4)
    first, second = blocks.allocate(2)
    blocks.register(first, b"h1")
    blocks.register(second, b"h2")
    assert blocks.cached_prefix([b"h1", b"h2", b"h3"]) == [first, second]
    assert blocks.cached_prefix([b"h2"]) == [second] and blocks.cached_prefix([b"h3", b"h1"]) == []
    blocks.share([first])
    assert blocks.ref_count(first) == 2
    blocks.free([first, second])
    assert blocks.ref_count(first) == 1 and blocks.num_free_blocks == 3  # second is free, still cached
    assert blocks.num_blocks_to_take([first, second], num_new=1) == 2  # second comes out of the free list
    blocks.share([second])
    assert blocks.num_free_blocks == 2 and blocks.ref_count(second) == 1


def test_the_same_content_is_registered_once() -> None:
    blocks = BlockManager(4)
    first, duplicate = blocks.allocate(2)
    blocks.register(first, b"h")
    blocks.register(duplicate, b"h")  # computed beside the first by a concurrent prompt
    assert blocks.cached_prefix([b"h"]) == [first] and blocks.num_cached_blocks == 1


def test_uncached_blocks_go_first_then_the_least_recently_freed_cached_ones() -> None:
    blocks = BlockManager(4)
    a, b, c, d = blocks.allocate(4)
    for block, block_hash in [(a, b"a"), (b, b"b"), (c, b"c")]:
        blocks.register(block, block_hash)
    blocks.free([a, b])  # released b first, then a: a conversation's end is evicted before its start
    blocks.free([c])
    blocks.free([d])  # uncached
    assert blocks.allocate(1) == [d]
    assert blocks.allocate(1) == [b] and blocks.cached_prefix([b"b"]) == []  # handed out: forgotten
    assert blocks.cached_prefix([b"a"]) == [a] and blocks.cached_prefix([b"c"]) == [c]
    assert blocks.allocate(1) == [a]


def test_caching_off_registers_nothing() -> None:
    blocks = BlockManager(2, enable_caching=False)
    (block,) = blocks.allocate(1)
    blocks.register(block, b"h")
    assert blocks.cached_prefix([b"h"]) == [] and blocks.num_cached_blocks == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6), st.integers(0, 7)), min_size=200, max_size=2000))
def test_random_admits_and_finishes_never_leak(operations: list[tuple[int, int, int]]) -> None:
    """A model of the engine's use: sequences admitted with a shared cached prefix and new blocks, registering
    their full blocks, finishing in random order. Reference counts always equal the holders, and when all are
    done every block is free."""
    num_blocks = 32
    blocks = BlockManager(num_blocks)
    holders: list[list[int]] = []
    for kind, size, pick in operations:
        if kind < 3:  # admit: a prompt that starts like "conversation `pick`" and has `size` new blocks
            hashes = [f"{pick}:{index}".encode() for index in range(size)]
            shared = blocks.cached_prefix(hashes)
            new = size - len(shared)
            if blocks.num_blocks_to_take(shared, new) > blocks.num_free_blocks:
                continue
            blocks.share(shared)
            table = shared + blocks.allocate(new)
            for block, block_hash in zip(table, hashes, strict=True):
                blocks.register(block, block_hash)
            holders.append(table)
        elif holders:  # finish one
            blocks.free(holders.pop(pick % len(holders)))
        counts = [0] * num_blocks
        for table in holders:
            for block in table:
                counts[block] += 1
        assert [blocks.ref_count(block) for block in range(num_blocks)] == counts
        assert blocks.num_used_blocks == sum(1 for count in counts if count)
    for table in holders:
        blocks.free(table)
    assert blocks.num_free_blocks == num_blocks
