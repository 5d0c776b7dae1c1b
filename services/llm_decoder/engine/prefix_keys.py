"""What the prefix cache knows a token by, and the hashes of a token sequence's blocks.

A token's KV depends on every token before it and on what it is. A text token is its id; an image
placeholder token is the same id for every image, so it is keyed by the image itself (content hash and
grid): two different images with the same placeholder tokens never share KV.

Block hashes are chained (a block's hash covers its keys and, through its parent's, every key before) and
computed with blake2b of the keys' text, so they are the same in every process: a router can compute a
prompt's hashes and compare them with a replica's without asking it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from services.common.image_embedding import ImageEmbedding
from services.models.language_half import Prompt

TokenKey = int | str
PrefixKeys = tuple[TokenKey, ...]


def prompt_keys(prompt: Prompt, images: Sequence[ImageEmbedding]) -> PrefixKeys:
    keys: list[TokenKey] = list(prompt.token_ids)
    for (start, end), image in zip(prompt.image_spans, images, strict=True):
        t, h, w = image.grid_thw
        keys[start:end] = [f"image:{image.content_hash}:{t}x{h}x{w}"] * (end - start)
    return tuple(keys)


def next_block_hash(parent: bytes, block_keys: PrefixKeys) -> bytes:
    """The hash of a block whose keys are `block_keys`, after the block whose hash is `parent` (b"" for the
    first)."""
    return hashlib.blake2b(parent + repr(block_keys).encode(), digest_size=16).digest()
