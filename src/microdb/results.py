"""The lazy result of ``table.query(...)``: compose, then read once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from microdb.backend import Backend, Plan, Rows, SortKey
from microdb.document import Document
from microdb.errors import QueryError
from microdb.handover import ROWS, pacer
from microdb.query.ast import Path
from microdb.query.fields import parse_field
from microdb.query.values import MISSING, distinct_values
from microdb.schema.models import model_instance
from microdb.serialization import copy_value

__all__ = ["Result", "ResultSource"]


class ResultSource(Protocol):
    """What a result reads through: a :class:`~microdb.table.Table` (kept abstract so that
    this module does not import the table module, which imports it)."""

    _backend: Backend
    _schema_model: type | None

    @property
    def name(self) -> str: ...

    def _read(self) -> AbstractContextManager[None]: ...

    def _document(self, doc: dict[str, Any], doc_id: int, copied: bool = False) -> Document: ...

    def _documents(self, rows: Iterable[tuple[int, dict[str, Any]]]) -> list[Document]: ...

    def _live(self, plan: Plan) -> Plan: ...


_Tree = dict[str, Any]  # step -> True (the whole value) or a sub-tree


def _tree(fields: tuple[Path, ...]) -> _Tree:
    """The projected paths as a tree; a whole field wins over paths inside it."""
    tree: _Tree = {}
    for path in fields:
        node = tree
        for i, step in enumerate(path):
            key = str(step)
            if i == len(path) - 1:
                node[key] = True
            else:
                sub = node.setdefault(key, {})
                if sub is True:
                    break
                node = sub
    return tree


def _keep(value: Any, tree: _Tree) -> Any:
    """``value`` with only the tree's paths (MISSING when nothing of it is kept)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in tree.items():
            if key in value:
                kept = copy_value(value[key]) if sub is True else _keep(value[key], sub)
                if kept is not MISSING:
                    out[key] = kept
        return out
    if isinstance(value, list):
        # As in MongoDB, a path goes through arrays: each sub-document keeps its part,
        # other elements are dropped.
        return [k for k in (_keep(item, tree) for item in value if isinstance(item, (dict, list)))
                if k is not MISSING]
    return MISSING


