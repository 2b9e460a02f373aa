"""Sessions and transactions of the SQL engine: nested blocks, savepoints, the driver hooks."""

from __future__ import annotations

import contextlib
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from microdb.backend import Backend
from microdb.compile.sql import Dialect
from microdb.errors import DatabaseClosedError, MicroDBError
from microdb.sql.schema import TableInfo
from microdb.sql.steps import Copy, Many, Run, Step, Steps, Stream, Work, drive, savepoint_sql

T = TypeVar("T")

#: How many ids go into one ``IN (...)`` list.
CHUNK = 500


@dataclass
class Session:
    """The state of one connection in use: nesting depth and what this block has cached."""

    conn: Any = None
    depth: int = 0
    writing: bool = False
    savepoints: int = 0
    #: True while sending the first statement of a block (safe to retry on a new link).
    fresh: bool = False
    tables: dict[str, TableInfo | None] = field(default_factory=dict)



class SQLSessions(Backend):
    """The part of :class:`~microdb.sql.backend.SQLBackend` that holds connections and transactions."""

    shares_documents = False
    dialect: Dialect
    #: The column read to get the document text back.
    body_column = "doc"
    #: Whether a read block is a transaction of its own (else a write nested in a read
    #: block starts one).
    reads_in_transaction = True

    def __init__(self) -> None:
        self._closed = False
        self._close_lock = threading.Lock()


    # -- what each engine provides ----------------------------------------------------------
    @abstractmethod
    def _session(self) -> contextlib.AbstractContextManager[Session]:
        """The session of the calling thread, held for the block (locks as the engine needs)."""

    @abstractmethod
    def _execute(self, s: Session, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returns (wrapping driver errors)."""

    @abstractmethod
    def _execute_many(self, s: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""

    @abstractmethod
    def _stream(self, s: Session, sql: str, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of a query, fetched lazily (so a caller that stops early reads little)."""

    @abstractmethod
    def _begin(self, s: Session, write: bool) -> None:
        """Start the outermost transaction of a block."""

    @abstractmethod
    def _end(self, s: Session, commit: bool) -> None:
        """Commit or roll back the outermost transaction."""


    def _copy(self, s: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Load rows with ``COPY ... FROM STDIN`` (only engines that yield :class:`Copy` steps)."""
        raise NotImplementedError(f"the {self.name} backend has no COPY")

    # -- the blocking driver of steps (microdb.sql.steps) -----------------------------------
    def _answer(self, s: Session, step: Step) -> Any:
        """Run one step on the calling thread's connection."""
        if isinstance(step, Run):
            return self._execute(s, step.sql, step.params)
        if isinstance(step, Stream):
            return self._stream(s, step.sql, step.params)
        if isinstance(step, Many):
            return self._execute_many(s, step.sql, step.rows)
        if isinstance(step, Copy):
            return self._copy(s, step.sql, step.rows)
        if isinstance(step, Work):
            return step.func(*step.args)
        raise TypeError(f"not a step: {step!r}")

    def _drive(self, s: Session, steps: Steps[T]) -> T:
        """Run ``steps`` on ``s`` in the calling thread; their result."""
        return drive(steps, lambda step: self._answer(s, step))

    def _id_lists(self, ids: Sequence[int]) -> Iterator[tuple[Sequence[int], str]]:
        """The ids in lists of at most :data:`CHUNK`, each with its ``IN (...)`` placeholders."""
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            yield chunk, ", ".join(self.dialect.param for _ in chunk)

    # -- lifecycle --------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError("the database is closed")

    # -- blocks -------------------------------------------------------------------------
    def write(self) -> contextlib.AbstractContextManager[None]:
        return self._block(write=True)

    def read(self) -> contextlib.AbstractContextManager[None]:
        return self._block(write=False)

    @contextlib.contextmanager
    def _block(self, write: bool) -> Iterator[None]:
        self._check_open()
        with self._session() as s:
            if s.depth == 0:
                s.tables = {}
                with self._transaction(s, write):
                    yield
            elif not write:
                s.depth += 1
                try:
                    yield
                finally:
                    s.depth -= 1
            elif not s.writing and not self.reads_in_transaction:
                # A write inside a read block: the write is a transaction of its own.
                with self._transaction(s, True):
                    yield
            else:
                with self._savepoint(s):
                    s.depth += 1
                    try:
                        yield
                    finally:
                        s.depth -= 1

    @contextlib.contextmanager
    def _transaction(self, s: Session, write: bool) -> Iterator[None]:
        """A transaction of its own on ``s``: committed at the end, rolled back if the block raises."""
        s.writing = write
        try:
            self._begin(s, write)
        except BaseException:
            s.writing = False
            raise
        s.depth += 1
        try:
            try:
                yield
            finally:
                s.depth -= 1
        except BaseException:
            try:
                self._end(s, commit=False)
            finally:
                s.writing = False
            raise
        try:
            self._end(s, commit=True)
        finally:
            s.writing = False

    @contextlib.contextmanager
    def _savepoint(self, s: Session) -> Iterator[None]:
        """A nested atomic step: on an exception only its own changes are undone."""
        s.savepoints += 1
        begin, rollback, release = savepoint_sql(s.savepoints)
        self._execute(s, begin)
        try:
            yield
        except BaseException:
            cached = dict(s.tables)
            with contextlib.suppress(MicroDBError):
                self._execute(s, rollback)
                self._execute(s, release)
            # The registry may have changed inside: forget what was cached.
            s.tables = {} if cached else s.tables
            raise
        else:
            self._execute(s, release)
        finally:
            s.savepoints -= 1

    def _savepoint_steps(self, s: Session, body: Steps[T]) -> Steps[T]:
        """:meth:`_savepoint` as steps: ``body`` undone alone if it fails.

        A block of its own (depth 1: the transaction was opened for this call alone) needs
        none: if ``body`` fails, the whole transaction is rolled back.
        """
        if s.depth <= 1:
            return (yield from body)
        s.savepoints += 1
        begin, rollback, release = savepoint_sql(s.savepoints)
        try:
            yield Run(begin)
            try:
                out = yield from body
            except BaseException:
                cached = dict(s.tables)
                with contextlib.suppress(MicroDBError):
                    yield Run(rollback)
                    yield Run(release)
                s.tables = {} if cached else s.tables
                raise
            yield Run(release)
            return out
        finally:
            s.savepoints -= 1

    @contextlib.contextmanager
    def _op(self, write: bool = False) -> Iterator[Session]:
        """A session for one backend call (inside the table's block, or a block of its own)."""
        with self._block(write), self._session() as s:
            yield s

    def _lock_clause(self, s: Session) -> str:
        # Rows read inside a write block are locked until it ends, so a read-modify-write
        # from another connection waits instead of overwriting (a lost update).
        return " FOR UPDATE" if self.dialect.row_locks and s.writing else ""
