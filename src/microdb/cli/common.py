"""What every command shares: exit codes, opening a database, filters, progress on stderr."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from microdb import MicroDB, MicroDBError, Table, untrusted_filter

#: Exit codes (docs/cli.md): a user's or the database's error, a usage error, damage found.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DAMAGE = 0, 1, 2, 3


class CLIError(Exception):
    """A mistake the user can fix: printed as one ``microdb: ...`` line, exit code 1."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def is_url(db: str) -> bool:
    """Whether ``db`` names a database by URL rather than by file path."""
    return "://" in db


def _file_of(db: str) -> str | None:
    """The file a read command needs to find (``None`` for a server URL)."""
    if not is_url(db):
        return db
    scheme, _, rest = db.partition("://")
    if scheme.lower() == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        path = path.split("?", 1)[0]
        return None if path in ("", ":memory:") else path
    return None


@contextmanager
def open_db(db: str, *, write: bool = False, one_commit: bool = False) -> Iterator[MicroDB]:
    """Open ``db``; a read command never creates a missing file, it says so.

    ``one_commit``: the command writes one commit and closes (a load without
    ``--batch-size``). A JSON file then writes that commit as a checkpoint straight away
    (``checkpoint_interval=0``), rather than as a journal record that closing would fold
    into the snapshot at once: the documents are encoded and written once, not twice.
    """
    path = _file_of(db)
    if not write and path is not None and not os.path.exists(path):
        raise CLIError(f"no database at {path} (a read command never creates one)")
    options: dict[str, Any] = {}
    if not write and path is not None:
        options["read_only"] = True
    if write and one_commit and not is_url(db):
        options["checkpoint_interval"] = 0
    database = MicroDB(db, **options)
    try:
        yield database
    finally:
        database.close()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a load (this command runs one thread).

    Parsing a large input builds millions of small dicts and lists that all live until the
    commit: the collector would walk that growing heap again and again, for no garbage
    (documents hold no reference cycles). It took about a third of a 100,000-line import.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def existing_table(db: MicroDB, name: str) -> Table:
    """The table ``name``, or an error naming it and the tables there are."""
    names = db.tables()
    if name not in names:
        have = ", ".join(sorted(names)) or "none"
        raise CLIError(f"no table {name!r} in this database (tables: {have})")
    return db.table(name)


def parse_filter(text: str | None) -> Any:
    """A bounded query from a JSON filter typed by the user (``None`` for no filter)."""
    if text is None or not text.strip():
        return None
    try:
        cond = untrusted_filter(text)
    except MicroDBError as exc:
        raise CLIError(f"bad filter: {exc}") from exc
    return None if cond == _MATCH_ALL else cond


_MATCH_ALL = untrusted_filter({})


class Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal and not silenced.

    ``total`` is a byte count (a file) or ``None`` (documents from a pipe: a running count).
    """

    def __init__(self, label: str, total: int | None, *, enabled: bool, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.label = label
        self.total = total
        self.done = 0
        self.count = 0
        self.last = 0.0
        self.started = time.monotonic()
        self.drawn = False

    def update(self, done: int, count: int) -> None:
        """Record ``done`` bytes (or documents) and ``count`` documents; redraw at most 10 times a second."""
        self.done, self.count = done, count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self.draw()

    def draw(self) -> None:
        width = max(20, min(100, _terminal_width(self.stream)) - 1)
        rate = self.count / max(time.monotonic() - self.started, 1e-6)
        if self.total:
            share = min(1.0, self.done / self.total)
            tail = f" {share:4.0%} {_size(self.done)}/{_size(self.total)} {self.count:,} docs"
            bar_width = max(10, width - len(self.label) - len(tail) - 4)
            filled = int(bar_width * share)
            line = f"{self.label} [{'#' * filled}{'.' * (bar_width - filled)}]{tail}"
        else:
            line = f"{self.label}: {self.count:,} docs ({rate:,.0f}/s)"
        self.stream.write("\r" + line[:width].ljust(width))
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        """Draw the final state and end the line (nothing when not drawn)."""
        if self.enabled:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


def _terminal_width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        columns = 0
    if columns > 0:
        return columns
    env = os.environ.get("COLUMNS", "")
    return int(env) if env.isdigit() and int(env) > 0 else 80


def terminal_width() -> int:
    """The width of the terminal stdout writes to (``COLUMNS``, or 80, when it is not one)."""
    columns = os.environ.get("COLUMNS")
    if columns and columns.isdigit():
        return int(columns)
    return _terminal_width(sys.stdout)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def size_text(n: int) -> str:
    """A byte count for people (``12.3 MB``)."""
    return _size(n)


def confirm(question: str, *, yes: bool) -> None:
    """Go on if ``yes`` was given or a person at a terminal says yes; else refuse."""
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise CLIError(f"{question}: refused without --yes (not at a terminal to ask)")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise CLIError("cancelled")
