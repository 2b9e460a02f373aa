"""Moving a whole database between any two backends: ``db.copy_to(other)``.

Every table is read in batches (by id, so a SQL source never holds more than one batch of
documents in memory) and written to the target with one ``insert_many`` per batch, keeping
each document's id. Index definitions are created on the target first, so a unique index
rejects a duplicate as it would have on the source. Where both sides can tell, the
target's next id continues from the source's, so an id removed on the source is not handed
out again on the target.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from microdb.backend import Backend, Plan
from microdb.document import Document
from microdb.errors import QueryError

if TYPE_CHECKING:
    from microdb.database import MicroDB

__all__ = ["copy_database"]

Progress = Callable[[str, int, int], None]


def _batches(backend: Backend, table: str, size: int) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    """The table's documents in id order, ``size`` at a time."""
    pages = getattr(backend, "iter_batches", None)
    if pages is not None:
        yield from pages(table, size)
        return
    with backend.read():
        rows = list(backend.run(table, Plan()))
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def copy_database(
    source: MicroDB,
    target: MicroDB,
    *,
    progress: Progress | None = None,
    batch_size: int = 1000,
) -> dict[str, int]:
    """Copy every table, document (with its id) and index of ``source`` into ``target``.

    ``progress(table, done, total)`` is called after each batch. Returns how many documents
    each table got. The target's tables should be empty: a document id that exists there
    already raises ``DuplicateKeyError`` (and that batch is not written).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise QueryError(f"batch_size must be a positive int, got {batch_size!r}")
    if source is target:
        raise QueryError("cannot copy a database into itself")
    src, dst = source.backend, target.backend
    copied: dict[str, int] = {}
    with src.read():
        names = sorted(src.tables())
    for name in names:
        with src.read():
            total = src.length(name)
            indexes = src.indexes(name)
            next_id = _next_id(src, name)
        table = target.table(name)
        with dst.write():
            # An empty table exists on the target too.
            dst.insert(name, [])
            for spec in indexes:
                table.create_index(list(spec["path"]), unique=bool(spec.get("unique")))
        done = 0
        for batch in _batches(src, name, batch_size):
            if not batch:
                continue
            table.insert_many([Document(doc, doc_id=doc_id) for doc_id, doc in batch])
            done += len(batch)
            if progress is not None:
                progress(name, done, total)
        if next_id is not None:
            reserve = getattr(dst, "reserve_ids", None)
            if reserve is not None:
                reserve(name, next_id)
        if done == 0 and progress is not None:
            progress(name, 0, total)
        copied[name] = done
    return copied


def _next_id(backend: Backend, table: str) -> int | None:
    get = getattr(backend, "next_id", None)
    return int(get(table)) if get is not None else None
