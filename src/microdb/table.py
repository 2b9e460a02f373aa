"""A table: a named collection of documents, and everything you do with them."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import AbstractContextManager
from typing import Any

from microdb.aggregate import parse_pipeline, run_stages
from microdb.backend import Backend, Plan, SortKey
from microdb.changes import ChangeStream, Watch, open_change_log
from microdb.compile.update_ops import upsert_seed
from microdb.compile.updates import Change, compile_change, compile_update, is_operator_update
from microdb.document import Document
from microdb.errors import DatabaseClosedError, DocumentError, DocumentNotFound, QueryError, UpdateError
from microdb.expiry import SWEEP_BATCH, SWEEP_INTERVAL, is_expired, live_node, rules_of
from microdb.gcpause import THRESHOLD, paused_gc
from microdb.query.ast import And, Node
from microdb.query.builders import to_node
from microdb.query.fields import parse_field
from microdb.results import Result
from microdb.schema import checks as _schema
from microdb.schema.models import model_instance
from microdb.serialization import IMMUTABLE_TYPES, check_document, check_private, copy_into, copy_value

__all__ = ["Table"]

_new_document = Document.__new__
_fill = dict.update


def _check_id(doc_id: Any) -> int:
    if not isinstance(doc_id, int) or isinstance(doc_id, bool):
        raise DocumentError(f"a document id must be an int, got {doc_id!r}")
    return doc_id


def _check_ids(doc_ids: Any) -> list[int]:
    if isinstance(doc_ids, (str, bytes, Mapping)) or not isinstance(doc_ids, Iterable):
        raise DocumentError(f"doc_ids must be a list of ints, got {doc_ids!r}")
    return [_check_id(i) for i in doc_ids]


def _seconds(expire_after: Any) -> float:
    if isinstance(expire_after, _dt.timedelta):
        seconds = expire_after.total_seconds()
    elif isinstance(expire_after, (int, float)) and not isinstance(expire_after, bool):
        seconds = float(expire_after)
    else:
        raise QueryError(f"expire_after needs a timedelta or a number of seconds, got {expire_after!r}")
    if not seconds >= 0 or seconds == float("inf"):
        raise QueryError(f"expire_after must be zero or more, got {expire_after!r}")
    return seconds


class Table:
    """A named collection of documents in a database.

    Get one with ``db.table('users')``; the database itself is the table ``_default``.
    Every method is safe to call from several threads at once.
    """

    document_class: type[Document] = Document
    #: The model class documents come back as (``db.table(name, schema=Model, models=True)``).
    _model: type | None = None

    def __init__(self, backend: Backend, name: str):
        if not isinstance(name, str) or not name:
            raise QueryError(f"a table name must be a non-empty string, got {name!r}")
        self._backend = backend
        self._name = name
        self._schema_model: type | None = None
        self._sweep_at = 0.0

    @property
    def name(self) -> str:
        """The table's name."""
        return self._name

    def __repr__(self) -> str:
        return f"<Table name={self._name!r}, backend={self._backend.name!r}>"

    # -- helpers -----------------------------------------------------------------------
    def _read(self) -> AbstractContextManager[None]:
        # The backend's read block raises DatabaseClosedError itself.
        return self._backend.read()

    def _write(self) -> AbstractContextManager[None]:
        if self._backend.closed:
            raise DatabaseClosedError(f"table {self._name!r}: the database is closed")
        if self._sweep_at <= time.monotonic():
            self._sweep()
        return self._backend.write()

    # -- expiring documents (see microdb.expiry) ------------------------------------------
    def _sweep(self) -> None:
        """Remove a batch of expired documents: writers do it, at most once a second."""
        self._sweep_at = time.monotonic() + SWEEP_INTERVAL
        # A look without a block first (the engine's memory may be a moment behind other
        # processes; SQL reads its registry): a table without TTL costs no extra commit.
        if not rules_of(self._backend.table_options(self._name)):
            return
        with self._backend.write():
            rules = rules_of(self._backend.table_options(self._name))
            if rules:
                self._backend.remove_expired(self._name, rules, SWEEP_BATCH)

    def _live(self, plan: Plan) -> Plan:
        """``plan`` without the expired documents (inside a read or write block)."""
        if self._backend.hides_expired:
            return plan
        rules = rules_of(self._backend.table_options(self._name))
        if not rules:
            return plan
        live = live_node(rules)
        return dataclasses.replace(plan, node=live if plan.node is None else And.of(plan.node, live))

    def _alive(self, doc: dict[str, Any]) -> bool:
        rules = rules_of(self._backend.table_options(self._name))
        return not rules or not is_expired(doc, rules)

    def _document(self, doc: dict[str, Any], doc_id: int, copied: bool = False) -> Document:
        if self._model is not None:
            return model_instance(self._model, doc if copied else copy_value(doc))  # type: ignore[no-any-return]
        cls = self.document_class
        if cls is Document:
            # Skips Document.__init__ and a second copy: this is the hot path of every read.
            out = _new_document(Document)
            if copied or not self._backend.shares_documents:
                _fill(out, doc)
            else:
                copy_into(out, doc)
            out.doc_id = doc_id
            return out
        if not copied and self._backend.shares_documents:
            doc = copy_value(doc)
        return cls(doc, doc_id=doc_id)

    def _documents(self, rows: Iterable[tuple[int, dict[str, Any]]]) -> list[Document]:
        """Documents for many ``(id, stored document)`` rows (the loop of every query)."""
        if self.document_class is not Document or not self._backend.shares_documents or self._model is not None:
            return [self._document(doc, doc_id) for doc_id, doc in rows]
        # _document and copy_into, inlined: a call less per document is 5% of a large read.
        new, shared, copy = _new_document, IMMUTABLE_TYPES, copy_value
        out: list[Document] = []
        append = out.append
        # The copies are new containers that cannot form cycles: the collector, run over
        # and over while thousands of them are built, made large reads 25% slower.
        with paused_gc(len(rows) if isinstance(rows, Sized) else THRESHOLD):
            for doc_id, doc in rows:
                item = new(Document)
                item.update(doc)
                for key, value in doc.items():
                    kind = type(value)
                    if kind in shared:
                        continue
                    # A list or object of plain values (tags, an address) is copied in C,
                    # without calling copy_value: the call and its loop were two thirds
                    # of the cost of a returned document. Anything nested goes through it.
                    if kind is list:
                        inner, parts = value[:], value
                    elif kind is dict:
                        inner, parts = value.copy(), value.values()
                    else:
                        item[key] = copy(value)
                        continue
                    for part in parts:
                        if type(part) not in shared:
                            inner = copy(value)
                            break
                    item[key] = inner
                item.doc_id = doc_id
                append(item)
        return out

    @staticmethod
    def _node(cond: Any) -> Node | None:
        return None if cond is None else to_node(cond)

    def _target_ids(self, cond: Any, doc_ids: Any, *, missing_ok: bool = False) -> list[int]:
        """Ids selected by a query or an id list (inside a read or write block)."""
        if doc_ids is not None:
            ids = _check_ids(doc_ids)
            found = [i for i, d in self._backend.fetch_many(self._name, ids) if self._alive(d)]
            if not missing_ok and len(found) != len(set(ids)):
                absent = sorted(set(ids) - set(found))
                raise DocumentNotFound(f"table {self._name!r} has no document with id {absent[0]}")
            return found
        if cond is None:
            raise QueryError("give a query or doc_ids (use truncate() to remove every document)")
        return self._backend.ids(self._name, self._live(Plan(node=to_node(cond))))

    # -- schema --------------------------------------------------------------------------
    def _check(self, items: Iterable[tuple[int | None, dict[str, Any]]]) -> None:
        """Check documents about to be written against the stored schema (in a write block)."""
        options = self._backend.table_options(self._name)
        if options:
            _schema.check_documents(self._name, options, items)

    def set_schema(self, schema: Any, *, validation: str = "error") -> None:
        """Store ``schema`` with the table (``None`` removes it); every later write is checked.

        ``schema`` is a JSON Schema dict, a dataclass, a ``TypedDict`` or a pydantic model
        (see docs/schemas.md). Documents already stored are not checked: see :meth:`validate`.
        """
        with self._write():
            current = self._backend.table_options(self._name)
            options, model = _schema_options(current, schema, validation)
            if options != current:
                self._backend.set_table_options(self._name, options)
        self._schema_model = model

    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema stored with the table, or ``None``."""
        with self._read():
            return _schema.stored_schema(self._backend.table_options(self._name))

    def validate(self) -> list[dict[str, Any]]:
        """The stored documents that break the table's schema: ``{doc_id, path, rule, message}`` each."""
        with self._read():
            options = self._backend.table_options(self._name)
            return _schema.violations(options, self._backend.run(self._name, Plan()))

    # -- inserting ---------------------------------------------------------------------
    def _prepare(self, document: Any, copy: bool = True) -> tuple[int | None, dict[str, Any]]:
        doc = check_document(document) if copy else check_private(document)
        doc_id = getattr(document, "doc_id", None) if isinstance(document, Document) else None
        if doc_id is not None:
            _check_id(doc_id)
        return doc_id, doc

    def insert(self, document: Mapping[str, Any]) -> int:
        """Store a document and return its new id (a ``Document`` keeps its own ``doc_id``)."""
        item = self._prepare(document)
        with self._write():
            self._check([item])
            return self._backend.insert(self._name, [item])[0]

    def insert_many(self, documents: Iterable[Mapping[str, Any]], *, copy: bool = True) -> list[int]:
        """Store several documents in one commit; returns their ids. All or none are stored.

        ``copy=False`` hands the documents over (a bulk load of freshly parsed ones): plain
        ``dict`` documents are checked but stored without a copy, so the caller must not
        change them afterwards.
        """
        if isinstance(documents, Mapping) or not isinstance(documents, Iterable):
            raise DocumentError(f"insert_many() needs a list of documents, got {type(documents).__name__}")
        # A generator is consumed as it goes: holding the caller's documents and their checked
        # copies at once would double the peak memory of a bulk load.
        size = len(documents) if isinstance(documents, Sized) else THRESHOLD
        with paused_gc(size):
            items = [self._prepare(doc, copy) for doc in documents]
            if not items:
                return []
            with self._write():
                self._check(items)
                ids = self._backend.insert(self._name, items)
                # The (id, document) pairs are not needed by the commit at the block's end:
                # dropped first, they are no longer part of a bulk load's peak (issue 12).
                del items
            return ids

    # -- reading ----------------------------------------------------------------------
    def query(self, cond: Any = None) -> Result:
        """A lazy :class:`~microdb.results.Result` of the documents matching ``cond`` (all if None)."""
        return Result(self, Plan(node=self._node(cond)))

    def all(self) -> list[Document]:
        """Every document, in id order."""
        return self.query().all()

    def search(self, cond: Any) -> list[Document]:
        """The documents matching ``cond``, as a list."""
        return Result(self, Plan(node=to_node(cond))).all()

    def get(self, cond: Any = None, *, doc_id: int | None = None, doc_ids: Iterable[int] | None = None) -> Any:
        """One document: the first matching ``cond``, or by ``doc_id`` (``None`` if absent).

        With ``doc_ids``, a list of the documents with those ids that exist.
        """
        if doc_id is not None:
            if type(doc_id) is not int:
                _check_id(doc_id)
            backend = self._backend
            with backend.read():
                doc = backend.fetch(self._name, doc_id)
                return None if doc is None or not self._alive(doc) else self._document(doc, doc_id)
        if doc_ids is not None:
            ids = _check_ids(doc_ids)
            with self._read():
                return [self._document(d, i) for i, d in self._backend.fetch_many(self._name, ids) if self._alive(d)]
        if cond is None:
            raise QueryError("get() needs a query, doc_id or doc_ids")
        return self.query(cond).first()

    def contains(self, cond: Any = None, *, doc_id: int | None = None) -> bool:
        """Whether a document matches ``cond`` (or has id ``doc_id``)."""
        if doc_id is not None:
            _check_id(doc_id)
            with self._read():
                doc = self._backend.fetch(self._name, doc_id)
                return doc is not None and self._alive(doc)
        if cond is None:
            raise QueryError("contains() needs a query or doc_id")
        return bool(self.query(cond))

    def count(self, cond: Any = None) -> int:
        """How many documents match ``cond`` (all of them if ``None``)."""
        return self.query(cond).count()

    def __len__(self) -> int:
        with self._read():
            if rules_of(self._backend.table_options(self._name)):
                return self._backend.count(self._name, self._live(Plan()))
            return self._backend.length(self._name)

    def __iter__(self) -> Iterator[Document]:
        return iter(self.all())

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, int) and self.contains(doc_id=doc_id)

    # -- changing ---------------------------------------------------------------------
    def _replace(self, change: Change, ids: list[int]) -> list[int]:
        """Apply ``change`` to the documents with ``ids`` (inside a write block); their ids."""
        changes = change.documents(self._backend.fetch_many(self._name, ids), self._backend.shares_documents)
        self._check(changes.items())
        self._backend.replace(self._name, changes, change.touched)
        return list(changes)

    def _updated(self, spec: Any, rows: Iterable[tuple[int, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
        """The stored ``(id, document)`` rows with the update applied, checked (no I/O)."""
        return compile_change(spec).documents(rows, self._backend.shares_documents)

    def update(self, fields: Any, cond: Any = None, *, doc_ids: Iterable[int] | None = None) -> list[int]:
        """Change the documents matching ``cond`` (or with ``doc_ids``); returns their ids.

        ``fields`` is a mapping of fields to set, a function changing the document in place
        (such as :func:`microdb.operations.increment`), or MongoDB-style operators
        (``{'$inc': {'n': 1}}``). Like :meth:`remove`, it needs ``cond`` or ``doc_ids``
        (``QueryError`` otherwise): to change every document, say so with ``{}`` or
        ``Query().noop()``. All documents change, or (on any error) none.
        """
        change = compile_change(fields)  # reject a malformed update before taking any lock
        if cond is None and doc_ids is None:
            # One rule for update() and remove(): a forgotten condition changes nothing.
            raise QueryError(
                "update() needs a query or doc_ids, as remove() does "
                "(pass {} or Query().noop() to change every document)"
            )
        # The pause outlives the write block: its commit encodes the journal record.
        with contextlib.ExitStack() as pause, self._write():
            ids = self._target_ids(cond, doc_ids)
            # Thousands of new documents, no cycles among them (see microdb.gcpause).
            pause.enter_context(paused_gc(len(ids)))
            return self._replace(change, ids)

    def update_multiple(self, updates: Iterable[tuple[Any, Any]]) -> list[int]:
        """Apply several ``(fields, cond)`` updates in one commit; returns every changed id."""
        pairs = list(updates)
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise UpdateError(f"update_multiple() needs (fields, query) pairs, got {pair!r:.60}")
        changes = [(compile_change(fields), cond) for fields, cond in pairs]
        changed: list[int] = []
        with self._write():
            for change, cond in changes:
                ids = self._replace(change, self._target_ids(cond, None))
                changed.extend(i for i in ids if i not in changed)
        return changed

    def upsert(self, document: Any, cond: Any = None) -> list[int]:
        """Update the documents matching ``cond``, or insert ``document`` when none match.

        ``document`` may be fields or update operators. A ``Document`` with a ``doc_id``
        upserts by id. With a dict filter and operators, the inserted document is built
        from the filter's equality fields plus the update, as MongoDB does.
        """
        doc_id = document.doc_id if isinstance(document, Document) else None
        if cond is None and doc_id is None:
            raise QueryError("upsert() needs a query, or a Document with a doc_id")
        change = compile_change(document)
        with self._write():
            if doc_id is not None:
                if self._backend.fetch(self._name, _check_id(doc_id)) is not None:
                    return self._replace(compile_change(dict(document)), [doc_id])
                item = (doc_id, check_document(document))
                self._check([item])
                return self._backend.insert(self._name, [item])
            ids = self._target_ids(cond, None)
            if ids:
                return self._replace(change, ids)
            new = _upsert_new(document, cond)
            self._check([(None, new)])
            return self._backend.insert(self._name, [(None, new)])

    def remove(self, cond: Any = None, *, doc_ids: Iterable[int] | None = None) -> list[int]:
        """Delete the documents matching ``cond`` (or with ``doc_ids``); returns their ids."""
        with self._write():
            ids = self._target_ids(cond, doc_ids)
            self._backend.delete(self._name, ids)
            return ids

    def truncate(self) -> None:
        """Delete every document (ids are still never reused)."""
        with self._write():
            self._backend.truncate(self._name)

    # -- aggregation (see microdb.aggregate and docs/aggregation.md) -------------------------
    def aggregate(self, pipeline: Any) -> list[dict[str, Any]]:
        """Run a MongoDB-style aggregation pipeline over the table; the output documents.

        Stages: ``$match``, ``$sort``, ``$project``, ``$limit``, ``$skip``, ``$unwind``,
        ``$count``, ``$group`` and ``$lookup`` (from another table of this database). The
        leading ``$match``/``$sort``/``$skip``/``$limit`` use indexes; on SQL a ``$group``
        right after them runs as ``GROUP BY``.
        """
        stages = parse_pipeline(pipeline)
        plan, head = Plan(), 0
        for stage in stages:
            op, arg = stage.op, stage.arg
            if op == "$match" and not plan.sort and not plan.skip and plan.limit is None:
                plan = dataclasses.replace(plan, node=arg if plan.node is None else And.of(plan.node, arg))
            elif op == "$sort" and not plan.sort and not plan.skip and plan.limit is None:
                plan = dataclasses.replace(plan, sort=tuple(SortKey(path=p, reverse=r) for p, r in arg))
            elif op == "$skip":
                limit = None if plan.limit is None else max(0, plan.limit - arg)
                plan = dataclasses.replace(plan, skip=plan.skip + arg, limit=limit)
            elif op == "$limit":
                plan = dataclasses.replace(plan, limit=arg if plan.limit is None else min(plan.limit, arg))
            else:
                break
            head += 1
        rest = stages[head:]

        def lookup(name: str) -> list[dict[str, Any]]:
            other = Table(self._backend, name)
            return [doc for _, doc in self._backend.run(name, other._live(Plan()))]

        with self._read():
            docs, done = self._backend.aggregate(self._name, self._live(plan), rest)
            return run_stages(docs, rest[done:], lookup)

    # -- indexes ----------------------------------------------------------------------
    def create_index(self, field: Any, *fields: Any, unique: bool = False, expire_after: Any = None) -> None:
        """Index ``field`` (a name, a dot path, or ``Query().a.b``); ``unique`` rejects duplicates.

        Several fields make one compound index, ordered by the first field, then the next:
        ``create_index('city', 'age')`` serves ``city == X`` alone, ``city == X`` with a
        range on ``age``, and ``city == X`` sorted by ``age``. A list names one nested path
        (``['address', 'city']``), as everywhere.

        Raises ``DuplicateKeyError`` (and creates nothing) if a unique index would already
        be broken by the stored documents. ``expire_after`` (a ``timedelta`` or seconds)
        makes it a TTL index, as in MongoDB: a document expires that long after the
        ``datetime`` in ``field`` (see docs/api.md, "Expiring documents").
        """
        path, paths, seconds = _index_args(field, fields, expire_after)
        with self._write():
            if paths:
                self._backend.create_compound_index(self._name, paths, bool(unique))
                return
            self._backend.create_index(self._name, path, bool(unique))
            if seconds is not None:
                options = _with_ttl(self._backend.table_options(self._name), path, seconds)
                self._backend.set_table_options(self._name, options)

    def drop_index(self, field: Any, *fields: Any) -> bool:
        """Remove the index on ``field`` (and its expiry, for a TTL index), or the compound
        index on all the fields; true when there was one."""
        path, paths, _ = _index_args(field, fields, None)
        with self._write():
            if paths:
                return self._backend.drop_compound_index(self._name, paths)
            options = _without_ttl(self._backend.table_options(self._name), path)
            if options is not None:
                self._backend.set_table_options(self._name, options)
            return self._backend.drop_index(self._name, path)

    def indexes(self) -> list[dict[str, Any]]:
        """The table's indexes, as ``{'path': [...], 'unique': bool}`` (``'paths'`` for a
        compound one, and ``expire_after`` for TTL)."""
        with self._read():
            return _with_expiry(self._backend.indexes(self._name), self._backend.table_options(self._name))

    def watch(
        self,
        callback: Callable[[Any], Any] | None = None,
        *,
        since: int | None = None,
        timeout: float | None = None,
    ) -> Watch:
        """This table's committed changes, from every process (see docs/changes.md).

        Without ``callback``, iterate the result: it waits for each change, and ends after
        ``timeout`` seconds without one. With ``callback``, a background thread calls
        ``callback(change)`` for each change until ``stop()``. ``since`` resumes after a
        sequence number (``None``: from now on).
        """
        if self._backend.closed:
            raise DatabaseClosedError("the database is closed")
        stream = ChangeStream(open_change_log(self._backend), since=since, tables=self._name, timeout=timeout)
        watch = Watch(stream)
        return watch if callback is None else watch.start(callback)


# -- what a table call decides without I/O (shared with the async API on PostgreSQL) --------
def _schema_options(current: dict[str, Any], schema: Any, validation: str) -> tuple[dict[str, Any], type | None]:
    """The table's options with ``schema`` stored (``None``: removed), and its model class."""
    options = dict(current)
    if schema is None:
        options.pop("schema", None)
        options.pop("validation", None)
        return options, None
    made, model = _schema.make_options(schema, validation)
    options.update(made)
    return options, model


def _upsert_new(document: Any, cond: Any) -> dict[str, Any]:
    """The document an upsert inserts when nothing matches ``cond``."""
    if is_operator_update(document):
        base = upsert_seed(cond)
        compile_update(document)(base)
        return check_document(base)
    return check_document(document)


def _index_args(field: Any, fields: tuple[Any, ...], expire_after: Any) -> tuple[Any, tuple[Any, ...], float | None]:
    """``create_index``'s arguments read: the path, the compound paths (empty for one
    field), the TTL in seconds."""
    path = parse_field(field)
    seconds = None if expire_after is None else _seconds(expire_after)
    if not fields:
        return path, (), seconds
    if seconds is not None:
        raise QueryError("expire_after needs an index on one field, not a compound index")
    return path, (path, *(parse_field(f) for f in fields)), None


def _with_ttl(options: dict[str, Any], path: Any, seconds: float) -> dict[str, Any]:
    """The table's options with documents expiring ``seconds`` after the date at ``path``."""
    ttl = [r for r in options.get("ttl", []) if tuple(r["path"]) != path]
    return {**options, "ttl": [*ttl, {"path": list(path), "seconds": seconds}]}


def _without_ttl(options: dict[str, Any], path: Any) -> dict[str, Any] | None:
    """The table's options without the expiry on ``path`` (``None``: it had none)."""
    if not any(tuple(r["path"]) == path for r in options.get("ttl", [])):
        return None
    ttl = [r for r in options["ttl"] if tuple(r["path"]) != path]
    new = {k: v for k, v in options.items() if k != "ttl"}
    return {**new, "ttl": ttl} if ttl else new


def _with_expiry(found: list[dict[str, Any]], options: dict[str, Any]) -> list[dict[str, Any]]:
    """``indexes()``'s answer: the TTL of each expiring index added as ``expire_after``."""
    for path, seconds in rules_of(options):
        for spec in found:
            if tuple(spec.get("path", ())) == path:
                spec["expire_after"] = _dt.timedelta(seconds=seconds)
    return found
