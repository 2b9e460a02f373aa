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


class SQLWrites(SQLRegistry):
    """The part of :class:`~microdb.sql.backend.SQLBackend` that changes documents."""

    @abstractmethod
    def _insert_rows(self, s: Session, info: TableInfo, rows: list[tuple[int, str]]) -> None:
        """Insert ``(id, json text)`` rows."""

    # -- documents ----------------------------------------------------------------------
    def _next_id(self, s: Session, info: TableInfo) -> int:
        lock = " FOR UPDATE" if self.dialect.row_locks else ""
        rows = self._execute(s, f"SELECT next_id FROM {REGISTRY} WHERE tid = {self.dialect.param}{lock}", (info.tid,))
        return int(rows[0][0])

    def _existing(self, s: Session, info: TableInfo, ids: Sequence[int]) -> list[int]:
        found: list[int] = []
        for chunk, marks in self._id_lists(ids):
            found.extend(int(r[0]) for r in self._execute(s, f"SELECT id FROM {info.sql} WHERE id IN ({marks})", chunk))
        return found

    def insert(self, table: str, docs: Sequence[tuple[int | None, dict[str, Any]]]) -> list[int]:
        with self._op(write=True) as s:
            info = self._info(s, table, create=True)
            assert info is not None
            next_id = self._next_id(s, info)
            rows = [(doc_id, encode_doc(doc)) for doc_id, doc in assign_ids(table, docs, next_id)]
            explicit = sorted({i for i, _ in docs if i is not None})
            if explicit:
                clash = self._existing(s, info, explicit)
                if clash:
                    raise DuplicateKeyError(f"document {clash[0]} already exists in table {table!r}")
            if not rows:
                return []
            new_next = max(next_id, max(i for i, _ in rows) + 1)
            with self._savepoint(s):
                self._insert_rows(s, info, rows)
                p = self.dialect.param
                self._execute(s, f"UPDATE {REGISTRY} SET next_id = {p} WHERE tid = {p}", (new_next, info.tid))
            return [i for i, _ in rows]

    def replace(
        self, table: str, docs: dict[int, dict[str, Any]], touched: Sequence[tuple[str, ...]] | None = None
    ) -> None:
        if not docs:
            return
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is None:
                return
            p = self.dialect.param
            rows = [(encode_doc(doc), doc_id) for doc_id, doc in docs.items()]
            with self._savepoint(s):
                self._execute_many(s, f"UPDATE {info.sql} SET {self.body_column} = {p} WHERE id = {p}", rows)

    def delete(self, table: str, doc_ids: Sequence[int]) -> None:
        if not doc_ids:
            return
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is None:
                return
            ids = list(dict.fromkeys(doc_ids))
            for chunk, marks in self._id_lists(ids):
                self._execute(s, f"DELETE FROM {info.sql} WHERE id IN ({marks})", chunk)

    def truncate(self, table: str) -> None:
        with self._op(write=True) as s:
            info = self._info(s, table)
            if info is not None:
                self._execute(s, f"DELETE FROM {info.sql}")

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
