"""Moving a whole database between any two backends: ``db.copy_to(other)``.

Every table is read in batches (by id, so a SQL source never holds more than one batch of
documents in memory) and written to the target in one commit per batch, keeping each
document's id. Index definitions (and what else is stored with a table: its schema and
TTL rules) are created on the target first, so a unique index
rejects a duplicate as it would have on the source. The target's next id continues from
the source's, so an id removed on the source is not handed out again on the target.

It works on the :class:`~microdb.backend.Backend` interface only, below the public API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from microdb.backend import Backend
from microdb.errors import QueryError
from microdb.serialization import check_document

__all__ = ["copy_database"]

Progress = Callable[[str, int, int], None]


def copy_database(
    source: Backend,
    target: Backend,
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
    copied: dict[str, int] = {}
    with source.read():
        names = sorted(source.tables())
    for name in names:
        with source.read():
            total = source.length(name)
            indexes = source.indexes(name)
            options = source.table_options(name)
            next_id = source.next_id(name)
        with target.write():
            # An empty table exists on the target too.
            target.insert(name, [])
            for spec in indexes:
                if "paths" in spec:
                    paths = tuple(tuple(p) for p in spec["paths"])
                    target.create_compound_index(name, paths, bool(spec.get("unique")))
                else:
                    target.create_index(name, tuple(spec["path"]), bool(spec.get("unique")))
            if options:
                # The schema and TTL rules go along (documents are copied as stored).
                target.set_table_options(name, dict(options))
        done = 0
        for batch in source.iter_batches(name, batch_size):
            if not batch:
                continue
            # Checked copies: a memory source hands out its own objects.
            rows: list[tuple[int | None, dict[str, Any]]] = [(i, check_document(doc)) for i, doc in batch]
            with target.write():
                target.insert(name, rows)
            done += len(batch)
            if progress is not None:
                progress(name, done, total)
        target.reserve_ids(name, next_id)
        if done == 0 and progress is not None:
            progress(name, 0, total)
        copied[name] = done
    return copied
