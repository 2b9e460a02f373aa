"""What the SQLite and PostgreSQL backends share: the whole :class:`Backend`, and ``explain``.

The tables live in the database as the registry (:mod:`microdb.sql.registry` draws the
layout) and one SQL table per MicroDB table. Queries compile with
:mod:`microdb.compile.sql`: SQL narrows the rows, Python checks only the rows SQL could
not decide (:mod:`microdb.sql.reads`); ``distinct`` groups values in SQL and finishes in
Python only where MongoDB's rules reach through arrays of sub-documents
(:mod:`microdb.sql.distinct`).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from microdb.backend import Plan
from microdb.compile.sql import compile_filter, node_paths
from microdb.query import ast
from microdb.sql.aggregate import SQLAggregate
from microdb.sql.distinct import SQLDistinct
from microdb.sql.schema import TableInfo, indexed_paths
from microdb.sql.session import Session
from microdb.sql.steps import Run, Steps
from microdb.sql.writes import SQLWrites

__all__ = ["SQLBackend"]


class SQLBackend(SQLAggregate, SQLDistinct, SQLWrites):
    """A :class:`~microdb.backend.Backend` on a SQL engine (see the module docstring).

    Its parts: sessions and transactions (:mod:`microdb.sql.session`), the table registry
    (:mod:`microdb.sql.registry`), writes (:mod:`microdb.sql.writes`), reads
    (:mod:`microdb.sql.reads`, :mod:`microdb.sql.distinct`) and ``explain`` (here).
    """

    @abstractmethod
    def _explain(self, s: Session, sql: str, params: Sequence[Any]) -> Steps[list[str]]:
        """The engine's own plan for a query, as lines of text (steps)."""

    def explain(self, table: str, plan: Plan) -> dict[str, Any]:
        with self._op() as s:
            return self._drive(s, self.explain_steps(s, table, plan))

    def explain_steps(self, s: Session, table: str, plan: Plan) -> Steps[dict[str, Any]]:
        """:meth:`explain` as steps."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return {"backend": self.name, "table": table, "access": "empty table", "index": None,
                    "examined": 0, "matched": 0, "ordered_by_index": False, "plan": [], "sql": None}
        rows, how = yield from self._rows_steps(s, info, plan)
        sql = how.get("sql")
        params = how.get("params", [])
        lines = (yield from self._explain(s, sql, params)) if sql else []
        used = self._indexes_used(info, lines, plan.node)
        total = int((yield Run(f"SELECT count(*) FROM {info.sql}"))[0][0])
        examined = total if not used else (yield from self._examined(info, plan, used, total))
        f = compile_filter(plan.node, self.dialect, "doc", indexed_paths(info))
        matched = len(rows) if plan.skip == 0 and plan.limit is None else (
            yield from self.count_steps(s, table, Plan(node=plan.node))
        )
        return {
            "backend": self.name,
            "table": table,
            "access": ("index " + ", ".join(used)) if used else ("by id" if plan.doc_ids is not None else "full scan"),
            "index": ", ".join(f"index {p}" for p in used) if used else None,
            "examined": examined,
            "matched": matched,
            "ordered_by_index": False,
            "query": repr(plan.node) if plan.node is not None else None,
            "sql": sql,
            "params": list(params),
            "plan": lines,
            "residual": repr(f.residual) if f.residual is not None else None,
            "pushed": {"filter": how.get("filter", False), "sort": how.get("sort"), "limit": how.get("limit")},
            # The top-level fields read instead of whole documents (None: whole documents).
            "projection": how.get("projection"),
        }

    def _indexes_used(self, info: TableInfo, lines: list[str], node: ast.Node | None) -> list[str]:
        used: list[str] = []
        text = "\n".join(lines)
        tested = node_paths(node)
        for spec in info.indexes:
            if "paths" in spec:
                if any(re.search(rf"\b{re.escape(n)}\b", text) for n in self._compound_names(info, spec)):
                    used.append("(" + ", ".join(ast.path_repr(tuple(p)) for p in spec["paths"]) + ")")
                continue
            path = tuple(spec["path"])
            names = self._index_names(info, path, bool(spec.get("unique")))
            for name in names:
                if re.search(rf"\b{re.escape(name)}\b", text) is None:
                    continue
                # A table-wide index (PostgreSQL's GIN) serves the indexed paths the query tests.
                if name in self._shared_index_names(info) and path not in tested:
                    continue
                used.append(ast.path_repr(path))
                break
        return used

    def _examined(self, info: TableInfo, plan: Plan, used: list[str], total: int) -> Steps[int]:
        """Rows the index part of the query selects (what the engine reads through the index)."""
        node = plan.node
        if node is None:
            return total
        parts = node.items if isinstance(node, ast.And) else (node,)
        indexed = [p for p in parts if _paths_of(p) and all(ast.path_repr(q) in used for q in _paths_of(p))]
        if not indexed:
            return total
        sub = indexed[0] if len(indexed) == 1 else ast.And(tuple(indexed))
        f = compile_filter(sub, self.dialect, "doc", indexed_paths(info))
        sql = f"SELECT count(*) FROM {info.sql}" + (f" WHERE {f.where.sql}" if f.pushed else "")
        return int((yield Run(sql, f.where.params))[0][0])


def _paths_of(node: ast.Node) -> list[ast.Path]:
    """The paths a leaf (or an Or of leaves) tests; empty for anything else."""
    if isinstance(node, ast.Or):
        out: list[ast.Path] = []
        for item in node.items:
            sub = _paths_of(item)
            if not sub:
                return []
            out.extend(sub)
        return out
    path = getattr(node, "path", None)
    if isinstance(node, (ast.Compare, ast.OneOf, ast.AnyOf, ast.ElemMatch)) and path is not None:
        return [path]
    return []
