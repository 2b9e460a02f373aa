"""``$group`` in SQL: the part of an aggregation pipeline the SQL engines run as ``GROUP BY``.

The table hands a backend the pipeline's leading ``$match``/``$sort``/``$skip``/``$limit`` as
one plan; when that plan is only a filter, and the next stage is a
``$group`` whose ``_id`` is a constant or one field path and whose accumulators are
``$count``, ``$sum``, ``$avg``, ``$min`` or ``$max`` of a field (or ``$sum`` of a number),
the group runs here (a filter SQL cannot decide for some rows counts as a guard, below)::

    WITH r AS MATERIALIZED (SELECT id, <key>, <kinds and values> FROM mdb_N WHERE <filter>)
    SELECT key, COUNT(*), SUM(...), AVG(...), ..., <guard> FROM r GROUP BY key ORDER BY MIN(id)

Each JSON value is extracted once per row (the ``MATERIALIZED`` step), groups come out in
the order their first document has (as the Python ``$group`` does), and a *guard* counts
the rows where SQL's reading would differ from MongoDB's rules: a key that is an object,
an array or a boolean, a ``$min``/``$max`` over something other than numbers, a number
stored as a tagged ``Decimal``, a path through an array. If the guard finds any, the
group runs in Python instead, so results never depend on where the group ran.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from microdb.aggregate.pipeline import Field, Literal, Stage
from microdb.backend import Plan
from microdb.query import ast
from microdb.sql.registry import SQLRegistry
from microdb.sql.schema import TableInfo
from microdb.sql.session import Session

__all__ = ["SQLAggregate"]

_PUSHED = ("$count", "$sum", "$avg", "$min", "$max")


class _Dialect:
    """How one engine reads a JSON value at a path: data, not branches."""

    def __init__(self, value: str, kind: str, path: Any, numbers: tuple[str, ...], bad_keys: tuple[str, ...],
                 array: str, obj: str, null_key: str):
        self.value, self.kind, self.path = value, kind, path
        self.numbers, self.bad_keys, self.array, self.obj, self.null_key = numbers, bad_keys, array, obj, null_key


def _sqlite_path(path: ast.Path) -> str:
    return "$" + "".join(f'."{step}"' for step in path)


_DIALECTS = {
    "sqlite": _Dialect("json_extract(doc, ?)", "json_type(doc, ?)", _sqlite_path, ("'integer'", "'real'"),
                       ("'object'", "'array'", "'true'", "'false'"), "'array'", "'object'", "{v}"),
    "postgresql": _Dialect("(doc #> %s::text[])", "jsonb_typeof(doc #> %s::text[])", lambda p: [str(s) for s in p],
                         ("'number'",), ("'object'", "'array'", "'boolean'"), "'array'", "'object'",
                         "NULLIF({v}, 'null'::jsonb)"),
}


def _pushable(stage: Stage) -> bool:
    key, accs = stage.arg
    if not (isinstance(key, Literal) and not isinstance(key.value, (dict, list))) and not isinstance(key, Field):
        return False
    for _, op, expr in accs:
        if op not in _PUSHED:
            return False
        if op == "$count":
            continue
        if op == "$sum" and isinstance(expr, Literal) and isinstance(expr.value, (int, float)) and not isinstance(expr.value, bool):
            continue
        if not isinstance(expr, Field):
            return False
    return True


class SQLAggregate(SQLRegistry):
    """The part of :class:`~microdb.sql.backend.SQLBackend` that runs ``$group`` in SQL."""

    def aggregate(self, table: str, plan: Plan, stages: Sequence[Any]) -> tuple[Iterable[dict[str, Any]], int]:
        d = _DIALECTS.get(self.name)
        if (d is None or not stages or not isinstance(stages[0], Stage) or stages[0].op != "$group"
                or plan.sort or plan.skip or plan.limit is not None or plan.doc_ids is not None
                or not _pushable(stages[0])):
            return super().aggregate(table, plan, stages)
        with self._op() as s:
            info = self._info(s, table)
            if info is None:
                return [], 1
            found = self._group(s, info, plan, stages[0], d)
        if found is None:
            return super().aggregate(table, plan, stages)
        return found, 1

    def _group(self, s: Session, info: TableInfo, plan: Plan, stage: Stage, d: _Dialect) -> list[dict[str, Any]] | None:
        f = self._filter(info, plan.node)
        key, accs = stage.arg
        cols: list[str] = ["id"]
        params: list[Any] = []
        guards: list[str] = []
        if not f.exact:
            # Rows SQL is not sure of would need Python's check: if there are any, the guard
            # sends the whole group to Python.
            cols.append(f"(CASE WHEN {f.sure.sql} THEN 0 ELSE 1 END) AS unsure")
            params.extend(f.sure.params)
            guards.append("unsure = 1")
        names: dict[ast.Path, int] = {}

        def column(path: ast.Path) -> int:
            """Extract the value and kind at ``path`` once per row; guard paths through arrays."""
            if path not in names:
                n = len(names)
                names[path] = n
                cols.append(f"{d.value} AS v{n}")
                cols.append(f"{d.kind} AS t{n}")
                params.extend([d.path(path), d.path(path)])
                for cut in range(1, len(path)):
                    cols.append(f"({d.kind} = {d.array}) AS a{n}_{cut}")
                    params.append(d.path(path[:cut]))
                    guards.append(f"a{n}_{cut}")
            return names[path]

        if isinstance(key, Field):
            k = column(key.path)
            key_sql = d.null_key.format(v=f"v{k}")
            guards.append(f"t{k} IN ({', '.join(d.bad_keys)})")
        else:
            key_sql = "NULL"
        numbers = ", ".join(d.numbers)
        outs: list[str] = []
        flags: list[str] = []
        for _, op, expr in accs:
            if op == "$count" or isinstance(expr, Literal):
                outs.append("COUNT(*)" if op == "$count" else f"COUNT(*) * {expr.value!r}")
                flags.append("1" if op == "$sum" and isinstance(expr.value, float) else "0")
                continue
            n = column(expr.path)
            number = f"CASE WHEN t{n} IN ({numbers}) THEN v{n} END"
            if self.name == "postgresql":
                number = f"CASE WHEN t{n} IN ({numbers}) THEN (v{n} #>> '{{}}')::numeric END"
            # A tagged Decimal is an object: MongoDB adds it, SQL cannot.
            guards.append(f"t{n} = {d.obj}")
            if op == "$sum":
                outs.append(f"SUM({number})")
            elif op == "$avg":
                outs.append(f"AVG({number})")
            else:
                guards.append(f"(t{n} IS NOT NULL AND t{n} <> 'null' AND t{n} NOT IN ({numbers}))")
                if self.name == "postgresql":
                    # jsonb has no MIN: the first value in numeric order keeps its own type.
                    way = "ASC" if op == "$min" else "DESC"
                    outs.append(f"(array_agg(v{n} ORDER BY (v{n} #>> '{{}}')::numeric {way}) "
                                f"FILTER (WHERE t{n} IN ({numbers})))[1]")
                else:
                    outs.append(f"{op[1:].upper()}(CASE WHEN t{n} IN ({numbers}) THEN v{n} END)")
            flags.append(f"MAX(CASE WHEN t{n} IN ({numbers}) AND (v{n} #>> '{{}}') ~ '[.eE]' THEN 1 ELSE 0 END)"
                         if self.name == "postgresql" else "0")
        guard = " OR ".join(f"({g})" for g in guards) or "FALSE"
        where = f" WHERE {f.where.sql}" if f.pushed else ""
        sql = (
            f"WITH r AS MATERIALIZED (SELECT {', '.join(cols)} FROM {info.sql}{where}) "
            f"SELECT {key_sql}, {', '.join(outs + flags) if outs else 'COUNT(*), 0'}, "
            f"SUM(CASE WHEN {guard} THEN 1 ELSE 0 END) FROM r GROUP BY 1 ORDER BY MIN(id)"
        )
        rows = self._execute(s, sql, [*params, *f.where.params])
        if any(row[-1] for row in rows):
            return None
        out = []
        for row in rows:
            doc: dict[str, Any] = {"_id": key.value if isinstance(key, Literal) else row[0]}
            flag_at = 1 + len(accs)
            for i, (name, op, _) in enumerate(accs):
                value = row[1 + i]
                if op == "$sum":
                    value = 0 if value is None else value
                if isinstance(value, Decimal):
                    floats = op == "$avg" or bool(row[flag_at + i])
                    value = float(value) if floats or value != value.to_integral_value() else int(value)
                elif op == "$avg" and value is not None:
                    value = float(value)
                doc[name] = value
            out.append(doc)
        return out