def _drop(value: Any, tree: _Tree) -> Any:
    """A copy of ``value`` without the tree's paths."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = tree.get(key)
            if sub is True:
                continue
            out[key] = copy_value(item) if sub is None else _drop(item, sub)
        return out
    if isinstance(value, list):
        return [_drop(item, tree) for item in value]
    return copy_value(value)


def _project(doc: dict[str, Any], fields: tuple[Path, ...], exclude: bool) -> dict[str, Any]:
    tree = _tree(fields)
    return _drop(doc, tree) if exclude else _keep(doc, tree)  # type: ignore[no-any-return]


class Result:
    """The documents a query selects, read lazily.

    ``sort``, ``skip``, ``limit`` and ``project`` return a new result with the step added to
    the plan; nothing runs until the result is read (``all()``, ``first()``, iteration,
    ``count()``, ``len()``...). The first full read fixes the documents: reading the same
    result again returns the same documents, as fresh copies.
    """

    __slots__ = ("_table", "_plan", "_rows")

    def __init__(self, table: ResultSource, plan: Plan):
        self._table = table
        self._plan = plan
        self._rows: Sequence[tuple[int, dict[str, Any]]] | None = None

    @property
    def plan(self) -> Plan:
        """The plan this result runs."""
        return self._plan

    def _with(self, **changes: Any) -> Result:
        return Result(self._table, dataclasses.replace(self._plan, **changes))

    # -- composing -------------------------------------------------------------------
    def sort(self, *keys: Any, reverse: bool = False) -> Result:
        """Sort by fields (``'age'``, ``'address.city'``), ``(field, -1)`` pairs, or key functions.

        Several keys sort by the first, then the next; ``reverse`` applies to plain keys,
        a pair's direction (``1`` ascending, ``-1`` descending) to its own key. Values of
        different kinds sort in MicroDB's kind order; documents missing the field first.
        """
        if not keys:
            raise QueryError("sort() needs at least one key")
        if len(keys) == 1 and isinstance(keys[0], list):
            keys = tuple(keys[0])
        parsed: list[SortKey] = []
        for key in keys:
            direction = reverse
            if isinstance(key, tuple) and len(key) == 2 and key[1] in (1, -1) and not isinstance(key[1], bool):
                key, direction = key[0], key[1] == -1
            if callable(key) and not isinstance(key, str) and not hasattr(key, "_path"):
                parsed.append(SortKey(func=key, reverse=direction))
            else:
                parsed.append(SortKey(path=parse_field(key), reverse=direction))
        return self._with(sort=self._plan.sort + tuple(parsed))

    def skip(self, n: int) -> Result:
        """Leave out the first ``n`` documents."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise QueryError(f"skip() needs a non-negative int, got {n!r}")
        return self._with(skip=self._plan.skip + n, limit=None if self._plan.limit is None else max(0, self._plan.limit - n))

    def limit(self, n: int) -> Result:
        """Keep at most ``n`` documents."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise QueryError(f"limit() needs a non-negative int, got {n!r}")
        current = self._plan.limit
        return self._with(limit=n if current is None else min(current, n))

    def project(self, fields: Any, *more: Any, exclude: bool = False) -> Result:
        """Return only these fields (or all but these, with ``exclude=True``).

        Also accepts MongoDB's form: ``{'name': 1, 'address.city': 1}`` or ``{'tags': 0}``
        (``{}`` keeps whole documents). Paths go through arrays of sub-documents, as in
        MongoDB: ``'items.sku'`` keeps the ``sku`` of each element of ``items``.
        """
        if isinstance(fields, dict):
            if not fields and not more:
                return self._with(fields=None, exclude=False)
            flags = set(bool(v) for v in fields.values())
            if len(flags) > 1:
                raise QueryError("a projection either includes or excludes fields, not both")
            exclude = flags == {False}
            names: list[Any] = list(fields)
        elif isinstance(fields, (list, tuple)) and not more and all(isinstance(f, (str, list, tuple)) for f in fields) and not (fields and isinstance(fields[0], int)):
            names = list(fields)
        else:
            names = [fields, *more]
        paths = tuple(parse_field(f) for f in names)
        return self._with(fields=paths, exclude=exclude)

    # -- reading ---------------------------------------------------------------------
    def _run(self) -> Sequence[tuple[int, dict[str, Any]]]:
        if self._rows is None:
            with self._table._read():
                rows = self._table._backend.run(self._table.name, self._table._live(self._plan))
                # Kept as the engine gave them when it can (Rows: no tuple per row).
                self._rows = rows if isinstance(rows, (list, Rows)) else list(rows)
        return self._rows

    def _adopt(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Fix the selection to ``rows``, read by another driver (the async API's own)."""
        if self._rows is None:
            self._rows = rows

    def _doc(self, doc_id: int, doc: dict[str, Any]) -> Document:
        plan = self._plan
        if plan.fields is not None:
            return self._table._document(_project(doc, plan.fields, plan.exclude), doc_id, copied=True)
        return self._table._document(doc, doc_id)

    def all(self) -> list[Document]:
        """Every selected document, as a list of copies."""
        pace = pacer()
        if pace is not None:  # a read for the event loop: copied in slices (microdb.handover)
            out: list[Document] = []
            for batch in self.batches(ROWS):
                out.extend(batch)
                pace.tick()
            return out
        if self._plan.fields is None:
            return self._table._documents(self._run())
        return [self._doc(i, d) for i, d in self._run()]

    def __iter__(self) -> Iterator[Document]:
        return iter(self.all())

    def batches(self, size: int = 1000) -> Iterator[list[Document]]:
        """The selected documents in lists of ``size``, copied one list at a time.

        The selection is made (and fixed) at the first list; copying in small lists keeps
        memory and pauses short (the async API reads large results this way).
        """
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise QueryError(f"batches() needs a positive int, got {size!r}")
        rows = self._run()
        for start in range(0, len(rows), size):
            chunk = rows[start:start + size]
            if self._plan.fields is None:
                yield self._table._documents(chunk)
            else:
                yield [self._doc(i, d) for i, d in chunk]

    def models(self, model: type | None = None) -> list[Any]:
        """The selected documents as instances of ``model`` (a dataclass, ``TypedDict`` or
        pydantic model); by default the class given as the table's ``schema=``."""
        cls = model if model is not None else self._table._schema_model
        if cls is None:
            raise QueryError("models() needs a model class, or a table opened with schema=<a model class>")
        plan = self._plan
        return [model_instance(cls, _project(d, plan.fields, plan.exclude) if plan.fields is not None else copy_value(d))
                for _, d in self._run()]

    def first(self) -> Document | None:
        """The first selected document, or ``None``."""
        if self._rows is None:
            rows = Result(self._table, dataclasses.replace(self._plan, limit=1 if self._plan.limit is None else min(1, self._plan.limit)))._run()
        else:
            rows = self._rows[:1]
        return self._doc(*rows[0]) if rows else None

    def last(self) -> Document | None:
        """The last selected document, or ``None``."""
        rows = self._run()
        return self._doc(*rows[-1]) if rows else None

    def ids(self) -> list[int]:
        """The ids of the selected documents, in order (without copying them)."""
        if self._rows is not None:
            return [i for i, _ in self._rows]
        with self._table._read():
            return self._table._backend.ids(self._table.name, self._table._live(self._plan))

    def count(self) -> int:
        """How many documents are selected (without copying them)."""
        if self._rows is not None:
            return len(self._rows)
        with self._table._read():
            return self._table._backend.count(self._table.name, self._table._live(self._plan))

    def __len__(self) -> int:
        return self.count()

    def __bool__(self) -> bool:
        if self._rows is not None:
            return bool(self._rows)
        return self.first() is not None

    def distinct(self, field: Any) -> list[Any]:
        """The distinct values of ``field`` among the selected documents, in sort order.

        As in MongoDB, an array value contributes each of its elements, and a path through
        an array of sub-documents (``'items.sku'``) reaches into each of them.
        """
        path = parse_field(field)
        if self._rows is not None and self._holds(path):
            return distinct_values((doc for _, doc in self._rows), path)
        with self._table._read():
            return self._table._backend.distinct(self._table.name, self._table._live(self._plan), path)

    def _holds(self, path: Any) -> bool:
        """Whether the rows read hold ``path`` (rows read for an include-projection may
        hold only the projected fields, on SQL)."""
        plan = self._plan
        return plan.fields is None or plan.exclude or path[:1] in (p[:1] for p in plan.fields)

    def explain(self) -> dict[str, Any]:
        """How the query runs: backend, access path (index or full scan), documents examined."""
        with self._table._read():
            return self._table._backend.explain(self._table.name, self._table._live(self._plan))

    def map(self, func: Callable[[Document], Any]) -> list[Any]:
        """``func`` applied to every selected document."""
        return [func(doc) for doc in self.all()]

    def __repr__(self) -> str:
        p = self._plan
        parts = [repr(p.node) if p.node is not None else "all"]
        if p.sort:
            parts.append(f"sort={len(p.sort)} keys")
        if p.skip:
            parts.append(f"skip={p.skip}")
        if p.limit is not None:
            parts.append(f"limit={p.limit}")
        return f"<Result of {self._table.name!r}: {', '.join(parts)}>"
