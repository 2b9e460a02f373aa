"""Choosing how the in-memory engine answers a query: which index, if any.

:func:`choose` looks at the parts of a query an index can answer (equality, ``one_of``,
ranges, MongoDB-style "array contains", conjunctions and disjunctions of those), estimates
how many documents each would yield, and returns the cheapest *access path*: a set of
candidate ids that is guaranteed to hold every match. The engine then runs the compiled
predicate on those candidates only, so an index never changes an answer, it only narrows
the documents examined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from microdb.engine.compound import CompoundIndex
from microdb.engine.index import Index
from microdb.query import ast
from microdb.query.values import sort_key

__all__ = ["Access", "choose", "compound_prefix", "residual"]


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


def _arrays_only(index: Index) -> bool:
    """Whether every value the index holds is an array, reached without crossing one: then
    "the array holds x" is exactly "filed under x" (elements are filed one by one)."""
    return not index.scalars and (len(index.path) == 1 or not index.through_arrays)


def _intersection(index: Index, values: tuple[Any, ...], label: str) -> Access:
    sizes = sorted(values, key=index.size_of)

    def fetch() -> set[int]:
        out = set(index.equal(sizes[0]))
        for v in sizes[1:]:
            if not out:
                break
            out &= index.equal(v)
        return out

    return Access(index.size_of(sizes[0]), fetch, f"{label} holding all of {len(values)} values")


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


def choose(
    node: ast.Node | None, indexes: dict[ast.Path, Index],
    compounds: dict[tuple[ast.Path, ...], CompoundIndex] | None = None,
) -> Access | None:
    """The cheapest index access for ``node``, or ``None`` for a full scan."""
    if node is None or not (indexes or compounds):
        return None
    best = _access(node, indexes) if indexes else None
    if compounds:
        for index in compounds.values():
            found = _compound_access(node, index)
            # On a tie the compound index wins: it answers more of the query exactly.
            if found is not None and (best is None or found.estimate <= best.estimate):
                best = found
    return best


# -- compound indexes -----------------------------------------------------------------------

def _array_only(node: ast.Node, paths: tuple[ast.Path, ...]) -> bool:
    # A branch that needs an array at (or on the way to) an indexed path.
    if not isinstance(node, (ast.AnyOf, ast.AllOf, ast.ElemMatch)):
        return False
    n = len(node.path)
    return any(p[:n] == node.path for p in paths)


def _plain(node: ast.Node, paths: tuple[ast.Path, ...]) -> ast.Compare | None:
    """The comparison ``node`` amounts to on an index without arrays, if any.

    MongoDB-style filters add "or the array holds it" branches to each comparison; the
    compound index is used only while no document has an array along its paths, so those
    branches cannot match and the comparison alone decides.
    """
    if isinstance(node, ast.Compare):
        return node
    if isinstance(node, ast.Or):
        kept = [item for item in node.items if not _array_only(item, paths)]
        if len(kept) == 1 and isinstance(kept[0], ast.Compare):
            return kept[0]
    return None


def _exact_operand(operand: Any) -> bool:
    return type(operand) in _EXACT_KINDS and operand == operand


def compound_prefix(
    node: ast.Node | None, index: CompoundIndex,
) -> tuple[list[Any], list[ast.Node], dict[str, list[tuple[ast.Node, ast.Compare]]]]:
    """What ``node``'s conjuncts give ``index``: equality sort keys on its leading paths
    (and the conjuncts giving them), and the range comparisons on each path."""
    items = node.items if isinstance(node, ast.And) else (() if node is None else (node,))
    eqs: dict[ast.Path, tuple[ast.Node, ast.Compare]] = {}
    ranges: dict[str, list[tuple[ast.Node, ast.Compare]]] = {}
    for item in items:
        cmp = _plain(item, index.paths)
        if cmp is None or cmp.path not in index.paths:
            continue
        if cmp.op == "eq":
            eqs.setdefault(cmp.path, (item, cmp))
        elif cmp.op in ("lt", "le", "gt", "ge"):
            ranges.setdefault(ast.path_repr(cmp.path), []).append((item, cmp))
    prefix: list[Any] = []
    used: list[ast.Node] = []
    for path in index.paths:
        found = eqs.get(path)
        if found is None:
            break
        prefix.append(sort_key(found[1].operand))
        used.append(found[0])
    return prefix, used, ranges


def _compound_access(node: ast.Node, index: CompoundIndex) -> Access | None:
    if index.arrays:
        return None
    prefix, used, ranges = compound_prefix(node, index)
    exact = all(_exact_operand(_plain(u, index.paths).operand) for u in used)  # type: ignore[union-attr]
    low: Any = None
    high: Any = None
    low_inc = high_inc = True
    what = "=="
    if len(prefix) < len(index.paths):
        candidates = ranges.get(ast.path_repr(index.paths[len(prefix)]), [])
        lows = [c for c in candidates if c[1].op in ("gt", "ge")]
        highs = [c for c in candidates if c[1].op in ("lt", "le")]
        if lows or highs:
            what = "range" if not prefix else "== and range"
            if lows:
                item, cmp = lows[0]
                low, low_inc = sort_key(cmp.operand), cmp.op == "ge"
                used.append(item)
                exact = exact and _exact_operand(cmp.operand)
            if highs and (not lows or sort_key(highs[0][1].operand)[0] == low[0]):
                item, cmp = highs[0]
                high, high_inc = sort_key(cmp.operand), cmp.op == "le"
                used.append(item)
                exact = exact and _exact_operand(cmp.operand)
            # A one-sided range stays within its kind of value, as the query does.
            if low is None:
                low, low_inc = (high[0],), True
            if high is None:
                high, high_inc = (low[0] + 1,), False
    if not used:
        return None
    start, stop = index.bounds(tuple(prefix), low, low_inc, high, high_inc)
    return Access(
        index.estimate(start, stop), lambda: index.lookup(start, stop), f"{index.label()} {what}",
        tuple(used) if exact else (),
    )


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
        access = _union(index, node.cond, label)
        if node.cond and _arrays_only(index) and all(_exact_operand(v) for v in node.cond):
            access.exact = (node,)
        return access
    if isinstance(node, ast.AllOf) and index is not None and not isinstance(node.cond, ast.Node) and node.cond:
        access = _intersection(index, node.cond, label)
        if _arrays_only(index) and all(_exact_operand(v) for v in node.cond):
            access.exact = (node,)
        return access
    if isinstance(node, ast.ElemMatch) and index is not None:
        cond = node.cond
        if isinstance(cond, ast.Compare) and cond.path == ():
            access = _compare(index, cond.op, cond.operand, label + " elements")
            if access is not None and _arrays_only(index) and _exact_operand(cond.operand):
                access.exact = (node,)
            return access
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


def ordered_compound(
    node: ast.Node | None, sort: list[tuple[ast.Path, bool]], compounds: dict[tuple[ast.Path, ...], CompoundIndex],
    need: int | None,
) -> Iterator[int] | None:
    """Ids in the order of ``sort`` (paths, one direction) from a compound index, if one fits.

    It fits when the query fixes its first paths by equality and the sort names the rest,
    in order: the keys under that prefix are then in exactly the sort's order, and ids
    under one key come in id order, as a stable sort leaves them.
    """
    if not sort or len({reverse for _, reverse in sort}) != 1:
        return None
    paths = tuple(path for path, _ in sort)
    for index in compounds.values():
        if index.arrays:
            continue
        prefix, _, _ = compound_prefix(node, index)
        if index.paths[len(prefix):] == paths:
            start, stop = index.bounds(tuple(prefix))
            return index.scan(start, stop, sort[0][1], need)
    return None
