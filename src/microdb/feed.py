"""What every change feed shares: the :class:`Change` event and the :class:`ChangeLog` interface.

Each backend keeps its own history of committed changes (the JSON file a side file,
SQLite and PostgreSQL a change table) and exposes it as a :class:`ChangeLog`: numbered
commits, read after a sequence number, and a way to wait for the next one. The public
``db.changes()`` and ``table.watch()`` (:mod:`microdb.changes`) are written once, over this
interface.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = ["Change", "ChangeLog", "OPS"]

#: The operations a change can report.
OPS = ("insert", "update", "remove", "drop")


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change to one document (or a dropped table).

    Every change of one commit (a transaction, an ``insert_many``) has the same ``seq``;
    sequence numbers grow with commit order, across every process using the database.
    """

    #: The commit's sequence number.
    seq: int
    #: The table changed.
    table: str
    #: ``"insert"``, ``"update"``, ``"remove"`` or ``"drop"`` (the whole table).
    op: str
    #: The document's id (``None`` for ``"drop"``).
    doc_id: int | None
    #: The document after the change (``None`` for ``"remove"`` and ``"drop"``).
    doc: dict[str, Any] | None
    #: When the commit was made (seconds since the epoch, as ``time.time()``).
    time: float = 0.0


class ChangeLog(ABC):
    """A backend's history of committed changes, as one reader sees it.

    A reader is used by one thread at a time; each watcher opens its own.
    """

    #: Seconds between two looks when the backend cannot wake readers itself.
    interval: float = 0.005

    @abstractmethod
    def last_seq(self) -> int:
        """The sequence number of the newest commit in the history (0 when there is none)."""

    @abstractmethod
    def read(
        self, after: int, tables: Collection[str] | None = None, limit: int = 1000
    ) -> tuple[list[Change], int]:
        """Changes of the commits numbered above ``after``, oldest first, whole commits only.

        Returns the changes (of ``tables`` only, when given) and the number of the last
        commit looked at, which the next call passes as ``after``. Stops after about
        ``limit`` changes (never inside a commit). Raises
        :class:`~microdb.errors.ChangesExpiredError` when the history no longer reaches back
        to ``after + 1``.
        """

    def wait(self, after: int, timeout: float) -> None:
        """Return when a commit above ``after`` may exist, or after ``timeout`` seconds.

        The default sleeps for :attr:`interval` (at most ``timeout``); backends that can
        be woken (PostgreSQL's ``LISTEN``) return as soon as a commit is announced.
        """
        time.sleep(max(0.0, min(self.interval, timeout)))

    def close(self) -> None:  # noqa: B027 - optional
        """Release what the reader holds (files, connections)."""
