"""What a table call does, as steps: ``AsyncMicroDB``'s calls on PostgreSQL, on the loop.

:class:`~microdb.table.Table` composes the backend's operations (find the targets, check
them against the schema, replace them...), each of which the SQL engine writes once as
steps (:mod:`microdb.sql.steps`). Here the same compositions are steps too, so that the
async driver (:mod:`microdb.sql.pgasync`) runs a whole call on one async connection, in
one block: the SQL, the compiler and the decoding stay the engine's, and what a call
decides without I/O (which document an upsert inserts, the options a TTL index stores)
is the table's own helpers. Python work on many documents is a
:class:`~microdb.sql.steps.Work` step, which the driver sends to a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from microdb import table as _table
from microdb.backend import Plan
from microdb.compile.updates import Change, compile_change
from microdb.document import Document
from microdb.errors import DocumentNotFound, QueryError
from microdb.expiry import SWEEP_BATCH, is_expired, rules_of
from microdb.query.builders import to_node
from microdb.schema import checks as _schema
from microdb.serialization import check_document
from microdb.sql.postgres import PostgresBackend
from microdb.sql.session import Session
from microdb.sql.steps import Steps, Work
from microdb.table import Table

__all__ = [
    "checked", "create_index", "drop_index", "drop_tables", "fetch", "get_many", "indexes", "insert",
    "length", "remove", "set_schema", "sweep", "update", "update_multiple", "upsert", "validate",
]


def checked(b: PostgresBackend, s: Session, name: str, items: Any) -> Steps[None]:
    """The table's stored schema checked against documents about to be written."""
    options = yield from b.table_options_steps(s, name)
    if options:
        yield Work(_schema.check_documents, (name, options, items), len(items))


def insert(b: PostgresBackend, s: Session, name: str, items: list[tuple[int | None, dict[str, Any]]]) -> Steps[list[int]]:
    """``Table.insert_many`` of prepared documents (in a write block)."""
    yield from checked(b, s, name, items)
    return (yield from b.insert_steps(s, name, items))


def sweep(b: PostgresBackend, s: Session, name: str) -> Steps[list[int]]:
    """``Table._sweep``'s block: a batch of expired documents removed (in a write block)."""
    rules = rules_of((yield from b.table_options_steps(s, name)))
    return (yield from b.remove_expired_steps(s, name, rules, SWEEP_BATCH)) if rules else []


def fetch(b: PostgresBackend, s: Session, name: str, doc_id: int) -> Steps[dict[str, Any] | None]:
    """``get(doc_id=...)``: the stored document, ``None`` when absent or expired."""
    doc = yield from b.fetch_steps(s, name, doc_id)
    rules = () if doc is None else rules_of((yield from b.table_options_steps(s, name)))
    return None if doc is None or (rules and is_expired(doc, rules)) else doc


def length(b: PostgresBackend, s: Session, name: str) -> Steps[int]:
    """``len(table)``: the documents not expired."""
    if rules_of((yield from b.table_options_steps(s, name))):
        return (yield from b.count_steps(s, name, Plan()))
    return (yield from b.length_steps(s, name))


def _alive(b: PostgresBackend, s: Session, name: str, rows: list[tuple[int, dict[str, Any]]]) -> Steps[list[tuple[int, dict[str, Any]]]]:
    """``rows`` without the documents that have expired (``Table._alive``)."""
    rules = rules_of((yield from b.table_options_steps(s, name))) if rows else ()
    return [(i, d) for i, d in rows if not is_expired(d, rules)] if rules else rows


def _targets(t: Table, b: PostgresBackend, s: Session, cond: Any, doc_ids: Any) -> Steps[list[int]]:
    """The ids a query or an id list selects (``Table._target_ids``)."""
    if doc_ids is not None:
        ids = _table._check_ids(doc_ids)
        found = [i for i, _ in (yield from _alive(b, s, t.name, (yield from b.fetch_many_steps(s, t.name, ids))))]
        if len(found) != len(set(ids)):
            absent = sorted(set(ids) - set(found))
            raise DocumentNotFound(f"table {t.name!r} has no document with id {absent[0]}")
        return found
    if cond is None:
        raise QueryError("give a query or doc_ids (use truncate() to remove every document)")
    return (yield from b.ids_steps(s, t.name, t._live(Plan(node=to_node(cond)))))


def _replace(t: Table, b: PostgresBackend, s: Session, change: Change, ids: Sequence[int]) -> Steps[list[int]]:
    """``change`` applied to the documents with ``ids`` (``Table._replace``); their ids."""
    rows = yield from b.fetch_many_steps(s, t.name, ids)
    changes = yield Work(change.documents, (rows, b.shares_documents), len(rows))
    yield from checked(b, s, t.name, changes.items())
    yield from b.replace_steps(s, t.name, changes)
    return list(changes)


