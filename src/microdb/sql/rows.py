"""Rows of the SQL engine: documents as JSON text, the columns of a read by name, re-sorting ties."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from microdb.backend import Plan
from microdb.compile.python import resolve
from microdb.compile.sql import SQLSort
from microdb.compile.sql.fragments import COMPLEX_RANKS
from microdb.query.values import KIND_RANK, sort_key
from microdb.serialization import decode, dumps, encode, loads


def encode_doc(doc: dict[str, Any]) -> str:
    """The stored JSON text of a checked document."""
    return dumps(encode(doc))


def decode_doc(text: str | bytes) -> dict[str, Any]:
    """A document from its stored JSON text."""
    return decode(loads(text))  # type: ignore[no-any-return]


#: Numbers from this size on may be ordered by SQL apart from Python's exact int/float
#: order (PostgreSQL reads a stored float as the decimal it prints): their ties re-sort.
_INEXACT = 2**53


def _python_orders(row: Sequence[Any], at: int) -> bool:
    """Whether the sort key whose rank is ``row[at]`` may need Python's order.

    Complex kinds do; so does a number of 2**53 or more, whose first sort column is the
    nearest float (see ``PostgresDialect.sort_scalars``).
    """
    rank = int(row[at])
    if rank in COMPLEX_RANKS:
        return True
    value = row[at + 1] if rank == KIND_RANK["number"] and at + 1 < len(row) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    if isinstance(value, int):
        return abs(value) >= _INEXACT
    return abs(float(value)) >= _INEXACT  # a Decimal past float's range is inf: large too


class RowLayout:
    """Where each part of a row read by :meth:`~microdb.sql.reads.SQLReads._select_sql` sits.

    A row is ``id, body, [sure], [sort key columns...], [fields...]``:

    - ``body`` is the document's JSON text (NULL in a narrow read of a row SQL decided);
    - ``sure`` is there when the filter is not exact: 1 when SQL alone decided the row;
    - each sort key has its columns, its kind rank first (:class:`SQLSort`);
    - ``fields`` are the JSON texts of the top-level fields a narrow read names.
    """

    __slots__ = ("fields", "names", "ranks", "spans", "sure")

    #: The columns every row starts with.
    ID = 0
    BODY = 1

    def __init__(self, exact: bool, order: SQLSort | None = None, names: tuple[str, ...] | None = None):
        at = self.BODY + 1
        #: The column of the sure flag (``None``: the filter is exact, every row is sure).
        self.sure: int | None = None if exact else at
        at += 0 if exact else 1
        spans: list[tuple[int, int]] = []
        for key in order.columns if order is not None else ():
            spans.append((at, at + len(key)))
            at += len(key)
        #: ``(first, end)`` columns of each sort key, and the rank column of each.
        self.spans = tuple(spans)
        self.ranks = tuple(first for first, _ in spans)
        #: The first column of the narrow fields, and their names (``None``: whole documents).
        self.fields = at
        self.names = names

    def is_sure(self, row: Sequence[Any]) -> bool:
        """Whether SQL alone decided ``row`` (Python need not check it)."""
        return self.sure is None or bool(row[self.sure])

    def has_complex(self, row: Sequence[Any]) -> bool:
        """Whether a sort key of ``row`` may need Python's order (see :meth:`group`)."""
        return any(_python_orders(row, at) for at in self.ranks)

    def group(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """The SQL sort key of a row up to its first key that may need Python's order.

        SQL orders complex values (objects, arrays, rich types) only by kind, so every row
        that agrees up to such a key may still move in Python's order: they form one group.
        A large number groups with every number near it (the same nearest float).
        """
        out: list[Any] = []
        for first, end in self.spans:
            if _python_orders(row, first):
                out.extend(row[first:first + 2] if int(row[first]) == KIND_RANK["number"] else row[first:end])
                break
            out.extend(row[first:end])
        return tuple(out)

    def part(self, row: Sequence[Any]) -> dict[str, Any]:
        """The part of a document a narrow read names, from the row's field columns."""
        assert self.names is not None
        texts = row[self.fields:self.fields + len(self.names)]
        return {key: decode(loads(text)) for key, text in zip(self.names, texts) if text is not None}


def boundary_tied(rows: Sequence[tuple[Any, ...]], layout: RowLayout, first: bool, last: bool) -> bool:
    """Whether a page cut by LIMIT/OFFSET may split rows that Python would reorder."""
    if not rows:
        return first
    checks = ([rows[0]] if first else []) + ([rows[-1]] if last else [])
    return any(layout.has_complex(row) for row in checks)


def tie_sort(
    out: list[tuple[int, dict[str, Any]]], rows: Sequence[tuple[Any, ...]], order: SQLSort, layout: RowLayout
) -> list[tuple[int, dict[str, Any]]]:
    """Re-sort, in Python, runs of rows that SQL's sort key could not tell apart."""
    keys = {int(r[layout.ID]): layout.group(r) for r in rows}
    result: list[tuple[int, dict[str, Any]]] = []
    run: list[tuple[int, dict[str, Any]]] = []
    current: tuple[Any, ...] | None = None
    for item in out:
        k = keys[item[0]]
        if k != current and run:
            result.extend(fine_sort(run, order))
            run = []
        current = k
        run.append(item)
    result.extend(fine_sort(run, order))
    return result


def fine_sort(run: list[tuple[int, dict[str, Any]]], order: SQLSort) -> list[tuple[int, dict[str, Any]]]:
    if len(run) < 2:
        return run
    out = list(run)
    for path, reverse in reversed(list(zip(order.paths, order.reverse))):
        out.sort(key=lambda item: sort_key(resolve(item[1], path)), reverse=reverse)
    return out


def python_sort(rows: list[tuple[int, dict[str, Any]]], plan: Plan) -> list[tuple[int, dict[str, Any]]]:
    out = list(rows)
    # Stable sorts from the last key to the first: each key keeps its own direction.
    for key in reversed(plan.sort):
        if key.func is not None:
            func = key.func
            out.sort(key=lambda item: sort_key(func(item[1])), reverse=key.reverse)
        else:
            path = key.path
            assert path is not None
            out.sort(key=lambda item: sort_key(resolve(item[1], path)), reverse=key.reverse)
    return out
