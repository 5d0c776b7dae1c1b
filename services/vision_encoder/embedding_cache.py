"""Recently encoded images, by content hash, within a byte budget (least recently used goes first)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from services.common.image_embedding import ImageEmbedding

DEFAULT_CACHE_BYTES = 256 << 20  # per encoder replica


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    entries: int
    bytes: int


class EmbeddingCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, ImageEmbedding] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0

    def get(self, content_hash: str) -> ImageEmbedding | None:
        embedding = self._entries.get(content_hash)
        if embedding is None:
            self._misses += 1
            return None
        self._entries.move_to_end(content_hash)
        self._hits += 1
        return embedding

    def put(self, embedding: ImageEmbedding) -> None:
        size = _size(embedding)
        if size > self.max_bytes or embedding.content_hash in self._entries:
            return
        self._entries[embedding.content_hash] = embedding
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= _size(evicted)

    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, len(self._entries), self._bytes)


def _size(embedding: ImageEmbedding) -> int:
    return embedding.embeds.numel() * embedding.embeds.element_size()
