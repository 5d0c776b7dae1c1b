"""A fast pass over an upload's raw bytes, no pixel decode: is there a C2PA manifest, and does the metadata
name a generator?

Walks the container's own structure (PNG chunks, JPEG segments up to the first scan, RIFF chunks, GIF blocks),
jumping over pixel data by the declared lengths. A hostile client writes these bytes, so the walk is bounded
(bytes, blocks, text inflated per chunk) and a malformed file ends it quietly with what was found so far.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from dataclasses import dataclass, field

from services.provenance.metadata_signals import comment_labels, exif_labels, png_text_labels, xmp_labels

_MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length


@dataclass(frozen=True)
class ScanLimits:
    max_bytes: int = 32 << 20
    max_blocks: int = 20_000  # chunks, segments or GIF sub-blocks walked
    max_text_bytes: int = 1 << 20  # per metadata entry, after inflating

    def __post_init__(self) -> None:
        if not (self.max_bytes > 0 and self.max_blocks > 0 and self.max_text_bytes > 0):
            raise ValueError(f"invalid container scan limits: {self}")


@dataclass(frozen=True)
class ContainerScan:
    """What the container declares. `ai_metadata` holds labels from a fixed vocabulary (safe in a header)."""

    format: str | None = None
    c2pa_present: bool = False
    ai_metadata: tuple[str, ...] = ()

    @property
    def mime_type(self) -> str | None:
        return _MIME_TYPES.get(self.format or "")


@dataclass
class _Found:
    limits: ScanLimits
    c2pa: bool = False
    labels: dict[str, None] = field(default_factory=dict)  # an ordered set

    def add(self, labels: list[str]) -> None:
        self.labels.update(dict.fromkeys(labels))


def scan_container(data: bytes, limits: ScanLimits | None = None) -> ContainerScan:
    """Encoded image bytes -> the provenance the container declares. Never raises on malformed input."""
    limits = limits or ScanLimits()
    view = memoryview(data)[: limits.max_bytes]
    kind = _sniff(view)
    if kind is None:
        return ContainerScan()
    found = _Found(limits)
    # A malformed or truncated file ends the walk: keep what was found before the damage.
    with contextlib.suppress(struct.error, IndexError, ValueError, zlib.error):
        _WALKERS[kind](view, found)
    return ContainerScan(kind, found.c2pa, tuple(found.labels))


def _sniff(view: memoryview) -> str | None:
    head = bytes(view[:12])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def _walk_png(view: memoryview, found: _Found) -> None:
    position = 8
    for _ in range(found.limits.max_blocks):
        length, kind = struct.unpack_from(">I4s", view, position)
        body = view[position + 8 : position + 8 + length]
        if kind == b"caBX":
            found.c2pa = True
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            key, text = _png_text(kind, body, found.limits.max_text_bytes)
            found.add(png_text_labels(key, text))
        elif kind == b"eXIf":
            found.add(exif_labels(bytes(body[: found.limits.max_text_bytes])))
        elif kind == b"IEND":
            return
        position += 12 + length


def _png_text(kind: bytes, body: memoryview, max_text_bytes: int) -> tuple[bytes, bytes]:
    key, _, rest = bytes(body[: max_text_bytes + 80]).partition(b"\x00")
    if kind == b"tEXt":
        return key, rest
    if kind == b"zTXt":
        return key, _inflate(bytes(body[len(key) + 2 : len(key) + 2 + max_text_bytes]), max_text_bytes)
    # iTXt: compression flag, method, language tag\0, translated keyword\0, text
    compressed = rest[:1] == b"\x01"
    offset = len(key) + 3
    for _ in range(2):
        offset = bytes(body[offset : offset + 1024]).index(b"\x00") + offset + 1
    text = bytes(body[offset : offset + max_text_bytes])
    return key, _inflate(text, max_text_bytes) if compressed else text


def _inflate(data: bytes, max_bytes: int) -> bytes:
    # max_length bounds the output: a few kB of deflate can expand to gigabytes.
    return zlib.decompressobj().decompress(data, max_bytes)


def _walk_jpeg(view: memoryview, found: _Found) -> None:
    position = 2
    for _ in range(found.limits.max_blocks):
        if view[position] != 0xFF:
            return
        marker = view[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE_MARKERS:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: metadata segments come before
            return
        (length,) = struct.unpack_from(">H", view, position + 2)
        if length < 2:
            return
        payload = bytes(view[position + 4 : position + 2 + min(length, found.limits.max_text_bytes)])
        _jpeg_segment(marker, payload, found)
        position += 2 + length


def _jpeg_segment(marker: int, payload: bytes, found: _Found) -> None:
    if marker == 0xEB and payload[:2] == b"JP":
        # APP11 carries JUMBF: "JP", box instance, sequence, then a jumb superbox whose description is `c2pa`.
        head = payload[:64]
        found.c2pa = found.c2pa or (b"jumb" in head and b"c2pa" in head)
    elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
        found.add(exif_labels(payload[6:]))
    elif marker == 0xE1 and payload.startswith((_XMP_NAMESPACE, _XMP_EXTENSION)):
        found.add(xmp_labels(payload))
    elif marker == 0xFE:
        found.add(comment_labels(payload))


def _walk_webp(view: memoryview, found: _Found) -> None:
    position = 12
    for _ in range(found.limits.max_blocks):
        kind, length = struct.unpack_from("<4sI", view, position)
        body = view[position + 8 : position + 8 + min(length, found.limits.max_text_bytes)]
        if kind == b"C2PA":
            found.c2pa = True
        elif kind == b"EXIF":
            tiff = bytes(body)
            found.add(exif_labels(tiff[6:] if tiff.startswith(b"Exif\x00\x00") else tiff))
        elif kind == b"XMP ":
            found.add(xmp_labels(bytes(body)))
        position += 8 + length + (length & 1)  # chunks are padded to an even size


def _walk_gif(view: memoryview, found: _Found) -> None:
    position = 13 + _colour_table_bytes(view[10])  # header, logical screen, global colour table
    budget = found.limits.max_blocks
    while budget > 0:
        introducer = view[position]
        if introducer == 0x3B:  # trailer
            return
        if introducer == 0x2C:  # image: descriptor, optional local colour table, LZW minimum code size
            position += 10 + _colour_table_bytes(view[position + 9]) + 1
            data, position, budget = _gif_sub_blocks(view, position, budget, keep=0)
        elif introducer == 0x21:
            label = view[position + 1]
            data, position, budget = _gif_sub_blocks(view, position + 2, budget, found.limits.max_text_bytes)
            _gif_extension(label, data, found)
        else:
            return


def _colour_table_bytes(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_sub_blocks(view: memoryview, position: int, budget: int, keep: int) -> tuple[bytes, int, int]:
    """Skip a run of sub-blocks; return up to `keep` of its bytes raw (sizes included: XMP-in-GIF relies on
    that), the position after its terminator and the remaining block budget."""
    start = position
    while budget > 0:
        budget -= 1
        size = view[position]
        position += 1 + size
        if size == 0:
            break
    return bytes(view[start : min(position, start + keep)]), position, budget


def _gif_extension(label: int, data: bytes, found: _Found) -> None:
    if label == 0xFF:  # application extension: an 11-byte identifier sub-block, then its data
        identifier = data[1:12]
        if identifier.startswith(b"C2PA_GIF"):
            found.c2pa = True
        elif identifier == b"XMP DataXMP":
            found.add(xmp_labels(data[12:]))
    elif label == 0xFE:
        found.add(comment_labels(data))


_WALKERS = {"png": _walk_png, "jpeg": _walk_jpeg, "webp": _walk_webp, "gif": _walk_gif}
