"""Writes of the SQL engine: insert, replace, delete, and the id counter."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from microdb.backend import assign_ids
from microdb.errors import DuplicateKeyError
from microdb.sql.registry import SQLRegistry
from microdb.sql.rows import encode_doc
from microdb.sql.schema import REGISTRY, TableInfo
from microdb.sql.session import Session
from microdb.sql.steps import Many, Run, Steps, Work


class SQLWrites(SQLRegistry):
    """The part of :class:`~microdb.sql.backend.SQLBackend` that changes documents."""

    @abstractmethod
    def _insert_rows(self, s: Session, info: TableInfo, rows: list[tuple[int, str]]) -> Steps[None]:
        """Insert ``(id, json text)`` rows."""

    # -- documents ----------------------------------------------------------------------
    def _next_id(self, s: Session, info: TableInfo) -> int:
        return self._drive(s, self._next_id_steps(s, info))

    def _next_id_steps(self, s: Session, info: TableInfo) -> Steps[int]:
        lock = " FOR UPDATE" if self.dialect.row_locks else ""
        rows = yield Run(f"SELECT next_id FROM {REGISTRY} WHERE tid = {self.dialect.param}{lock}", (info.tid,))
        return int(rows[0][0])

    def _existing(self, s: Session, info: TableInfo, ids: Sequence[int]) -> Steps[list[int]]:
        found: list[int] = []
        for chunk, marks in self._id_lists(ids):
            rows = yield Run(f"SELECT id FROM {info.sql} WHERE id IN ({marks})", chunk)
            found.extend(int(r[0]) for r in rows)
        return found

    def insert(self, table: str, docs: Sequence[tuple[int | None, dict[str, Any]]]) -> list[int]:
        with self._op(write=True) as s:
            return self._drive(s, self.insert_steps(s, table, docs))

    def insert_steps(self, s: Session, table: str, docs: Sequence[tuple[int | None, dict[str, Any]]]) -> Steps[list[int]]:
        """:meth:`insert` as steps (:mod:`microdb.sql.steps`), inside a write block."""
        info = yield from self._info_steps(s, table, create=True)
        assert info is not None
        next_id = yield from self._next_id_steps(s, info)
        rows = yield Work(_encode, (table, docs, next_id), len(docs))
        explicit = sorted({i for i, _ in docs if i is not None})
        if explicit:
            clash = yield from self._existing(s, info, explicit)
            if clash:
                raise DuplicateKeyError(f"document {clash[0]} already exists in table {table!r}")
        if not rows:
            return []
        new_next = max(next_id, max(i for i, _ in rows) + 1)
        p = self.dialect.param

        def body() -> Steps[None]:
            # The counter first: the documents' rows go last, so that a watcher's clock
            # (the change rows' time, stamped as they are written) starts near the commit.
            yield Run(f"UPDATE {REGISTRY} SET next_id = {p} WHERE tid = {p}", (new_next, info.tid))
            yield from self._insert_rows(s, info, rows)

        yield from self._savepoint_steps(s, body())
        return [i for i, _ in rows]

    def replace(
        self, table: str, docs: dict[int, dict[str, Any]], touched: Sequence[tuple[str, ...]] | None = None
    ) -> None:
        if not docs:
            return
        with self._op(write=True) as s:
            self._drive(s, self.replace_steps(s, table, docs))

    def replace_steps(self, s: Session, table: str, docs: dict[int, dict[str, Any]]) -> Steps[None]:
        """:meth:`replace` as steps, inside a write block."""
        info = yield from self._info_steps(s, table)
        if info is None or not docs:
            return
        p = self.dialect.param
        rows = yield Work(_encode_updates, (docs,), len(docs))

        def body() -> Steps[None]:
            yield Many(f"UPDATE {info.sql} SET {self.body_column} = {p} WHERE id = {p}", rows)

        yield from self._savepoint_steps(s, body())

    def delete(self, table: str, doc_ids: Sequence[int]) -> None:
        if not doc_ids:
            return
        with self._op(write=True) as s:
            self._drive(s, self.delete_steps(s, table, doc_ids))

    def delete_steps(self, s: Session, table: str, doc_ids: Sequence[int]) -> Steps[None]:
        """:meth:`delete` as steps, inside a write block."""
        info = yield from self._info_steps(s, table)
        if info is None or not doc_ids:
            return
        ids = list(dict.fromkeys(doc_ids))
        for chunk, marks in self._id_lists(ids):
            yield Run(f"DELETE FROM {info.sql} WHERE id IN ({marks})", chunk)

    def truncate(self, table: str) -> None:
        with self._op(write=True) as s:
            self._drive(s, self.truncate_steps(s, table))

    def truncate_steps(self, s: Session, table: str) -> Steps[None]:
        """:meth:`truncate` as steps, inside a write block."""
        info = yield from self._info_steps(s, table)
        if info is not None:
            yield Run(f"DELETE FROM {info.sql}")

    def next_id(self, table: str) -> int:
        """The id the next insert into ``table`` gets."""
        with self._op() as s:
            info = self._info(s, table)
            return 1 if info is None else self._next_id(s, info)

    def reserve_ids(self, table: str, next_id: int) -> None:
        """Make sure no id below ``next_id`` is handed out again (used when copying data in)."""
        with self._op(write=True) as s:
            info = self._info(s, table, create=True)
            assert info is not None
            p = self.dialect.param
            self._execute(s, f"UPDATE {REGISTRY} SET next_id = {p} WHERE tid = {p} AND next_id < {p}",
                          (next_id, info.tid, next_id))


def _encode(table: str, docs: Sequence[tuple[int | None, dict[str, Any]]], next_id: int) -> list[tuple[int, str]]:
    """``(id, json text)`` rows for documents, ids given from ``next_id`` on."""
    return [(doc_id, encode_doc(doc)) for doc_id, doc in assign_ids(table, docs, next_id)]


def _encode_updates(docs: dict[int, dict[str, Any]]) -> list[tuple[str, int]]:
    """``(json text, id)`` rows for changed documents."""
    return [(encode_doc(doc), doc_id) for doc_id, doc in docs.items()]
