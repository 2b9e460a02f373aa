"""What the page reads and writes, in plain Python over the public API (no web framework here).

Pages of a table are found by id (keyset paging): the next page is the documents whose ids
follow the last one shown, fetched by id in growing windows with ``get(doc_ids=...)``. A
page of a 1,000,000-document SQLite table costs a few indexed lookups, never a scan, and no
read ever holds more than one window of documents.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from microdb import Document, MicroDB, QueryError, Result, Table, untrusted_filter
from microdb.web import values

__all__ = [
    "EXPORT_FORMATS",
    "MAX_LIMIT",
    "Page",
    "QueryRun",
    "QuerySpec",
    "export",
    "page",
    "parse_query",
    "run_query",
    "summaries",
]

#: Most documents one page or one query shows.
MAX_LIMIT = 1000
#: Documents a page shows when the request does not say.
DEFAULT_LIMIT = 50
#: Ids asked for in one ``get(doc_ids=...)`` call at most, while looking past gaps.
_MAX_WINDOW = 4096
#: Formats of ``export``, with their media types.
EXPORT_FORMATS = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}


def summaries(db: MicroDB) -> list[dict[str, Any]]:
    """Every table with its document count and indexes, by name."""
    out = []
    for name in sorted(db.tables()):
        table = db.table(name)
        out.append({"name": name, "count": len(table), "indexes": table.indexes()})
    return out


@dataclass
class Page:
    """One page of a table, in id order, with the cursors around it."""

    documents: list[Document]
    #: Show the next page with ``after=next_after`` (``None`` on the last page).
    next_after: int | None
    #: Show the previous page with ``before=prev_before`` (``None`` on the first page).
    prev_before: int | None


def _top(db: MicroDB, table: Table) -> int:
    """One past the largest id the table may hold."""
    return db.backend.next_id(table.name)


def _forward(table: Table, start: int, top: int, want: int) -> list[Document]:
    found: list[Document] = []
    window = max(2 * want, 64)
    while len(found) < want and start < top:
        stop = min(start + window, top)
        found.extend(table.get(doc_ids=range(start, stop)))
        start = stop
        window = min(2 * window, _MAX_WINDOW)
    return found[:want]


def _backward(table: Table, stop: int, want: int) -> list[Document]:
    found: list[Document] = []
    window = max(2 * want, 64)
    while len(found) < want and stop > 1:
        start = max(1, stop - window)
        found[:0] = table.get(doc_ids=range(start, stop))
        stop = start
        window = min(2 * window, _MAX_WINDOW)
    return found[-want:] if want else []


def page(db: MicroDB, table: Table, *, after: int | None = None, before: int | None = None,
         limit: int | str = DEFAULT_LIMIT) -> Page:
    """The documents after id ``after`` (or before id ``before``), ``limit`` of them."""
    want = _check_limit(limit)
    top = _top(db, table)
    if before is not None:
        docs = _backward(table, min(before, top), want + 1)
        has_prev = len(docs) > want
        docs = docs[-want:] if want else []
        has_next = True
    else:
        docs = _forward(table, (after or 0) + 1, top, want + 1)
        has_next = len(docs) > want
        docs = docs[:want]
        has_prev = bool(after)
    return Page(
        documents=docs,
        next_after=docs[-1].doc_id if has_next and docs else None,
        prev_before=docs[0].doc_id if has_prev and docs else None,
    )


def _check_limit(limit: Any) -> int:
    if isinstance(limit, str):
        try:
            limit = int(limit.strip() or DEFAULT_LIMIT)
        except ValueError:
            raise QueryError(f"limit must be a whole number, got {limit!r:.40}") from None
    if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 0 and {MAX_LIMIT}, got {limit!r:.40}")
    return limit


@dataclass
class QuerySpec:
    """A query from the page: a dict filter, sort keys, projected fields and a limit."""

    #: The checked filter (``None``: every document).
    filter: Any = None
    sort: list[tuple[str, int]] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT

    def result(self, table: Table) -> Result:
        """The lazy result of this query on ``table``, without the limit."""
        result = table.query(self.filter)
        if self.sort:
            result = result.sort(*self.sort)
        if self.fields:
            result = result.project(self.fields)
        return result


def _parse_filter(text: Any) -> Any:
    """The query for a filter from the page, checked against the untrusted-filter bounds."""
    if not isinstance(text, dict):
        text = (text or "").strip()
        if not text:
            return None
    return untrusted_filter(text)


def _parse_sort(text: Any) -> list[tuple[str, int]]:
    if isinstance(text, list):
        parts = [str(p) for p in text]
    else:
        parts = [p for p in (text or "").split(",")]
    keys = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if part.startswith("-"):
            keys.append((part[1:].strip(), -1))
        else:
            keys.append((part.lstrip("+").strip(), 1))
    for name, _ in keys:
        if not name:
            raise QueryError("a sort key needs a field name: 'age' or '-age' (descending)")
    return keys


def _parse_fields(text: Any) -> list[str]:
    parts = [str(p) for p in text] if isinstance(text, list) else (text or "").split(",")
    return [p.strip() for p in parts if p.strip()]


def parse_query(filter: Any = None, sort: Any = None, fields: Any = None, limit: Any = DEFAULT_LIMIT) -> QuerySpec:
    """Read a query as the page sends it (text fields or JSON values); ``QueryError`` if bad.

    ``filter`` is a JSON object (MongoDB-style, tagged values allowed), checked by
    ``untrusted_filter`` (size, depth and regular-expression bounds); ``sort`` is ``"age, -name"``; ``fields`` is ``"name, address.city"``.
    """
    return QuerySpec(_parse_filter(filter), _parse_sort(sort), _parse_fields(fields),
                     _check_limit(DEFAULT_LIMIT if limit is None else limit))


@dataclass
class QueryRun:
    """What running a query gave: the documents, how many match, the plan and the time."""

    documents: list[Document]
    count: int
    plan: dict[str, Any]
    ms: float


def run_query(table: Table, spec: QuerySpec) -> QueryRun:
    """Run ``spec`` on ``table``: the first ``limit`` documents, the count, ``explain()`` and the time."""
    result = spec.result(table)
    started = time.perf_counter()
    documents = result.limit(spec.limit).all()
    ms = (time.perf_counter() - started) * 1000
    count = table.query(spec.filter).count()
    plan = result.limit(spec.limit).explain()
    return QueryRun(documents, count, plan, ms)


def _all_documents(db: MicroDB, table: Table) -> Iterator[Document]:
    after = 0
    top = _top(db, table)
    while True:
        batch = _forward(table, after + 1, top, 500)
        if not batch:
            return
        yield from batch
        last = batch[-1].doc_id
        assert last is not None  # stored documents always have an id
        after = last


def _rows(db: MicroDB, table: Table, spec: QuerySpec | None) -> Iterator[Document]:
    if spec is None:
        return _all_documents(db, table)
    result = spec.result(table)
    return iter(result.all())


def export(db: MicroDB, table: Table, fmt: str, spec: QuerySpec | None = None) -> Iterator[str]:
    """The table (or the query's documents, every one of them) as JSON, NDJSON or CSV text.

    JSON is one array of ``{"id": ..., "doc": ...}`` objects and NDJSON one such object a
    line, both in tagged JSON; CSV has an ``id`` column and one column per top-level field.
    """
    if fmt not in EXPORT_FORMATS:
        raise QueryError(f"unknown export format {fmt!r:.20}: use one of {', '.join(EXPORT_FORMATS)}")
    if fmt == "csv":
        return _csv(list(_rows(db, table, spec)))
    return _json_lines(_rows(db, table, spec), array=fmt == "json")


def _json_lines(docs: Iterator[Document], *, array: bool) -> Iterator[str]:
    first = True
    if array:
        yield "["
    doc: Document
    for doc in docs:
        text = json.dumps({"id": doc.doc_id, "doc": values.to_json(dict(doc))}, ensure_ascii=False)
        if array:
            yield text if first else ",\n" + text
        else:
            yield text + "\n"
        first = False
    if array:
        yield "]\n"


def _csv(docs: list[Document]) -> Iterator[str]:
    columns: dict[str, None] = {}
    for doc in docs:
        columns.update(dict.fromkeys(doc))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", *columns])
    yield buffer.getvalue()
    for doc in docs:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([doc.doc_id, *(values.cell(doc[c]) if c in doc else "" for c in columns)])
        yield buffer.getvalue()
