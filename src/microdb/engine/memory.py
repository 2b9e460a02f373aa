"""The in-memory engine: every table in memory, indexes, the planner, and atomic commits.

It serves the memory, mapping and JSON-file storages. Writes are applied to memory at once
(so reads inside a transaction see them), recorded in an undo log, and handed to the
:class:`~microdb.storage.base.Storage` as one batch when the outermost write block ends. If
the store fails, or the block raises, memory is rolled back from the undo log and nothing
was stored.

Concurrency: one re-entrant lock per database object serialises threads; the store's
cross-process lock (the JSON file's OS lock) is held for the whole of a write block, and
:meth:`Storage.sync` is called first, so a write block always starts from the latest
committed state of every process. Reads call ``sync`` too (a single ``stat`` for the file).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from microdb import process
from microdb.backend import Backend, Plan, Rows, SortKey, new_ids
from microdb.compile.python import compile_query, resolve
from microdb.engine.blocks import ReadBlock, WriteBlock
from microdb.engine.indexset import IndexSet, Key, spec_key
from microdb.engine.planner import choose, ordered_compound, residual
from microdb.errors import DatabaseClosedError, DuplicateKeyError, StorageError
from microdb.handover import joined, pacer
from microdb.query.ast import Node, Path
from microdb.query.values import sort_key
from microdb.storage.base import Op, State, Storage, TableState, new_meta, patched

__all__ = ["MemoryBackend"]


class _Table:
    """One table in memory: documents by id (ascending), metadata and live indexes."""

    __slots__ = ("name", "docs", "meta", "indexes")

    def __init__(self, name: str, state: TableState):
        self.name = name
        self.docs: dict[int, dict[str, Any]] = state.docs
        self.meta: dict[str, Any] = state.meta
        self.indexes = IndexSet(name, self.meta.get("indexes", []), self.docs)

    def state(self) -> TableState:
        return TableState(self.docs, self.meta)


class MemoryBackend(Backend):
    """A :class:`~microdb.backend.Backend` holding the data in memory over a ``Storage``."""

    shares_documents = True

    def __init__(self, store: Storage, *, name: str = "memory"):
        self.name = name
        self.store = store
        self._lock = threading.RLock()
        self._depth = 0
        self._closed = False
        #: commits whose durability was waited for after the locks (group commit)
        self.commits = 0
        self._ops: list[Op] = []
        self._undo: list[tuple[Any, ...]] = []
        self._tables: dict[str, _Table] = {}
        self._reader = ReadBlock(self)
        self._writer = WriteBlock(self)
        # Stores only this object writes (memory, a mapping) never have news: skip the call.
        self._shared_store = type(store).sync is not Storage.sync
        self._install(store.load())
        process.at_exit(self.compact)  # the JSON file then folds its journal in (nothing else does)

    # -- state --------------------------------------------------------------------------
    def _install(self, state: State) -> None:
        sorted_state = {}
        for name, ts in state.items():
            # Ids are handed out in increasing order, so scans are in id order when the
            # dict is; a loaded file may list them in any order.
            if any(a > b for a, b in zip(ts.docs, list(ts.docs)[1:])):
                ts = TableState(dict(sorted(ts.docs.items())), ts.meta)
            sorted_state[name] = ts
        self._tables = {name: _Table(name, ts) for name, ts in sorted_state.items()}

    def state(self) -> State:
        """The whole database as a :data:`~microdb.storage.base.State` (shared, not copied)."""
        return {name: t.state() for name, t in self._tables.items()}

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError("the database is closed")

    def _sync(self) -> None:
        changes = self.store.sync()
        if changes is None:
            return
        if isinstance(changes, dict):
            self._install(changes)
            return
        for batch in changes:
            for op in batch:
                self._apply(op, record=False)

    # -- applying operations (memory and indexes, with undo) ------------------------------
    def _table(self, name: str, create: bool) -> _Table | None:
        table = self._tables.get(name)
        if table is None and create:
            table = self._tables[name] = _Table(name, TableState({}, new_meta()))
            self._undo.append(("create", name))
            self._ops.append(("meta", name, dict(table.meta)))
        return table

    def _apply(self, op: Op, record: bool = True) -> None:
        kind, name = op[0], op[1]
        table = self._tables.get(name)
        if kind == "patch":
            # Another process's update, read back from its journal: the whole new document.
            old_doc = None if table is None else table.docs.get(op[2])
            if old_doc is None:
                return
            op = ("put", name, op[2], patched(old_doc, op[3], op[4]))
            kind = "put"
        if kind == "put":
            if table is None:
                table = self._tables[name] = _Table(name, TableState({}, new_meta()))
                if record:
                    self._undo.append(("create", name))
            doc_id, doc = op[2], op[3]
            old = table.docs.get(doc_id)
            for index in table.indexes.every:
                if old is not None:
                    index.remove(doc_id, old)
                index.add(doc_id, doc)
            table.docs[doc_id] = doc
            old_next = table.meta["next_id"]
            if doc_id >= old_next:
                table.meta["next_id"] = doc_id + 1
            if record:
                self._undo.append(("put", name, doc_id, old, old_next))
        elif kind == "delete":
            if table is None:
                return
            doc_id = op[2]
            old = table.docs.pop(doc_id, None)
            if old is None:
                return
            for index in table.indexes.every:
                index.remove(doc_id, old)
            if record:
                self._undo.append(("put", name, doc_id, old, table.meta["next_id"]))
        elif kind == "meta":
            if table is None:
                table = self._tables[name] = _Table(name, TableState({}, dict(op[2])))
                if record:
                    self._undo.append(("create", name))
                return
            if record:
                self._undo.append(("meta", name, table.meta, table.indexes.copy()))
            table.meta = dict(op[2])
            table.indexes.sync(table.meta["indexes"], table.docs)
        elif kind == "drop":
            if table is None:
                return
            del self._tables[name]
            if record:
                self._undo.append(("drop", name, table))
        else:
            raise StorageError(f"unknown operation {kind!r}")
        if record:
            self._ops.append(op)

    def _rollback_to(self, mark: int, ops_mark: int) -> None:
        unordered: set[str] = set()
        while len(self._undo) > mark:
            entry = self._undo.pop()
            kind, name = entry[0], entry[1]
            if kind == "create":
                self._tables.pop(name, None)
            elif kind == "bulk":
                table = self._tables[name]
                for doc_id in entry[2]:
                    table.docs.pop(doc_id, None)
                table.meta["next_id"] = entry[3]
            elif kind == "drop":
                self._tables[name] = entry[2]
            elif kind == "meta":
                table = self._tables[name]
                table.meta = entry[2]
                table.indexes = entry[3]
            elif kind == "replace":
                table = self._tables[name]
                for doc_id, old in reversed(entry[2]):
                    now = table.docs[doc_id]
                    for index in entry[3]:
                        index.remove(doc_id, now)
                        index.add(doc_id, old)
                    table.docs[doc_id] = old
            elif kind == "put":
                table = self._tables[name]
                doc_id, old, old_next = entry[2], entry[3], entry[4]
                current = table.docs.pop(doc_id, None)
                for index in table.indexes.every:
                    if current is not None:
                        index.remove(doc_id, current)
                    if old is not None:
                        index.add(doc_id, old)
                if old is not None:
                    table.docs[doc_id] = old
                    unordered.add(name)
                table.meta["next_id"] = old_next
        for name in unordered:
            # Re-added documents went to the end; scans rely on id order.
            restored = self._tables.get(name)
            if restored is not None:
                restored.docs = dict(sorted(restored.docs.items()))
        del self._ops[ops_mark:]

    # -- atomicity ----------------------------------------------------------------------
    def write(self) -> contextlib.AbstractContextManager[None]:
        return self._writer

    def read(self) -> contextlib.AbstractContextManager[None]:
        return self._reader

    @property
    def in_transaction(self) -> bool:
        """True inside a write block of the calling thread."""
        return self._depth > 0

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.store.close(self.state())

    def compact(self) -> None:
        with self._lock:
            self._check_open()
            with self.store.lock():
                self._sync()
                self.store.compact(self.state())

    # -- tables -------------------------------------------------------------------------
    def tables(self) -> list[str]:
        return list(self._tables)

    def drop_table(self, table: str) -> bool:
        if table not in self._tables:
            return False
        self._apply(("drop", table))
        return True

    # -- documents ----------------------------------------------------------------------
    def _check_unique(self, table: _Table, docs: Sequence[tuple[int, dict[str, Any]]]) -> None:
        table.indexes.check(docs)

    def insert(self, table: str, docs: Sequence[tuple[int | None, dict[str, Any]]]) -> list[int]:
        t = self._table(table, create=True)
        assert t is not None
        last_id = next(reversed(t.docs), 0)
        if len(docs) == 1 and docs[0][0] is None and t.meta["next_id"] > last_id:
            # One document taking the next id (every single insert): nothing to assign,
            # no duplicate id possible, and the dict stays in id order.
            # Each index checks and files the document in one step (a unique index's check
            # and its filing looked the value up twice); a duplicate changes nothing.
            doc_id, doc = t.meta["next_id"], docs[0][1]
            t.indexes.add_new(doc_id, doc)
            t.docs[doc_id] = doc
            t.meta["next_id"] = doc_id + 1
            self._undo.append(("put", table, doc_id, None, doc_id))
            self._ops.append(("put", table, doc_id, doc, True))
            return [doc_id]
        # Ids beside the documents, not an (id, document) pair each: at 100,000 documents
        # the pairs were 7 MB of the bulk load's peak memory (issue 12).
        ids = new_ids(table, docs, t.meta["next_id"])
        for doc_id, _ in docs:
            if doc_id is not None and doc_id in t.docs:
                raise DuplicateKeyError(f"document {doc_id} already exists in table {table!r}")
        if t.indexes or len(ids) < 2:
            assigned = list(zip(ids, [doc for _, doc in docs]))
            self._check_unique(t, assigned)
            for doc_id, doc in assigned:
                self._apply(("put", table, doc_id, doc, True))
        else:
            # The fast path for bulk inserts: no index to keep, one undo entry for the batch.
            docs_map, ops = t.docs, self._ops
            self._undo.append(("bulk", table, list(ids), t.meta["next_id"]))
            for doc_id, (_, doc) in zip(ids, docs):
                docs_map[doc_id] = doc
                ops.append(("put", table, doc_id, doc, True))
            t.meta["next_id"] = max(t.meta["next_id"], max(ids) + 1)
        if ids and (ids[0] < last_id or any(a > b for a, b in zip(ids, ids[1:]))):
            # Explicit ids out of order: keep the dict in id order, which scans rely on.
            t.docs = dict(sorted(t.docs.items()))
        return ids

    def replace(
        self, table: str, docs: dict[int, dict[str, Any]], touched: Sequence[tuple[str, ...]] | None = None
    ) -> None:
        t = self._tables.get(table)
        if t is None:
            return
        stored = t.docs
        items = [(i, d) for i, d in docs.items() if i in stored]
        if not items:
            return
        # Only the indexes on paths the change touched: on any other path each document
        # keeps its value, so those indexes (and their unique keys) stay right as they are.
        indexes = t.indexes.affected(touched)
        for index in indexes:
            if index.unique:
                pending: dict[Any, int] = {}
                for doc_id, doc in items:
                    index.check(doc_id, doc, pending)
        # _apply's put, for a batch of existing documents: one undo entry for them all.
        olds = [(doc_id, stored[doc_id]) for doc_id, _ in items]
        for (doc_id, old), (_, doc) in zip(olds, items) if indexes else ():
            for index in indexes:
                index.remove(doc_id, old)
                index.add(doc_id, doc)
        stored.update(items)  # existing keys: the dict stays in id order
        self._undo.append(("replace", table, olds, indexes))
        # The top-level fields the change may have touched: a store may record only those.
        names = None if touched is None else tuple(dict.fromkeys(steps[0] for steps in touched))
        self._ops.extend([("put", table, doc_id, doc, False, names) for doc_id, doc in items])

    def delete(self, table: str, doc_ids: Sequence[int]) -> None:
        t = self._tables.get(table)
        if t is None:
            return
        for doc_id in doc_ids:
            if doc_id in t.docs:
                self._apply(("delete", table, doc_id))

    def truncate(self, table: str) -> None:
        t = self._tables.get(table)
        if t is None:
            return
        self.delete(table, list(t.docs))
        # Keep the next id in the metadata: the ids are gone from the documents.
        self._apply(("meta", table, {**t.meta, "indexes": list(t.meta["indexes"])}))

    def fetch(self, table: str, doc_id: int) -> dict[str, Any] | None:
        t = self._tables.get(table)
        return None if t is None else t.docs.get(doc_id)

    def fetch_many(self, table: str, doc_ids: Sequence[int]) -> list[tuple[int, dict[str, Any]]]:
        t = self._tables.get(table)
        if t is None:
            return []
        docs = t.docs
        return [(i, docs[i]) for i in doc_ids if i in docs]

    def length(self, table: str) -> int:
        t = self._tables.get(table)
        return 0 if t is None else len(t.docs)

    def next_id(self, table: str) -> int:
        t = self._tables.get(table)
        return 1 if t is None else int(t.meta["next_id"])

    def reserve_ids(self, table: str, next_id: int) -> None:
        with self.write():
            t = self._table(table, create=True)
            assert t is not None
            if t.meta["next_id"] < next_id:
                self._apply(("meta", table, {**t.meta, "next_id": next_id, "indexes": list(t.meta["indexes"])}))

    # -- queries ------------------------------------------------------------------------
    def _candidates(self, t: _Table, plan: Plan) -> tuple[list[int] | None, Node | None, str]:
        """Candidate ids in id order (``None``: every document), the query left to check
        on them (``None``: nothing), and how they were found."""
        node = plan.node
        if plan.doc_ids is not None:
            return [i for i in plan.doc_ids if i in t.docs], node, "by id"
        access = choose(node, t.indexes.single, t.indexes.compound)
        if access is None:
            return None, node, "full scan"
        ids, pace = access.fetch(), pacer()
        ordered = sorted(ids) if pace is None else pace.sorted(list(ids), _same)  # paced: for the loop
        return ordered, residual(node, access.exact), access.description

    def _select(self, t: _Table, plan: Plan) -> tuple[list[int], int, str]:
        """Matching ids in id order, how many documents were examined, and the access path."""
        ids, residual, how = self._candidates(t, plan)
        docs = t.docs
        if residual is None:
            chosen = list(docs) if ids is None else ids
            return chosen, 0 if ids is None and plan.node is None else len(chosen), how
        compiled = compile_query(residual)
        # joined: in slices for a read for the event loop (see microdb.handover).
        if ids is None:
            return joined(compiled.select, docs.items(), len(docs)), len(docs), how
        return joined(lambda part: compiled.select([(i, docs[i]) for i in part]), ids, len(ids)), len(ids), how

    def _ordered_scan(self, t: _Table, plan: Plan) -> tuple[Iterator[int] | None, bool]:
        """Ids in sort order straight from an index, when the sort keys are indexed paths;
        and whether that scan reads only the query's part of the index."""
        if not plan.sort or plan.doc_ids is not None or any(k.path is None for k in plan.sort):
            return None, False
        need = None if plan.limit is None else plan.skip + plan.limit
        sort = [(k.path, k.reverse) for k in plan.sort if k.path is not None]
        scan = ordered_compound(plan.node, sort, t.indexes.compound, need)
        if scan is not None:
            return scan, True
        index = t.indexes.single.get(sort[0][0])
        if len(sort) != 1 or index is None or index.multikey:
            return None, False
        return index.scan(sort[0][1], need), False

    def run(self, table: str, plan: Plan) -> Rows:
        t = self._tables.get(table)
        if t is None or plan.limit == 0:
            return Rows([], [])
        docs = t.docs
        stop = None if plan.limit is None else plan.skip + plan.limit
        scan, narrow = self._ordered_scan(t, plan)
        if scan is not None and (stop is not None or narrow):
            # Read the index in order and stop as soon as enough documents matched.
            pred = compile_query(plan.node).predicate if plan.node is not None else None
            found: list[int] = []
            pace = pacer()
            for doc_id in scan if pace is None else pace.each(scan):  # paced: for the loop
                if pred is None or pred(docs[doc_id]):
                    found.append(doc_id)
                    if stop is not None and len(found) >= stop:
                        break
            ids = found[plan.skip:stop]
        else:
            ids, _, _ = self._select(t, plan)
            if plan.sort:
                ids = _sorted_ids(ids, docs, plan)
            ids = ids[plan.skip:stop]
        # Two lists, not a tuple per row (see Rows): a large read sets off no full collection.
        return Rows(ids, joined(lambda part: [docs[i] for i in part], ids, len(ids)))

    def ids(self, table: str, plan: Plan) -> list[int]:
        t = self._tables.get(table)
        if t is None or plan.limit == 0:
            return []
        if plan.sort or plan.skip or plan.limit is not None:
            return [doc_id for doc_id, _ in self.run(table, plan)]
        # No (id, document) pairs: an indexed query touches no document it does not check.
        return self._select(t, plan)[0]

    def count(self, table: str, plan: Plan) -> int:
        t = self._tables.get(table)
        if t is None:
            return 0
        if plan.skip or plan.limit is not None:
            return sum(1 for _ in self.run(table, plan))
        if plan.node is None and plan.doc_ids is None:
            return len(t.docs)
        ids, residual, _ = self._candidates(t, plan)
        if residual is None:
            return len(t.docs) if ids is None else len(ids)
        compiled = compile_query(residual)
        docs = t.docs
        if ids is None:
            return sum(joined(lambda part: [compiled.count(part)], docs.values(), len(docs)))
        return sum(joined(lambda part: [compiled.count([docs[i] for i in part])], ids, len(ids)))

    def explain(self, table: str, plan: Plan) -> dict[str, Any]:
        t = self._tables.get(table)
        if t is None:
            return {"backend": self.name, "table": table, "access": "empty table", "index": None,
                    "examined": 0, "matched": 0}
        ids, _, how = self._candidates(t, plan)
        matched, examined, _ = self._select(t, plan)
        scan, narrow = self._ordered_scan(t, plan)
        ordered = scan is not None and (plan.limit is not None or narrow)
        index = None if ids is None or how == "by id" else how
        return {
            "backend": self.name,
            "table": table,
            "access": how,
            "index": index,
            "examined": examined,
            "matched": len(matched),
            "ordered_by_index": ordered,
            "query": repr(plan.node) if plan.node is not None else None,
        }

    # -- indexes --------------------------------------------------------------------------
    def create_index(self, table: str, path: Path, unique: bool) -> None:
        self._create_index(table, path, unique)

    def create_compound_index(self, table: str, paths: tuple[Path, ...], unique: bool) -> None:
        self._create_index(table, paths, unique)

    def _create_index(self, table: str, key: Key, unique: bool) -> None:
        t = self._table(table, create=True)
        assert t is not None
        existing = t.indexes.get(key)
        if existing is not None and existing.unique == unique:
            return
        index = t.indexes.new(key, unique)
        specs = [s for s in t.meta["indexes"] if spec_key(s) != key]
        specs.append(index.describe())
        if unique:
            index.build(t.docs.items())  # raises DuplicateKeyError first
        self._apply(("meta", table, {**t.meta, "indexes": specs}))

    def drop_index(self, table: str, path: Path) -> bool:
        return self._drop_index(table, path)

    def drop_compound_index(self, table: str, paths: tuple[Path, ...]) -> bool:
        return self._drop_index(table, paths)

    def _drop_index(self, table: str, key: Key) -> bool:
        t = self._tables.get(table)
        if t is None or t.indexes.get(key) is None:
            return False
        specs = [s for s in t.meta["indexes"] if spec_key(s) != key]
        self._apply(("meta", table, {**t.meta, "indexes": specs}))
        return True

    def indexes(self, table: str) -> list[dict[str, Any]]:
        t = self._tables.get(table)
        return [] if t is None else t.indexes.describe()

    # -- table options ----------------------------------------------------------------------
    def table_options(self, table: str) -> dict[str, Any]:
        t = self._tables.get(table)
        return {} if t is None else t.meta.get("options") or {}

    def set_table_options(self, table: str, options: dict[str, Any]) -> None:
        t = self._table(table, create=True)
        assert t is not None
        meta = {key: value for key, value in t.meta.items() if key != "options"}
        if options:
            meta["options"] = options
        self._apply(("meta", table, meta))

    def __repr__(self) -> str:
        return f"MemoryBackend({self.store!r})"


def _sorted_ids(ids: list[int], docs: dict[int, dict[str, Any]], plan: Plan) -> list[int]:
    # Python's sort is stable: sorting by the last key first gives a multi-key sort in
    # which each key keeps its own direction.
    out = list(ids)
    pace = pacer()
    for key in reversed(plan.sort):
        if pace is None:
            out.sort(key=_key_of(docs, key), reverse=key.reverse)
        else:  # a read for the event loop: in slices (see microdb.handover)
            out = pace.sorted(out, _key_of(docs, key), key.reverse)
    return out


def _key_of(docs: dict[int, dict[str, Any]], key: SortKey) -> Callable[[int], Any]:
    """The sort key of a document's id, for one of a plan's sort keys."""
    if key.func is not None:
        func = key.func
        return lambda i: sort_key(func(docs[i]))
    path = key.path
    assert path is not None
    return lambda i: sort_key(resolve(docs[i], path))


def _same(doc_id: int) -> int:
    return doc_id
