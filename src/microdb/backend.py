"""The interface between :class:`~microdb.table.Table` and whatever executes its work.

Two families implement it: the in-memory engine (:class:`microdb.engine.MemoryBackend`, for
memory, mappings and the JSON file) and the SQL engines (:mod:`microdb.sql`). The
table validates input, turns queries into AST nodes and shapes results; a backend stores,
finds and counts documents, keeps indexes, and makes a block of writes atomic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, overload

from microdb.errors import DuplicateKeyError, UnsupportedFeature
from microdb.expiry import Rule, expired_node, utc_now
from microdb.query.ast import Node, Path
from microdb.query.values import distinct_values

__all__ = ["Backend", "Plan", "Rows", "SortKey", "assign_ids", "new_ids"]


class Rows(Sequence[tuple[int, dict[str, Any]]]):
    """``(id, document)`` pairs kept as two lists, with no tuple per row.

    A read of 100,000 documents held 100,000 ``(id, doc)`` tuples for as long as its
    result lived; tracked by the cyclic collector and outliving its young generations,
    they made each large read set off a full collection, which walks every object of the
    program (0.3 to 0.4 s with 100,000 stored documents on a busy machine, holding the
    interpreter lock throughout: every other thread, an event loop included, stood
    still). Iterating makes each pair as it goes (``zip`` reuses it when it is not kept).
    """

    __slots__ = ("ids", "docs")

    def __init__(self, ids: list[int], docs: list[dict[str, Any]]):
        self.ids = ids
        self.docs = docs

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        return zip(self.ids, self.docs)

    @overload
    def __getitem__(self, index: int) -> tuple[int, dict[str, Any]]: ...

    @overload
    def __getitem__(self, index: slice) -> Rows: ...

    def __getitem__(self, index: int | slice) -> tuple[int, dict[str, Any]] | Rows:
        if isinstance(index, slice):
            return Rows(self.ids[index], self.docs[index])
        return self.ids[index], self.docs[index]

    def __repr__(self) -> str:
        return f"<Rows of {len(self.ids)} documents>"


def new_ids(table: str, docs: Sequence[tuple[int | None, dict[str, Any]]], next_id: int) -> list[int]:
    """The id of each document: its own, or the next free one from ``next_id`` on.

    Ids given explicitly are skipped (never handed out twice) and must be unique within
    the batch; whether they are free in the table is the caller's check.
    """
    explicit = {doc_id for doc_id, _ in docs if doc_id is not None}
    if not explicit:
        # A bulk load: no pair per document (a million of them weigh 60 MB at the peak).
        return list(range(next_id, next_id + len(docs)))
    seen: set[int] = set()
    out: list[int] = []
    for doc_id, _ in docs:
        if doc_id is None:
            while next_id in explicit:
                next_id += 1
            doc_id = next_id
            next_id += 1
        elif doc_id in seen:
            raise DuplicateKeyError(f"document {doc_id} appears twice in one insert into table {table!r}")
        seen.add(doc_id)
        out.append(doc_id)
    return out


def assign_ids(
    table: str, docs: Sequence[tuple[int | None, dict[str, Any]]], next_id: int
) -> list[tuple[int, dict[str, Any]]]:
    """``(id, document)`` pairs: :func:`new_ids` beside the documents."""
    return list(zip(new_ids(table, docs, next_id), [doc for _, doc in docs]))


@dataclass(frozen=True)
class SortKey:
    """One sort key: a path into the document, or a function of the document."""

    path: Path | None = None
    func: Callable[[Any], Any] | None = None
    reverse: bool = False


@dataclass(frozen=True)
class Plan:
    """Everything a lazy result asks of a backend, composed before it runs."""

    node: Node | None = None
    sort: tuple[SortKey, ...] = ()
    skip: int = 0
    limit: int | None = None
    #: Paths of a projection; ``exclude`` says whether they are dropped or kept.
    fields: tuple[Path, ...] | None = None
    exclude: bool = False
    doc_ids: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


class Backend(ABC):
    """What a table needs from the engine under it."""

    #: True when documents returned by :meth:`run` and :meth:`fetch` are the backend's
    #: own objects, which the table must copy before handing them out.
    shares_documents: bool = True
    #: A short name for ``explain()`` and error messages.
    name: str = "backend"
    #: True when the backend itself hides expired documents (from its table options) in
    #: :meth:`run`, :meth:`count`, :meth:`ids` and :meth:`distinct`; else the table adds
    #: :func:`microdb.expiry.live_node` to each plan.
    hides_expired: bool = False

    # -- lifecycle ---------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Flush and release everything; later calls raise ``DatabaseClosedError``."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""

    def compact(self) -> None:  # noqa: B027 - optional
        """Write a compact checkpoint of the data, where the storage has one."""

    # -- atomicity -----------------------------------------------------------------------
    @abstractmethod
    def write(self) -> AbstractContextManager[None]:
        """A block whose writes commit together, or not at all if it raises; may nest."""

    @abstractmethod
    def read(self) -> AbstractContextManager[None]:
        """A block of reads that sees one consistent state, up to date with other processes."""

    # -- tables --------------------------------------------------------------------------
    @abstractmethod
    def tables(self) -> list[str]:
        """Names of the tables that exist."""

    @abstractmethod
    def drop_table(self, table: str) -> bool:
        """Remove a table; true when it existed."""

    # -- documents -----------------------------------------------------------------------
    @abstractmethod
    def insert(self, table: str, docs: Sequence[tuple[int | None, dict[str, Any]]]) -> list[int]:
        """Insert checked documents (with an explicit id, or ``None`` for the next one)."""

    @abstractmethod
    def replace(
        self, table: str, docs: dict[int, dict[str, Any]], touched: Sequence[tuple[str, ...]] | None = None
    ) -> None:
        """Replace existing documents by id, all or none (unique indexes are checked first).

        ``touched``: the only paths (tuples of field names, or array positions as digit
        strings) at which the new documents may differ from the stored ones; an engine may
        leave its indexes on other paths as they are. ``None``: they may differ anywhere.
        """

    @abstractmethod
    def delete(self, table: str, doc_ids: Sequence[int]) -> None:
        """Delete documents by id (absent ids are ignored)."""

    @abstractmethod
    def truncate(self, table: str) -> None:
        """Delete every document of the table (ids are still not reused)."""

    @abstractmethod
    def fetch(self, table: str, doc_id: int) -> dict[str, Any] | None:
        """The document with this id, or ``None``."""

    @abstractmethod
    def fetch_many(self, table: str, doc_ids: Sequence[int]) -> list[tuple[int, dict[str, Any]]]:
        """The documents with these ids that exist, in the order given."""

    @abstractmethod
    def run(self, table: str, plan: Plan) -> Iterable[tuple[int, dict[str, Any]]]:
        """The ``(id, document)`` pairs a plan selects, sorted, skipped and limited (an
        iterator, or a :class:`Rows` that the caller may keep as it is)."""

    def ids(self, table: str, plan: Plan) -> list[int]:
        """The ids of the documents a plan selects, in :meth:`run`'s order.

        The default reads the documents; the memory engine answers from its indexes alone.
        """
        return [doc_id for doc_id, _ in self.run(table, plan)]

    def aggregate(self, table: str, plan: Plan, stages: Sequence[Any]) -> tuple[Iterable[dict[str, Any]], int]:
        """The documents ``plan`` selects, with as many of the pipeline ``stages`` that follow
        run as this backend can run itself; and how many it ran (the table runs the rest).

        The documents may be the backend's own objects: the caller must not change them.
        The default runs none of the stages; SQL backends run a ``$group`` in SQL.
        """
        return (doc for _, doc in self.run(table, plan)), 0

    @abstractmethod
    def count(self, table: str, plan: Plan) -> int:
        """How many documents a plan selects."""

    def distinct(self, table: str, plan: Plan, path: Path) -> list[Any]:
        """The distinct values at ``path`` among the documents a plan selects, sorted.

        The default reads the selected documents; SQL backends push it down.
        """
        return distinct_values((doc for _, doc in self.run(table, plan)), path)

    @abstractmethod
    def length(self, table: str) -> int:
        """How many documents the table holds."""

    @abstractmethod
    def next_id(self, table: str) -> int:
        """The id the next insert into ``table`` gets (1 for a table that does not exist)."""

    @abstractmethod
    def reserve_ids(self, table: str, next_id: int) -> None:
        """Never hand out an id below ``next_id`` in ``table`` (created if missing); used when copying."""

    def iter_batches(self, table: str, size: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
        """Every document of ``table`` in id order, ``size`` at a time.

        The default reads the table in one read block; SQL backends read each batch on its
        own, so a copy never holds more than one batch in memory.
        """
        with self.read():
            rows = list(self.run(table, Plan()))
        for start in range(0, len(rows), size):
            yield rows[start:start + size]

    @abstractmethod
    def explain(self, table: str, plan: Plan) -> dict[str, Any]:
        """How the plan runs: the index used (if any), documents examined, the engine's plan."""

    # -- indexes -------------------------------------------------------------------------
    @abstractmethod
    def create_index(self, table: str, path: Path, unique: bool) -> None:
        """Declare an index (a no-op when the same one exists)."""

    @abstractmethod
    def drop_index(self, table: str, path: Path) -> bool:
        """Remove an index; true when it existed."""

    @abstractmethod
    def create_compound_index(self, table: str, paths: tuple[Path, ...], unique: bool) -> None:
        """Declare an index over several paths, in order (a no-op when the same one exists)."""

    @abstractmethod
    def drop_compound_index(self, table: str, paths: tuple[Path, ...]) -> bool:
        """Remove a compound index; true when it existed."""

    @abstractmethod
    def indexes(self, table: str) -> list[dict[str, Any]]:
        """The table's indexes as ``{"path": [...], "unique": bool}``, or ``{"paths": [[...],
        ...], "unique": bool}`` for a compound index."""

    # -- table options (a schema, ...) ------------------------------------------------------
    def table_options(self, table: str) -> dict[str, Any]:
        """What is stored with a table besides documents and indexes (its schema...); ``{}`` if none.

        Called inside a read or write block; the caller must not change the dict.
        """
        return {}

    def remove_expired(self, table: str, rules: tuple[Rule, ...], limit: int) -> list[int]:
        """Delete up to ``limit`` expired documents (in a write block); their ids."""
        ids = self.ids(table, Plan(node=expired_node(rules, utc_now()), limit=limit))
        self.delete(table, ids)
        return ids

    def set_table_options(self, table: str, options: dict[str, Any]) -> None:
        """Store a table's options (a JSON-encodable dict), creating the table; called in a write block."""
        raise UnsupportedFeature(f"the {self.name} backend cannot store table options")
