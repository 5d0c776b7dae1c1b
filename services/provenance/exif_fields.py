"""The few EXIF text fields that name a generator, read from TIFF-structured bytes without a full EXIF parser.

Every offset comes from the client, so each read is bounds-checked and a malformed block yields no fields.
"""

from __future__ import annotations

import struct

SOFTWARE = 0x0131
IMAGE_DESCRIPTION = 0x010E
USER_COMMENT = 0x9286
_EXIF_IFD_POINTER = 0x8769
# TIFF types whose values are bytes (BYTE, ASCII, UNDEFINED): one byte per count.
_BYTE_TYPES = frozenset({1, 2, 7})
_MAX_ENTRIES = 512


def exif_text_fields(tiff: bytes, max_value_bytes: int = 64 << 10) -> dict[int, bytes]:
    """TIFF bytes (what follows `Exif\\0\\0`) -> raw values of Software, ImageDescription and UserComment."""
    if len(tiff) < 8:
        return {}
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        return {}
    fields: dict[int, bytes] = {}
    (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
    exif_ifd = _read_ifd(tiff, order, ifd0, (SOFTWARE, IMAGE_DESCRIPTION), fields, max_value_bytes)
    if exif_ifd is not None:
        _read_ifd(tiff, order, exif_ifd, (USER_COMMENT,), fields, max_value_bytes)
    return fields


def _read_ifd(
    tiff: bytes, order: str, offset: int, wanted: tuple[int, ...], fields: dict[int, bytes], max_value_bytes: int
) -> int | None:
    """Store the wanted byte-valued tags of one IFD in `fields`; return the Exif sub-IFD offset if listed."""
    if offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    exif_ifd = None
    for index in range(min(count, _MAX_ENTRIES)):
        entry = offset + 2 + 12 * index
        if entry + 12 > len(tiff):
            break
        tag, kind, length, value = struct.unpack_from(order + "HHII", tiff, entry)
        if tag == _EXIF_IFD_POINTER and kind == 4:
            exif_ifd = value
        elif tag in wanted and kind in _BYTE_TYPES:
            start = entry + 8 if length <= 4 else value
            end = start + min(length, max_value_bytes)
            if end <= len(tiff):
                fields[tag] = bytes(tiff[start:end])
    return exif_ifd
