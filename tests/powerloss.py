"""A power-loss simulator for the JSON file storage.

:class:`Recorder` replaces, for the length of a workload, the os-level calls through which
the storage writes (``open``, ``pwrite``, ``write``, ``fsync``, ``fdatasync``, ``replace``,
``rename``, ``remove``, ``unlink``, ``truncate``, ``ftruncate``) with wrappers that do the
real call and append an event to a trace. :func:`crash_states` then replays every prefix
of the trace on a model of a disk, in which

- a file's content is what its last ``fsync`` made durable plus the writes since, each of
  which a power cut may keep or drop, page by page (4096 bytes), or tear at a sector (512)
  or page boundary;
- the folder's names are what its last ``fsync`` made durable plus the creations,
  renames and removals since, each of which a power cut may keep or undo;

and yields the distinct disk states (file name -> bytes) a power cut right after that
prefix could leave. The test opens each one and checks what it holds.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import microdb.durability as durability

PAGE = 4096
SECTOR = 512

Event = tuple[Any, ...]


@dataclass
class Recorder:
    """Records the storage's writes under ``folder`` while installed."""

    folder: str
    events: list[Event] = field(default_factory=list)
    _fds: dict[int, Any] = field(default_factory=dict)  # fd -> file (a number per file created)
    _dirs: set[Any] = field(default_factory=set)
    # (dev, ino) -> file: a new file may get the inode of one removed, so files are numbered.
    _files: dict[Any, int] = field(default_factory=dict)
    _saved: dict[str, Any] = field(default_factory=dict)

    def _mine(self, path: Any) -> str | None:
        full = os.path.abspath(os.fsdecode(path))
        if os.path.dirname(full) == self.folder:
            return os.path.basename(full)
        return None

    def install(self, patch: Callable[[Any, str, Any], None]) -> None:
        """Wrap the os calls with ``patch(target, name, value)`` (pytest's monkeypatch.setattr)."""
        real = {name: getattr(os, name) for name in (
            "open", "pwrite", "write", "fsync", "replace", "rename", "remove", "unlink", "truncate", "ftruncate",
            "dup",
        ) if hasattr(os, name)}
        real_fdatasync = durability._fdatasync
        rec = self

        def open_(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
            name = rec._mine(path)
            existed = name is not None and os.path.lexists(path)
            fd: int = real["open"](path, flags, mode)
            if name is not None or os.path.abspath(os.fsdecode(path)) == rec.folder:
                st = os.fstat(fd)
                inode = (st.st_dev, st.st_ino)
                if not existed or inode not in rec._files:
                    rec._files[inode] = len(rec._files) + 1 + len(rec.events)
                key = rec._files[inode]
                rec._fds[fd] = key
                if stat.S_ISDIR(st.st_mode):
                    rec._dirs.add(key)
                elif not existed and flags & os.O_CREAT:
                    rec.events.append(("create", name, key))
                if flags & os.O_TRUNC:
                    rec.events.append(("truncate", key, 0))
            else:
                rec._fds.pop(fd, None)
            return fd

        def dup(fd: int) -> int:
            # A duplicate descriptor is the same file (group commit syncs the journal through one).
            new: int = real["dup"](fd)
            key = rec._fds.get(fd)
            if key is not None:
                rec._fds[new] = key
            else:
                rec._fds.pop(new, None)
            return new

        def pwrite(fd: int, data: Any, offset: int) -> int:
            n: int = real["pwrite"](fd, data, offset)
            key = rec._fds.get(fd)
            if key is not None:
                rec.events.append(("write", key, offset, bytes(data[:n])))
            return n

        def write(fd: int, data: Any) -> int:
            key = rec._fds.get(fd)
            offset = os.lseek(fd, 0, os.SEEK_CUR) if key is not None else 0
            n: int = real["write"](fd, data)
            if key is not None:
                rec.events.append(("write", key, offset, bytes(data[:n])))
            return n

        def sync(fd: int) -> None:
            key = rec._fds.get(fd)
            if key is not None:
                rec.events.append(("dirsync",) if key in rec._dirs else ("sync", key))

        def fsync(fd: int) -> None:
            real["fsync"](fd)
            sync(fd)

        def fdatasync(fd: int) -> None:
            real_fdatasync(fd)
            sync(fd)

        def rename(src: Any, dst: Any, *, src_dir_fd: Any = None, dst_dir_fd: Any = None) -> None:
            real["replace"](src, dst)
            a, b = rec._mine(src), rec._mine(dst)
            if a is not None and b is not None:
                rec.events.append(("rename", a, b))

        def remove(path: Any, *, dir_fd: Any = None) -> None:
            real["remove"](path)
            name = rec._mine(path)
            if name is not None:
                rec.events.append(("remove", name))

        def truncate(path: Any, length: int) -> None:
            st = os.stat(path)
            real["truncate"](path, length)
            key = rec._files.get((st.st_dev, st.st_ino))
            if rec._mine(path) is not None and key is not None:
                rec.events.append(("truncate", key, length))

        def ftruncate(fd: int, length: int) -> None:
            real["ftruncate"](fd, length)
            key = rec._fds.get(fd)
            if key is not None:
                rec.events.append(("truncate", key, length))

        patch(os, "open", open_)
        patch(os, "dup", dup)
        patch(os, "pwrite", pwrite)
        patch(os, "write", write)
        patch(os, "fsync", fsync)
        patch(durability, "_fdatasync", fdatasync)
        patch(os, "replace", rename)
        patch(os, "rename", rename)
        patch(os, "remove", remove)
        patch(os, "unlink", remove)
        patch(os, "truncate", truncate)
        patch(os, "ftruncate", ftruncate)

    def mark(self) -> int:
        """The trace's length now (taken before and after each acknowledged commit)."""
        return len(self.events)


def _apply(content: bytearray, event: Event, keep: int | None = None) -> None:
    if event[0] == "truncate":
        del content[event[2]:]
        return
    offset, data = event[2], event[3]
    if keep is not None:
        data = data[:keep]
    end = offset + len(data)
    if len(content) < offset:
        content.extend(bytes(offset - len(content)))
    content[offset:end] = data


def _pieces(event: Event) -> list[Event]:
    """A write split at page boundaries of the file (each page is lost or kept on its own)."""
    if event[0] != "write":
        return [event]
    _, key, offset, data = event
    out = []
    pos = 0
    while pos < len(data):
        cut = min(len(data), (offset + pos) // PAGE * PAGE + PAGE - offset)
        out.append(("write", key, offset + pos, data[pos:cut]))
        pos = cut
    return out or [event]


@dataclass
class _Disk:
    durable_names: dict[str, Any] = field(default_factory=dict)
    names: list[Event] = field(default_factory=list)  # creates, renames, removes since the folder's sync
    durable: dict[Any, bytes] = field(default_factory=dict)
    pending: dict[Any, list[Event]] = field(default_factory=dict)  # writes since each file's sync

    def step(self, event: Event) -> None:
        kind = event[0]
        if kind in ("create", "rename", "remove"):
            self.names.append(event)
        elif kind == "dirsync":
            self.durable_names = _names(self.durable_names, self.names)
            self.names = []
        elif kind == "sync":
            content = bytearray(self.durable.get(event[1], b""))
            for e in self.pending.pop(event[1], []):
                _apply(content, e)
            self.durable[event[1]] = bytes(content)
        elif kind in ("write", "truncate"):
            self.pending.setdefault(event[1], []).extend(_pieces(event))


def _names(base: dict[str, Any], ops: list[Event], skip: int = -1) -> dict[str, Any]:
    names = dict(base)
    for i, op in enumerate(ops):
        if i == skip:
            continue
        if op[0] == "create":
            names[op[1]] = op[2]
        elif op[0] == "rename":
            if op[1] in names:
                names[op[2]] = names.pop(op[1])
        elif op[0] == "remove":
            names.pop(op[1], None)
    return names


def _contents(disk: _Disk, choose: Callable[[int, Event], int | None]) -> dict[Any, bytes]:
    """Every file's content when ``choose(i, piece)`` says, for the i-th pending piece, how much to keep."""
    out: dict[Any, bytes] = {}
    i = 0
    keys = set(disk.durable) | set(disk.pending)
    for key in sorted(keys):
        content = bytearray(disk.durable.get(key, b""))
        for piece in disk.pending.get(key, []):
            keep = choose(i, piece)
            i += 1
            if keep is None:
                continue
            if piece[0] == "truncate":
                _apply(content, piece)
            elif keep > 0:
                _apply(content, piece, keep)
        out[key] = bytes(content)
    return out


def _state(names: dict[str, Any], contents: dict[Any, bytes]) -> dict[str, bytes]:
    return {name: contents.get(key, b"") for name, key in names.items() if not name.endswith(".lock")}


def _whole(piece: Event) -> int:
    return len(piece[3]) if piece[0] == "write" else 0


def _all(i: int, piece: Event) -> int | None:
    return _whole(piece)


def _none(i: int, piece: Event) -> int | None:
    return None


def _lose(lost: int) -> Callable[[int, Event], int | None]:
    return lambda i, piece: None if i == lost else _whole(piece)


def _tear(last: int, keep: int) -> Callable[[int, Event], int | None]:
    return lambda i, piece: min(keep, _whole(piece)) if i == last else _whole(piece)


def _upto(kept: int) -> Callable[[int, Event], int | None]:
    return lambda i, piece: _whole(piece) if i < kept else None


def _variants(count: int) -> list[Callable[[int, Event], int | None]]:
    """Which of ``count`` pending pages survive: all, none, all but one, the last torn, the first k."""
    out = [_all, _none]
    out += [_lose(lost) for lost in range(count)]
    if count:
        out += [_tear(count - 1, keep) for keep in (SECTOR, 2 * SECTOR, PAGE // 2)]
        out += [_upto(kept) for kept in range(1, count)]
    return out


def crash_states(events: list[Event], rule: Callable[[int], Any]) -> Iterator[tuple[int, dict[str, bytes]]]:
    """(prefix length, files) for each distinct state a power cut after each prefix may leave.

    States are distinct by their files and by ``rule(prefix)``, what the test requires of
    them after that prefix.
    """
    disk = _Disk()
    seen: set[bytes] = set()
    for prefix in range(len(events) + 1):
        if prefix:
            disk.step(events[prefix - 1])
        count = sum(len(v) for v in disk.pending.values())
        variants = _variants(count)
        name_sets = [_names(disk.durable_names, disk.names), disk.durable_names]
        name_sets += [_names(disk.durable_names, disk.names, skip) for skip in range(len(disk.names))]
        for v, choose in enumerate(variants):
            contents = _contents(disk, choose)
            for names in name_sets if v < 2 else name_sets[:1]:
                state = _state(names, contents)
                h = hashlib.sha256(repr(rule(prefix)).encode())
                for name, data in sorted(state.items()):
                    h.update(b"%s\0%d\0" % (name.encode(), len(data)))
                    h.update(data)
                digest = h.digest()
                if digest not in seen:
                    seen.add(digest)
                    yield prefix, state
