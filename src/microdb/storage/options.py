"""The options of a JSON file (a database or an ``AutoSavingDict``), in one object.

``MicroDB('mydb.json', durable=False)`` and ``AutoSavingDict('s.json', indent=2)`` take
these as keywords; :class:`FileOptions` checks them once and carries them to the journal
machinery.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULT_CHECKPOINT_BYTES", "DEFAULT_CHECKPOINT_INTERVAL", "FileOptions"]

#: The journal may always grow to this size before a checkpoint (as SQLite's WAL does to
#: about 4 MB by default): small databases are not rewritten every few hundred commits.
DEFAULT_CHECKPOINT_BYTES = 4 << 20
#: Seconds after a checkpoint (or the open) from which the next commit checkpoints too:
#: while a program writes, the snapshot a user opens elsewhere lags by about this much.
DEFAULT_CHECKPOINT_INTERVAL = 1.0


@dataclasses.dataclass(frozen=True)
class FileOptions:
    """How a JSON file is written, read and shared; every field is a keyword of ``MicroDB(path)``.

    - ``durable``: fsync each commit (``False`` hands commits to the OS: a process crash
      loses nothing, a power cut may lose the last commits, never the file);
    - ``read_only``: refuse writes, create and change no file;
    - ``lock_timeout``: seconds to wait for another process's write block;
    - ``indent``, ``sort_keys``, ``ensure_ascii``, ``encoding``: how the snapshot is
      written, as TinyDB's options;
    - ``create_dirs``: create missing folders of the path;
    - ``checkpoint_ratio``, ``checkpoint_bytes``: the journal is folded into the snapshot
      once it is larger than both ``checkpoint_bytes`` and ``checkpoint_ratio`` times the
      snapshot;
    - ``checkpoint_interval``: seconds; the first commit this long after the last
      checkpoint (or the open) checkpoints too (``None``: only the size rule);
    - ``group_commit``: durable commits of many threads or processes share fsyncs
      (:mod:`microdb.storage.groupsync`); their records are flagged unsynced, so a damaged
      record followed by them reads as a torn tail rather than as damage.
    """

    durable: bool = True
    read_only: bool = False
    lock_timeout: float = 10.0
    indent: int | None = None
    sort_keys: bool = False
    ensure_ascii: bool = False
    encoding: str = "utf-8"
    create_dirs: bool = True
    checkpoint_ratio: float = 1.0
    checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES
    checkpoint_interval: float | None = DEFAULT_CHECKPOINT_INTERVAL
    group_commit: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.lock_timeout, (int, float)) or self.lock_timeout < 0:
            raise ValueError(f"lock_timeout must be a number of seconds >= 0, got {self.lock_timeout!r}")
        if not isinstance(self.checkpoint_ratio, (int, float)) or self.checkpoint_ratio <= 0:
            raise ValueError(f"checkpoint_ratio must be > 0, got {self.checkpoint_ratio!r}")
        if not isinstance(self.checkpoint_bytes, int) or self.checkpoint_bytes < 0:
            raise ValueError(f"checkpoint_bytes must be an int >= 0, got {self.checkpoint_bytes!r}")
        interval = self.checkpoint_interval
        if interval is not None and (not isinstance(interval, (int, float)) or interval < 0):
            raise ValueError(f"checkpoint_interval must be a number of seconds >= 0 or None, got {interval!r}")
        "".encode(self.encoding)  # an unknown encoding fails here, with Python's own LookupError

    @classmethod
    def of(cls, options: FileOptions | None = None, keywords: Mapping[str, Any] | None = None) -> FileOptions:
        """``options`` (or the defaults) with ``keywords`` applied; an unknown one is a ``TypeError``."""
        base = options if options is not None else cls()
        if not keywords:
            return base
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(keywords) - known)
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for a JSON file; "
                f"the options are {', '.join(sorted(known))}"
            )
        return dataclasses.replace(base, **keywords)