def update(t: Table, b: PostgresBackend, s: Session, change: Change, cond: Any, doc_ids: Any) -> Steps[list[int]]:
    """``Table.update`` (in a write block)."""
    ids = yield from _targets(t, b, s, cond, doc_ids)
    return (yield from _replace(t, b, s, change, ids))


def update_multiple(t: Table, b: PostgresBackend, s: Session, changes: list[tuple[Change, Any]]) -> Steps[list[int]]:
    """``Table.update_multiple`` (in a write block)."""
    changed: list[int] = []
    for change, cond in changes:
        ids = yield from _replace(t, b, s, change, (yield from _targets(t, b, s, cond, None)))
        changed.extend(i for i in ids if i not in changed)
    return changed


def upsert(t: Table, b: PostgresBackend, s: Session, document: Any, change: Change, cond: Any) -> Steps[list[int]]:
    """``Table.upsert`` (in a write block)."""
    doc_id = document.doc_id if isinstance(document, Document) else None
    if doc_id is not None:
        if (yield from b.fetch_steps(s, t.name, _table._check_id(doc_id))) is not None:
            return (yield from _replace(t, b, s, compile_change(dict(document)), [doc_id]))
        item = (doc_id, check_document(document))
        yield from checked(b, s, t.name, [item])
        return (yield from b.insert_steps(s, t.name, [item]))
    ids = yield from _targets(t, b, s, cond, None)
    if ids:
        return (yield from _replace(t, b, s, change, ids))
    new = _table._upsert_new(document, cond)
    yield from checked(b, s, t.name, [(None, new)])
    return (yield from b.insert_steps(s, t.name, [(None, new)]))


def remove(t: Table, b: PostgresBackend, s: Session, cond: Any, doc_ids: Any) -> Steps[list[int]]:
    """``Table.remove`` (in a write block)."""
    ids = yield from _targets(t, b, s, cond, doc_ids)
    yield from b.delete_steps(s, t.name, ids)
    return ids


def get_many(t: Table, b: PostgresBackend, s: Session, ids: list[int]) -> Steps[list[tuple[int, dict[str, Any]]]]:
    """The stored ``(id, document)`` rows of ``get(doc_ids=...)``, expired ones left out."""
    return (yield from _alive(b, s, t.name, (yield from b.fetch_many_steps(s, t.name, ids))))


def create_index(
    t: Table, b: PostgresBackend, s: Session, path: Any, paths: tuple[Any, ...], unique: bool, seconds: float | None,
) -> Steps[None]:
    """``Table.create_index`` (in a write block)."""
    if paths:
        yield from b.create_compound_index_steps(s, t.name, paths, unique)
        return
    yield from b.create_index_steps(s, t.name, path, unique)
    if seconds is not None:
        options = _table._with_ttl((yield from b.table_options_steps(s, t.name)), path, seconds)
        yield from b.set_table_options_steps(s, t.name, options)


def drop_index(t: Table, b: PostgresBackend, s: Session, path: Any, paths: tuple[Any, ...]) -> Steps[bool]:
    """``Table.drop_index`` (in a write block)."""
    if paths:
        return (yield from b.drop_compound_index_steps(s, t.name, paths))
    options = _table._without_ttl((yield from b.table_options_steps(s, t.name)), path)
    if options is not None:
        yield from b.set_table_options_steps(s, t.name, options)
    return (yield from b.drop_index_steps(s, t.name, path))


def indexes(t: Table, b: PostgresBackend, s: Session) -> Steps[list[dict[str, Any]]]:
    """``Table.indexes``."""
    found = yield from b.indexes_steps(s, t.name)
    return _table._with_expiry(found, (yield from b.table_options_steps(s, t.name)))


def set_schema(t: Table, b: PostgresBackend, s: Session, schema: Any, validation: str) -> Steps[type | None]:
    """``Table.set_schema`` (in a write block); the schema's model class."""
    current = yield from b.table_options_steps(s, t.name)
    options, model = _table._schema_options(current, schema, validation)
    if options != current:
        yield from b.set_table_options_steps(s, t.name, options)
    return model


def validate(b: PostgresBackend, s: Session, name: str) -> Steps[list[dict[str, Any]]]:
    """``Table.validate``: the stored documents that break the stored schema."""
    options = yield from b.table_options_steps(s, name)
    rows = yield from b.run_steps(s, name, Plan())
    return (yield Work(_schema.violations, (options, rows), len(rows)))  # type: ignore[no-any-return]


def drop_tables(b: PostgresBackend, s: Session) -> Steps[None]:
    """``MicroDB.drop_tables`` (in a write block)."""
    for name in (yield from b.tables_steps(s)):
        yield from b.drop_table_steps(s, name)
