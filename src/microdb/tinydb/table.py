"""TinyDB's ``Table`` and ``Document``, on MicroDB's table and engine.

:class:`Table` is a :class:`microdb.table.Table` that takes TinyDB's constructor
(``Table(storage, name, cache_size=10, persist_empty=False)``), raises the exceptions
TinyDB raises for misuse, honours the ``document_class``, ``document_id_class``,
``query_cache_class`` and ``default_query_cache_capacity`` overrides, and keeps TinyDB's
query cache, made safe: a cached result is dropped as soon as the data changes, in this
process or another, and every call returns fresh copies of the documents.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from microdb.backend import Plan
from microdb.document import Document
from microdb.errors import DocumentError, UpdateError
from microdb.query.ast import Call, Const, MapStep, Node, Test
from microdb.query.builders import Query, to_node
from microdb.serialization import copy_value
from microdb.table import Table as _CoreTable
from microdb.tinydb._engine import Engine, engine_for
from microdb.tinydb._errors import (
    EmptyQueryError,
    MissingArgumentError,
    NotAMappingError,
    UpdateAttributeError,
    UpdateKeyError,
    UpdateTypeError,
)
from microdb.tinydb.utils import LRUCache

__all__ = ["Document", "Table"]

Rows = list[tuple[int, dict[str, Any]]]


class _Unset:
    """The default of ``cache_size``: read the class's capacity when the table is made."""

    def __repr__(self) -> str:
        return "<default>"


_UNSET = _Unset()


def _int_ids(doc_ids: Any) -> list[int]:
    if isinstance(doc_ids, (str, bytes, Mapping)) or not isinstance(doc_ids, Iterable):
        raise DocumentError(f"doc_ids must be a list of ints, got {doc_ids!r}")
    ids = list(doc_ids)
    for doc_id in ids:
        if not isinstance(doc_id, int) or isinstance(doc_id, bool):
            raise DocumentError(f"a document id must be an int, got {doc_id!r}")
    return ids


def _lookup_id(doc_id: Any) -> int | None:
    """The id ``doc_id`` names, as TinyDB looks ids up (by their text), or ``None``."""
    if isinstance(doc_id, bool):
        return None
    if isinstance(doc_id, int):
        return doc_id
    text = str(doc_id)
    return int(text) if text.isdigit() else None


def _cacheable(node: Node) -> bool:
    """Whether a result may be cached: the query runs none of the user's code.

    A user function may answer differently tomorrow (TinyDB caches ``test()`` results
    anyway and documents the danger); MicroDB re-runs such queries every time.
    """
    if isinstance(node, (Call, Test)):
        return False
    path = getattr(node, "path", ())
    if any(isinstance(step, MapStep) for step in path):
        return False
    return all(_cacheable(child) for child in node.children())


@contextlib.contextmanager
def _tinydb_update_errors() -> Iterator[None]:
    """Re-raise an update function's failure as the built-in exception TinyDB lets through."""
    try:
        yield
    except UpdateError as exc:
        cause = exc.__cause__
        if isinstance(cause, KeyError):
            raise UpdateKeyError(str(exc)) from cause
        if isinstance(cause, TypeError):
            raise UpdateTypeError(str(exc)) from cause
        if isinstance(cause, AttributeError):
            raise UpdateAttributeError(str(exc)) from cause
        raise


