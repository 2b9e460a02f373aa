"""Rows of the SQL engine: documents as stored JSON text, and re-sorting rows SQL left tied."""

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

#: How many ids go into one ``IN (...)`` list.
CHUNK = 500


def encode_doc(doc: dict[str, Any]) -> str:
    """The stored JSON text of a checked document."""
    return dumps(encode(doc))


def decode_doc(text: str | bytes) -> dict[str, Any]:
    """A document from its stored JSON text."""
    return decode(loads(text))  # type: ignore[no-any-return]


def decode_part(row: Sequence[Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The part of a document made of ``keys``, read from the JSON texts ending ``row``."""
    start = len(row) - len(keys)
    return {key: decode(loads(text)) for key, text in zip(keys, row[start:]) if text is not None}



#: Numbers from this size on may be ordered by SQL apart from Python's exact int/float
#: order (PostgreSQL reads a stored float as the decimal it prints): their ties re-sort.
_INEXACT = 2**53


def python_orders(row: Sequence[Any], at: int) -> bool:
    """Whether the sort key starting at ``row[at]`` (its rank) may need Python's order."""
    rank = int(row[at])
    if rank in COMPLEX_RANKS:
        return True
    value = row[at + 1] if rank == KIND_RANK["number"] and at + 1 < len(row) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    if isinstance(value, int):
        return abs(value) >= _INEXACT
    return abs(float(value)) >= _INEXACT  # a Decimal past float's range is inf: large too


def boundary_tied(rows: Sequence[tuple[Any, ...]], order: SQLSort, base: int, first: bool, last: bool) -> bool:
    """Whether a page cut by LIMIT/OFFSET may split rows that Python would reorder."""
    if not rows:
        return first
    checks = ([rows[0]] if first else []) + ([rows[-1]] if last else [])
    for row in checks:
        at = base
        for key in order.columns:
            if python_orders(row, at):
                return True
            at += len(key)
    return False


def sort_group(row: Sequence[Any], base: int, order: SQLSort) -> tuple[Any, ...]:
    """The SQL sort key of a row up to its first key of a complex kind.

    SQL orders complex values (objects, arrays, rich types) only by kind, so every row that
    agrees up to such a key may still move in Python's order: they form one group.
    """
    out: list[Any] = []
    at = base
    for key in order.columns:
        if python_orders(row, at):
            # A large number groups with every number near it (same nearest float).
            width = 2 if int(row[at]) == KIND_RANK["number"] else len(key)
            out.extend(row[at:at + width])
            break
        out.extend(row[at:at + len(key)])
        at += len(key)
    return tuple(out)


def tie_sort(
    out: list[tuple[int, dict[str, Any]]], rows: Sequence[tuple[Any, ...]], order: SQLSort, base: int
) -> list[tuple[int, dict[str, Any]]]:
    """Re-sort, in Python, runs of rows that SQL's sort key could not tell apart."""
    keys = {int(r[0]): sort_group(r, base, order) for r in rows}
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
