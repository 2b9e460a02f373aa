"""Choosing how the in-memory engine answers a query: which index, if any.

:func:`choose` looks at the parts of a query an index can answer (equality, ``one_of``,
ranges, MongoDB-style "array contains", conjunctions and disjunctions of those), estimates
how many documents each would yield, and returns the cheapest *access path*: a set of
candidate ids that is guaranteed to hold every match. The engine then runs the compiled
predicate on those candidates only, so an index never changes an answer, it only narrows
the documents examined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from microdb.engine.index import Index
from microdb.query import ast
from microdb.query.values import sort_key

__all__ = ["Access", "choose", "residual"]


@dataclass
class Access:
    """A way to get candidate ids: ``estimate`` of their number, ``fetch()`` to get them.

    ``fetch()`` may return a set the index owns: read it, never change it.
    """

    estimate: int
    fetch: Callable[[], set[int]]
    description: str
    #: The parts of the query (conjuncts) the candidates answer exactly: no re-check needed.
    exact: tuple[ast.Node, ...] = ()


_EXACT_KINDS = (str, int, float)


def _is_exact(index: Index, operand: Any) -> bool:
    # A plain string or number operand on an index that holds no arrays: the entries under
    # its key are exactly the documents whose value equals (or lies in the range of) it.
    return type(operand) in _EXACT_KINDS and not index.multikey


def _range(index: Index, op: str, operand: Any, label: str) -> Access:
    sk = sort_key(operand)
    rank = sk[0]
    low: Any = (rank,)
    high: Any = (rank + 1,)
    low_inc = high_inc = False
    if op in ("lt", "le"):
        high, high_inc, low_inc = sk, op == "le", True
    else:
        low, low_inc = sk, op == "ge"
    est = index.count_between(low, low_inc, high, high_inc)
    return Access(est, lambda: index.between(low, low_inc, high, high_inc), f"{label} range")


def _union(index: Index, values: tuple[Any, ...], label: str) -> Access:
    est = sum(len(index.equal(v)) for v in values)

    def fetch() -> set[int]:
        out: set[int] = set()
        for v in values:
            out |= index.equal(v)
        return out

    return Access(est, fetch, f"{label} in {len(values)} values")


def _compare(index: Index, op: str, operand: Any, label: str) -> Access | None:
    if op == "eq":
        ids = index.equal(operand)
        return Access(len(ids), lambda: ids, f"{label} ==")
    if op in ("lt", "le", "gt", "ge"):
        return _range(index, op, operand, label)
    return None


def _no_arrays_at(path: ast.Path, indexes: dict[ast.Path, Index]) -> bool:
    """True when an index proves that no document holds an array (or set) at ``path``."""
    n = len(path)
    for ipath, index in indexes.items():
        if ipath == path and not index.multikey:
            return True
        if len(ipath) > n and ipath[:n] == path and not index.through_arrays:
            return True
    return False


def _impossible(node: ast.Node, indexes: dict[ast.Path, Index]) -> bool:
    """True when ``node`` can match no document: it needs an array where indexes show none."""
    if isinstance(node, (ast.AnyOf, ast.AllOf, ast.ElemMatch)):
        return _no_arrays_at(node.path, indexes)
    if isinstance(node, ast.Traverse):
        # It only counts values reached through an array before the path's last step.
        return all(_no_arrays_at(node.path[:i], indexes) for i in range(1, len(node.path)))
    return False


def _between(index: Index, low: Any, low_inc: bool, high: Any, high_inc: bool) -> Callable[[], set[int]]:
    return lambda: index.between(low, low_inc, high, high_inc)


def _two_sided_ranges(node: ast.And, indexes: dict[ast.Path, Index]) -> list[Access]:
    """One index range for a lower and an upper bound on the same path (``40 <= age < 42``)."""
    lows: dict[ast.Path, list[ast.Compare]] = {}
    highs: dict[ast.Path, list[ast.Compare]] = {}
    for item in node.items:
        if isinstance(item, ast.Compare) and item.path in indexes:
            if item.op in ("gt", "ge"):
                lows.setdefault(item.path, []).append(item)
            elif item.op in ("lt", "le"):
                highs.setdefault(item.path, []).append(item)
    out: list[Access] = []
    for path in lows.keys() & highs.keys():
        index = indexes[path]
        for low in lows[path]:
            for high in highs[path]:
                lk, hk = sort_key(low.operand), sort_key(high.operand)
                if lk[0] != hk[0]:
                    continue  # different kinds: nothing is in both ranges, let the re-check say so
                low_inc, high_inc = low.op == "ge", high.op == "le"
                est = index.count_between(lk, low_inc, hk, high_inc)
                exact = (low, high) if _is_exact(index, low.operand) and _is_exact(index, high.operand) else ()
                out.append(Access(est, _between(index, lk, low_inc, hk, high_inc), f"index {ast.path_repr(path)} range", exact))
    return out


def choose(node: ast.Node | None, indexes: dict[ast.Path, Index]) -> Access | None:
    """The cheapest index access for ``node``, or ``None`` for a full scan."""
    if node is None or not indexes:
        return None
    return _access(node, indexes)


def _access(node: ast.Node, indexes: dict[ast.Path, Index]) -> Access | None:
    if isinstance(node, ast.Const) and not node.truth:
        return Access(0, set, "nothing can match")
    path = getattr(node, "path", None)
    index = indexes.get(path) if path is not None else None
    label = f"index {ast.path_repr(path)}" if path is not None else ""
    if isinstance(node, ast.Compare) and index is not None:
        access = _compare(index, node.op, node.operand, label)
        if access is not None and _is_exact(index, node.operand):
            access.exact = (node,)
        return access
    if isinstance(node, ast.OneOf) and index is not None:
        access = _union(index, node.values, label)
        if node.values and all(_is_exact(index, v) for v in node.values):
            access.exact = (node,)
        return access
    if isinstance(node, ast.AnyOf) and index is not None and not isinstance(node.cond, ast.Node):
        return _union(index, node.cond, label)
    if isinstance(node, ast.ElemMatch) and index is not None:
        cond = node.cond
        if isinstance(cond, ast.Compare) and cond.path == ():
            return _compare(index, cond.op, cond.operand, label + " elements")
    if isinstance(node, ast.Fragment) and not node.path:
        options = [
            _compare(indexes[(key,)], "eq", value, f"index {ast.path_repr((key,))}")
            for key, value in node.fragment.items()
            if (key,) in indexes
        ]
        return min((o for o in options if o is not None), key=lambda a: a.estimate, default=None)
    if isinstance(node, ast.And):
        found = [a for a in (_access(child, indexes) for child in node.items) if a is not None]
        found.extend(_two_sided_ranges(node, indexes))
        return min(found, key=lambda a: a.estimate, default=None)
    if isinstance(node, ast.Or):
        kept = [child for child in node.items if not _impossible(child, indexes)]
        if len(kept) < len(node.items):
            # MongoDB-style filters add "or through an array" branches; where the indexes
            # show that no document has an array there, the rest answers the query alone.
            if not kept:
                return Access(0, set, "nothing can match", exact=(node,))
            reduced = ast.Or.of(*kept)
            access = _access(reduced, indexes)
            if access is not None and access.exact == (reduced,):
                access.exact = (node,)
            return access
        parts = [_access(child, indexes) for child in node.items]
        if not parts or any(p is None for p in parts):
            return None
        accesses = [p for p in parts if p is not None]

        def fetch() -> set[int]:
            out: set[int] = set()
            for a in accesses:
                out |= a.fetch()
            return out

        return Access(
            sum(a.estimate for a in accesses), fetch, " | ".join(a.description for a in accesses)
        )
    return None


def residual(node: ast.Node | None, exact: tuple[ast.Node, ...]) -> ast.Node | None:
    """What is left of ``node`` to check once the candidates answer ``exact`` exactly."""
    if node is None or not exact:
        return node
    if node in exact:
        return None
    if isinstance(node, ast.And):
        rest = [item for item in node.items if item not in exact]
        if len(rest) < len(node.items):
            return ast.And.of(*rest) if rest else None
    return node