class Table(_CoreTable):
    """A TinyDB table: ``Table(storage, name, cache_size=10, persist_empty=False)``.

    Usually made by ``db.table(name, **options)``. ``cache_size`` bounds the query cache
    (``None``: unbounded, ``0``: off); ``persist_empty`` stores the table at once, even
    before its first document. Every method of MicroDB's table works here too
    (``query()``, ``create_index()``...).
    """

    #: The class of returned documents; built as ``document_class(doc, doc_id)``.
    document_class: type[Document] = Document
    #: The class of document ids handed out.
    document_id_class: Callable[[int], Any] = int
    #: The class of the query cache; built as ``query_cache_class(capacity=cache_size)``.
    query_cache_class: Callable[..., MutableMapping[Any, Any]] = LRUCache
    #: The query cache capacity when ``cache_size`` is not given.
    default_query_cache_capacity: int | None = 10

    def __init__(
        self,
        storage: Any,
        name: str,
        cache_size: int | None | _Unset = _UNSET,
        persist_empty: bool = False,
    ):
        engine = engine_for(storage)
        super().__init__(engine.backend, name)
        self._storage = storage
        self._engine: Engine = engine
        if isinstance(cache_size, _Unset):
            cache_size = self.default_query_cache_capacity
        self._query_cache = self.query_cache_class(capacity=cache_size)
        self._cache_lock = threading.Lock()
        if persist_empty:
            # TinyDB empties an existing table here (its persist_empty bug); MicroDB
            # only creates a missing one.
            with self._write():
                self._ensure_table()

    def __repr__(self) -> str:
        total = "closed" if self._backend.closed else len(self)
        return f"<{type(self).__name__} name={self.name!r}, total={total}, storage={self._storage}>"

    @property
    def storage(self) -> Any:
        """The storage object this table reads and writes."""
        return self._storage

    # -- helpers -----------------------------------------------------------------------
    def _document(self, doc: dict[str, Any], doc_id: int, copied: bool = False) -> Document:
        if not copied and self._backend.shares_documents:
            doc = copy_value(doc)
        return self.document_class(doc, self.document_id_class(doc_id))

    def _ids(self, ids: Iterable[int]) -> list[Any]:
        return [self.document_id_class(i) for i in ids]

    @staticmethod
    def _condition(cond: Any) -> Node:
        if isinstance(cond, Query) and cond._node is None:
            raise EmptyQueryError(
                f"Empty query was evaluated: {cond!r} is a path, not a condition; compare it "
                "(Query().name == 'x') or call a method such as exists()"
            )
        return to_node(cond)

    def _ensure_table(self) -> None:
        # Any write creates its table in TinyDB, even one that changes nothing.
        self._backend.insert(self._name, [])

    def _own_document(self, document: Any) -> Any:
        if not isinstance(document, Mapping):
            raise NotAMappingError(f"Document is not a Mapping: {type(document).__name__}")
        if isinstance(document, self.document_class) and not isinstance(document, Document):
            # A custom document_class unrelated to MicroDB's keeps its id too.
            return Document(document, doc_id=getattr(document, "doc_id", None))
        return document

    def _rows(self, node: Node) -> Rows:
        """The ``(id, stored document)`` pairs matching ``node``, from the cache when valid."""
        with self._read():
            plan = self._live(Plan(node=node))
            # Expiring documents leave a result as time passes: such queries are not cached.
            if plan.node is not node or not _cacheable(node) or self._engine.backend.in_transaction:
                return list(self._backend.run(self._name, plan))
            generation = self._engine.generation
            with self._cache_lock:
                hit = self._query_cache.get(node)
            if hit is not None and hit[0] == generation:
                rows: Rows = hit[1]
                return rows
            # Stored documents are never changed in place (updates store new objects), so
            # keeping references is a faithful snapshot until the generation moves on.
            rows = list(self._backend.run(self._name, Plan(node=node)))
            with self._cache_lock:
                self._query_cache[node] = (generation, rows)
            return rows

    # -- inserting ---------------------------------------------------------------------
    def insert(self, document: Mapping[str, Any]) -> int:
        """Store a document and return its id (a ``Document`` keeps its own ``doc_id``)."""
        return super().insert(self._own_document(document))

    def insert_multiple(self, documents: Iterable[Mapping[str, Any]], *, copy: bool = True) -> list[int]:
        """Store several documents in one commit and return their ids; all or none are stored."""
        if isinstance(documents, Mapping) or not isinstance(documents, Iterable):
            raise NotAMappingError(f"insert_multiple() needs documents, got {type(documents).__name__}")
        return super().insert_many([self._own_document(doc) for doc in documents], copy=copy)

    insert_many = insert_multiple

    # -- reading -----------------------------------------------------------------------
    def search(self, cond: Any) -> list[Document]:
        """The documents matching ``cond``, as fresh copies."""
        return [self._document(doc, doc_id) for doc_id, doc in self._rows(self._condition(cond))]

    def get(self, cond: Any = None, doc_id: int | None = None, doc_ids: Iterable[int] | None = None) -> Any:
        """The first document matching ``cond``, or the one with ``doc_id`` (``None`` if absent).

        With ``doc_ids``, a list of the documents with those ids, in table order.
        """
        if doc_id is not None:
            found = _lookup_id(doc_id)
            return None if found is None else super().get(doc_id=found)
        if doc_ids is not None:
            if isinstance(doc_ids, (str, bytes, Mapping)) or not isinstance(doc_ids, Iterable):
                raise DocumentError(f"doc_ids must be a list of ids, got {doc_ids!r}")
            ids = {_lookup_id(i) for i in doc_ids} - {None}
            return super().get(doc_ids=sorted(i for i in ids if i is not None))
        if cond is None:
            raise MissingArgumentError("You have to pass either cond or doc_id or doc_ids")
        return super().get(self._condition(cond))

    def contains(self, cond: Any = None, doc_id: int | None = None) -> bool:
        """Whether a document matches ``cond``, or has id ``doc_id``."""
        if doc_id is not None:
            found = _lookup_id(doc_id)
            return found is not None and super().contains(doc_id=found)
        if cond is None:
            raise MissingArgumentError("You have to pass either cond or doc_id")
        return super().contains(self._condition(cond))

    def count(self, cond: Any = None) -> int:
        """How many documents match ``cond`` (every document when ``None``)."""
        if cond is None:
            return len(self)
        return len(self._rows(self._condition(cond)))

    def clear_cache(self) -> None:
        """Forget every cached query result."""
        with self._cache_lock:
            self._query_cache.clear()

    # -- changing ----------------------------------------------------------------------
    def update(self, fields: Any, cond: Any = None, doc_ids: Iterable[int] | None = None) -> list[Any]:
        """Change the documents matching ``cond`` (or with ``doc_ids``, or all); returns their ids.

        ``fields`` is a mapping merged into each document or a function changing it in
        place (see :mod:`microdb.tinydb.operations`). Ids in ``doc_ids`` that do not
        exist are skipped. Every document changes, or (on any error) none.
        """
        with _tinydb_update_errors(), self._write():
            self._ensure_table()
            if doc_ids is not None:
                wanted = list(dict.fromkeys(_int_ids(doc_ids)))
                present = {i for i, _ in self._backend.fetch_many(self._name, wanted)}
                changed = super().update(fields, doc_ids=[i for i in wanted if i in present])
            elif cond is not None:
                changed = super().update(fields, self._condition(cond))
            else:
                changed = super().update(fields, Const(True))  # TinyDB: no condition is every document
        return self._ids(changed)

    def update_multiple(self, updates: Iterable[tuple[Any, Any]]) -> list[Any]:
        """Apply several ``(fields, cond)`` updates in one commit; returns the changed ids."""
        pairs = []
        for pair in updates:
            if isinstance(pair, tuple) and len(pair) == 2:
                pair = (pair[0], self._condition(pair[1]))
            pairs.append(pair)
        with _tinydb_update_errors(), self._write():
            self._ensure_table()
            changed = super().update_multiple(pairs)
        return self._ids(sorted(changed))

    def upsert(self, document: Any, cond: Any = None) -> list[Any]:
        """Update the documents matching ``cond``, or insert ``document`` if none match.

        A ``Document`` with a ``doc_id`` upserts by that id.
        """
        document = self._own_document(document)
        node = None if cond is None else self._condition(cond)
        with _tinydb_update_errors(), self._write():
            self._ensure_table()
            return self._ids(super().upsert(document, node))

    def remove(self, cond: Any = None, doc_ids: Iterable[int] | None = None) -> list[Any]:
        """Delete the documents matching ``cond`` (or with ``doc_ids``); returns their ids.

        Ids in ``doc_ids`` that do not exist are skipped.
        """
        if doc_ids is None and cond is None:
            raise MissingArgumentError("Use truncate() to remove all documents")
        with self._write():
            self._ensure_table()
            if doc_ids is not None:
                wanted = list(dict.fromkeys(_int_ids(doc_ids)))
                present = {i for i, _ in self._backend.fetch_many(self._name, wanted)}
                removed = super().remove(doc_ids=[i for i in wanted if i in present])
            else:
                removed = super().remove(self._condition(cond))
        return self._ids(removed)

    def truncate(self) -> None:
        """Delete every document (their ids are still never handed out again)."""
        with self._write():
            self._ensure_table()
            super().truncate()
