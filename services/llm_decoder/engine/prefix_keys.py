"""What the prefix cache knows a token by, and the hashes of a token sequence's blocks.

A token's KV depends on every token before it and on what it is. A text token is its id; an image
placeholder token is the same id for every image, so it is keyed by the image itself (content hash and
grid): two different images with the same placeholder tokens never share KV.

Block hashes are chained (block i's hash covers tokens 0..(i+1)*BLOCK_SIZE-1) and computed with blake2b of the
keys' text, so they are the same in every process: a router can compute a prompt's hashes and compare them
with a replica's without asking it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from services.common.image_embedding import ImageEmbedding
from services.models.language_half import Prompt

TokenKey = int | str
PrefixKeys = tuple[TokenKey, ...]

BLOCK_SIZE = 16


def prompt_keys(prompt: Prompt, images: Sequence[ImageEmbedding]) -> PrefixKeys:
    keys: list[TokenKey] = list(prompt.token_ids)
    for (start, end), image in zip(prompt.image_spans, images, strict=True):
        t, h, w = image.grid_thw
        keys[start:end] = [f"image:{image.content_hash}:{t}x{h}x{w}"] * (end - start)
    return tuple(keys)


def block_hashes(keys: PrefixKeys) -> list[bytes]:
    """One hash per whole block of `keys` (a shorter tail has none)."""
    hashes: list[bytes] = []
    parent = b""
    for start in range(0, len(keys) - BLOCK_SIZE + 1, BLOCK_SIZE):
        parent = hashlib.blake2b(parent + repr(keys[start : start + BLOCK_SIZE]).encode(), digest_size=16).digest()
        hashes.append(parent)
    return hashes


def common_length(first: PrefixKeys, second: PrefixKeys, start: int = 0) -> int:
    """How many leading keys the two share, given that they share the first `start` (no copies of long tuples)."""
    end = min(len(first), len(second))
    index = start
    while index < end and first[index] == second[index]:
        index += 1
    return index
