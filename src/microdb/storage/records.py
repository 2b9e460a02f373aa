"""The journal's records: how one commit is framed as a self-checking line, and found again.

A journal (see :mod:`microdb.storage.journal`) is a text file of lines::

    <length: 8 hex digits> <CRC-32: 8 hex digits><flag><payload: one line of JSON>\\n

The flag is a space for a record its writer synced to disk before the commit returned
(``durable=True``) and ``~`` for one it did not (format 2; format 1 had only spaces). The
CRC covers the length digits, a ``~`` flag and the payload, so a line cut short,
overwritten or left half-written is never mistaken for a commit.

A bad record ends the log when no synced record follows it: a power cut may drop or tear
any page written since the last sync, and commits after a lost one are dropped with it,
so what is read is always a prefix of the commits. A bad record followed by a synced one
is damage (the bad one was synced too), never skipped. The first line is the header (the
format version, the kind of file, the metadata the snapshot cannot hold); the others are
commits, or checkpoint markers. After the last record the file holds zero bytes (space
allocated ahead).
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from microdb.durability import pread_all
from microdb.errors import CorruptDatabaseError, FormatVersionError, StorageError
from microdb.serialization import encode, loads_strict

__all__ = [
    "FORMAT_VERSION",
    "any_unsynced",
    "bad_record",
    "encode_value",
    "frame_record",
    "is_marker",
    "payload_of",
    "read_header",
    "scan",
]

#: The journal format this MicroDB writes (3: an update may record only the fields it
#: changed; 2: records flagged synced or not; 1 and 2 are still read, and a writable open
#: upgrades them); files with a higher number are refused.
FORMAT_VERSION = 3

_PREFIX = 18  # "llllllll cccccccc" and the flag
_LINE_HEAD = re.compile(rb"[0-9a-f]{8} [0-9a-f]{8}[ ~]")
_UNSYNCED = 0x7E  # "~"
_MAX_PAYLOAD = 0xFFFFFFFF


def frame_record(payload: bytes, *, synced: bool = True) -> bytes:
    """One journal line: length, CRC-32, the flag (synced or not), the payload, a newline."""
    if len(payload) > _MAX_PAYLOAD:
        raise StorageError(f"a single commit of {len(payload)} bytes is too large for the journal")
    head = b"%08x" % len(payload)
    if synced:
        return b"%s %08x %s\n" % (head, zlib.crc32(payload, zlib.crc32(head)), payload)
    return b"%s %08x~%s\n" % (head, zlib.crc32(payload, zlib.crc32(head + b"~")), payload)


def _line(data: bytes, start: int, end: int) -> tuple[bytes, bool] | None:
    """The payload of the line ``data[start:end]`` and whether it is flagged synced, or None if bad."""
    if end - start < _PREFIX or _LINE_HEAD.match(data, start) is None:
        return None
    head = data[start:start + 8]
    if start + _PREFIX + int(head, 16) != end:
        return None
    payload = data[start + _PREFIX:end]
    synced = data[start + 17] != _UNSYNCED
    seed = zlib.crc32(head) if synced else zlib.crc32(head + b"~")
    if zlib.crc32(payload, seed) != int(data[start + 9:start + 17], 16):
        return None
    return payload, synced


def payload_of(data: bytes, start: int, end: int) -> bytes | None:
    """The payload of the line ``data[start:end]`` (``end`` at its newline), or None if bad."""
    line = _line(data, start, end)
    return None if line is None else line[0]


def _synced_line_after(data: bytes, pos: int) -> bool:
    """Whether a good record flagged synced starts anywhere at or after ``pos``."""
    for match in _LINE_HEAD.finditer(data, pos):
        start = match.start()
        end = data.find(b"\n", start)
        if end < 0:
            return False
        line = _line(data, start, end)
        if line is not None and line[1]:
            return True
    return False


def scan(data: bytes, base: int, path: str) -> tuple[list[tuple[int, bytes]], int]:
    """The good records in ``data`` (read at file offset ``base``) and where they end.

    Payloads hold no raw newline (JSON escapes it), so every record is one line; after the
    last one the file holds zero bytes (space allocated ahead). A bad or unfinished line
    with no synced record after it is a torn tail (a write cut short, still in progress in
    another process, or pages a power cut dropped): scanning stops before it, and records
    after it are not read. A bad line followed by a synced record is damage, never
    skipped: ``CorruptDatabaseError`` names its offset.
    """
    records: list[tuple[int, bytes]] = []
    pos, used = 0, len(data.rstrip(b"\0"))
    while pos < used:
        end = data.find(b"\n", pos)
        payload = None if end < 0 else payload_of(data, pos, end)
        if payload is None:
            if _synced_line_after(data, pos + 1):
                raise CorruptDatabaseError(
                    f"the journal {path!r} is damaged at byte {base + pos}: a record fails its "
                    "length or checksum test and later synced records follow it (the files were left as they are)",
                    path=path, offset=base + pos,
                )
            break
        records.append((base + pos, payload))
        pos = end + 1
    return records, base + pos


def any_unsynced(data: bytes, base: int, records: list[tuple[int, bytes]]) -> bool:
    """Whether one of ``records`` (scanned from ``data``, read at offset ``base``) is flagged not synced."""
    return any(data[offset - base + 17] == _UNSYNCED for offset, _ in records)


def _corrupt(path: str, what: str) -> CorruptDatabaseError:
    return CorruptDatabaseError(f"{path!r} at byte 0: {what} (the file was left as it is)", path=path, offset=0)


def bad_record(path: str | None, offset: int, exc: Exception) -> CorruptDatabaseError:
    """The error for a record whose frame is sound but whose changes cannot be read."""
    return CorruptDatabaseError(
        f"{path!r} at byte {offset}: the journal record is not a list of changes ({exc})",
        path=path, offset=offset,
    )


def read_header(fd: int, path: str, kind: str, database: str) -> tuple[dict[str, Any] | None, int]:
    """The header of the journal open on ``fd`` and where it ends (``None, 0`` when empty).

    ``kind`` is the kind of file expected; ``database`` the snapshot's path, for messages.
    """
    data = pread_all(fd, 1 << 16, 0)
    if not data:
        return None, 0
    end = data.find(b"\n")
    while end < 0:
        more = pread_all(fd, 1 << 20, len(data))
        if not more:
            raise _corrupt(path, "the journal's header is unfinished")
        data += more
        end = data.find(b"\n")
    payload = payload_of(data, 0, end)
    if payload is None:
        raise _corrupt(path, "the journal's header fails its length or checksum test")
    try:
        header = loads_strict(payload)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("microdb") != "journal":
        raise _corrupt(path, "this is not a MicroDB journal")
    version = header.get("format")
    if not isinstance(version, int):
        raise _corrupt(path, "the journal's header has no format version")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{database!r} was written by a newer MicroDB (file format {version}; this version "
            f"reads formats up to {FORMAT_VERSION}): upgrade MicroDB to open it"
        )
    if header.get("kind", kind) != kind:
        raise _corrupt(path, f"the journal belongs to a {header.get('kind')!r} file, not a {kind!r} one")
    return header, end + 1


_PLAIN = frozenset((str, int, float, bool, type(None)))


def _is_plain(value: Any) -> bool:
    """Whether a checked value is its own JSON form (no rich value, no ``$`` key to escape)."""
    t = type(value)
    if t is dict:
        if len(value) == 1 and next(iter(value)).startswith("$"):
            return False
        for item in value.values():
            if type(item) not in _PLAIN and not _is_plain(item):
                return False
        return True
    if t is list:
        for item in value:
            if type(item) not in _PLAIN and not _is_plain(item):
                return False
        return True
    return t in _PLAIN


def encode_value(value: Any) -> Any:
    """The JSON form of a checked value: the value itself when it is plain JSON (no copy)."""
    # Checking is about twice as fast as encoding, which copies every container; most
    # documents are plain, and checkpoints encode every document of the database.
    return value if _is_plain(value) else encode(value)


def is_marker(value: Any) -> bool:
    """Whether a parsed record is a checkpoint marker (commits are lists, markers objects)."""
    return type(value) is dict and "checkpoint" in value
