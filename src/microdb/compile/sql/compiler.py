"""The per-node compiler from the query AST to a two-sided SQL condition (see :mod:`microdb.compile.sql`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, ClassVar

from microdb.compile.sql.dialect import Dialect
from microdb.compile.sql.fragments import ARRAY_TAGS, DIGITS, Cond, Frag, Term, join_frags
from microdb.query import ast

# ---------------------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SQLFilter:
    """A compiled query: ``where`` narrows rows, ``sure`` marks rows needing no Python check."""

    where: Frag
    sure: Frag
    exact: bool
    #: The node Python must check on rows where ``sure`` is false (``None`` when exact).
    residual: ast.Node | None

    @property
    def pushed(self) -> bool:
        """Whether SQL narrows the rows at all."""
        return self.where.sql not in ("1", "TRUE")




class SQLCompiler:
    """Compiles nodes for one dialect; one handler per node type (unknown nodes go to Python)."""

    handlers: ClassVar[dict[type, str]] = {
        ast.Const: "_const",
        ast.And: "_and",
        ast.Or: "_or",
        ast.Not: "_not",
        ast.Compare: "_compare",
        ast.Exists: "_exists",
        ast.Regex: "_regex",
        ast.OneOf: "_one_of",
        ast.AnyOf: "_any_of",
        ast.AllOf: "_all_of",
        ast.ElemMatch: "_elem_match",
        ast.Traverse: "_traverse",
        ast.Fragment: "_fragment",
        ast.Size: "_size",
        ast.TypeIs: "_guarded",
        ast.Mod: "_mod",
        ast.Test: "_guarded",
    }

    def __init__(self, dialect: Dialect, doc: str = "doc", indexed: frozenset[ast.Path] = frozenset()):
        self.d = dialect
        self.doc = doc
        self.indexed = indexed
        self._alias = 0
        self._cost = 0
        self.TRUE = Frag(dialect.true)
        self.FALSE = Frag(dialect.false)

    # -- helpers ------------------------------------------------------------------------
    def exact(self, frag: Frag) -> Cond:
        return Cond(frag, frag, True)

    def unknown(self, maybe: Frag | None = None) -> Cond:
        """Python decides; SQL only narrows to ``maybe``."""
        return Cond(self.FALSE, maybe if maybe is not None else self.TRUE, False)

    def and_(self, frags: Sequence[Frag]) -> Frag:
        return self._junction("AND", frags, self.TRUE, self.FALSE)

    def or_(self, frags: Sequence[Frag]) -> Frag:
        return self._junction("OR", frags, self.FALSE, self.TRUE)

    @staticmethod
    def _junction(op: str, frags: Sequence[Frag], unit: Frag, absorbing: Frag) -> Frag:
        # ``unit`` terms drop out (x AND TRUE is x); one ``absorbing`` term decides (x AND FALSE).
        items = [f for f in frags if f.sql != unit.sql]
        if any(f.sql == absorbing.sql for f in items):
            return absorbing
        if not items:
            return unit
        return items[0] if len(items) == 1 else join_frags(op, items)

    def not_(self, frag: Frag) -> Frag:
        if frag.sql == self.TRUE.sql:
            return self.FALSE
        if frag.sql == self.FALSE.sql:
            return self.TRUE
        c = self.d.coalesce(frag)
        return Frag(f"(NOT {c.sql})", c.params)

    def term(self, path: ast.Path, base: str, root: bool) -> Term | None:
        if root:
            t = self.d.term(base, path, True)
            if t is not None and path in self.indexed:
                t = replace(t, indexed=True)
            return t
        return self.d.element_term(self.doc, base, path)  # type: ignore[attr-defined,no-any-return]

    def with_doubt(self, t: Term, cond: Cond) -> Cond:
        """Widen ``cond`` where a tuple step makes the JSON layout differ from Python's."""
        if t.doubt is None:
            return cond
        return Cond(self.and_([cond.sure, self.not_(t.doubt)]), self.or_([cond.maybe, t.doubt]), False)

    # -- entry point ----------------------------------------------------------------------
    def cond(self, node: ast.Node, base: str | None = None, root: bool = True) -> Cond:
        """Compile ``node`` against the document (or an element, when ``root`` is false)."""
        name = self.handlers.get(type(node))
        if name is None:
            return self.unknown()
        weight = _NESTING_COST.get(type(node), 0)
        if weight and self._cost + weight > self.d.nesting_budget:
            # SQLite's parser has a fixed stack ("parser stack overflow" on 19 nested
            # NOTs or 14 nested EXISTS): past the budget, SQL leaves the part to Python.
            return self.unknown()
        handler = getattr(self, name)
        self._cost += weight
        try:
            return handler(node, self.doc if base is None else base, root)  # type: ignore[no-any-return]
        finally:
            self._cost -= weight

    # -- combinators ----------------------------------------------------------------------
    def _const(self, node: ast.Const, base: str, root: bool) -> Cond:
        return self.exact(self.TRUE if node.truth else self.FALSE)

    def _and(self, node: ast.And, base: str, root: bool) -> Cond:
        parts = [self.cond(n, base, root) for n in node.items]
        return Cond(self.and_([p.sure for p in parts]), self.and_([p.maybe for p in parts]),
                    all(p.exact for p in parts))

    def _or(self, node: ast.Or, base: str, root: bool) -> Cond:
        parts = [self.cond(n, base, root) for n in node.items]
        return Cond(self.or_([p.sure for p in parts]), self.or_([p.maybe for p in parts]),
                    all(p.exact for p in parts))

    def _not(self, node: ast.Not, base: str, root: bool) -> Cond:
        inner = self.cond(node.item, base, root)
        if inner.exact:
            return self.exact(self.not_(inner.sure))
        return Cond(self.not_(inner.maybe), self.not_(inner.sure), False)

    # -- leaves ---------------------------------------------------------------------------
    def _exists(self, node: ast.Exists, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        return self.with_doubt(t, self.exact(self.d.exists(t)))

    def _compare(self, node: ast.Compare, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        if node.op == "ne":
            eq = self.compare(t, "eq", node.operand)
            present = self.d.exists(t)
            cond = Cond(
                self.and_([present, self.not_(eq.maybe)]),
                self.and_([present, self.not_(eq.sure)]),
                eq.exact,
            )
        else:
            cond = self.compare(t, node.op, node.operand)
        return self.with_doubt(t, cond)

    def compare(self, t: Term, op: str, operand: Any) -> Cond:
        """``value OP operand`` under the rules of :mod:`microdb.query.values` (op is not ``ne``)."""
        d = self.d
        typ = type(operand)
        if operand is None:
            return self.exact(d.kind_is(t, "null") if op == "eq" else self.FALSE)
        if typ is bool or typ is str:
            if op == "eq" and d.containment:
                found = d.contains(t, operand)
                if found is not None:
                    return self.exact(found)
            return self.exact(d.bool_cmp(t, op, operand) if typ is bool else d.string_cmp(t, op, operand))
        if typ in (int, float):
            if typ is float and not math.isfinite(operand):
                if operand != operand:
                    return self.exact(self.FALSE)
                return self.unknown(self.or_([d.kind_is(t, "number"), d.tagged(t, "$decimal")]))
            if abs(operand) >= d.exact_numbers:
                return self.near(t, op, operand)
            sure: Frag | None = None
            if op == "eq" and d.containment:
                sure = d.contains(t, operand)
            if sure is None:
                sure = d.number_cmp(t, op, operand)
            if sure is None:
                return self.unknown(self.or_([d.kind_is(t, "number"), d.tagged(t, "$decimal")]))
            # A Decimal is stored as a tagged string: SQL finds it, Python compares it.
            return Cond(sure, self.or_([sure, d.tagged(t, "$decimal")]), False)
        if typ is Decimal:
            return self.unknown(self.or_([d.kind_is(t, "number"), d.tagged(t, "$decimal")]))
        return self.unknown(self.kind_guard(t, operand))

    def near(self, t: Term, op: str, operand: int | float) -> Cond:
        """``value OP operand`` for an operand so large the engine may misjudge its neighbours.

        Python compares an int with a float exactly; PostgreSQL reads a stored float
        such as ``4.611686018427388e+18`` as the decimal it prints, which is not the
        float's value (2**62). Every number within 2**-50 of the operand (far more than
        that difference) is left to Python; SQL decides the rest.
        """
        d = self.d
        center = int(operand)
        delta = (abs(center) >> 50) + 1
        low, high = Decimal(center - delta), Decimal(center + delta)
        above, below = d.number_cmp(t, "gt", high), d.number_cmp(t, "lt", low)
        from_low, to_high = d.number_cmp(t, "ge", low), d.number_cmp(t, "le", high)
        if above is None or below is None or from_low is None or to_high is None:
            return self.unknown(self.or_([d.kind_is(t, "number"), d.tagged(t, "$decimal")]))
        if op == "eq":
            sure, maybe = self.FALSE, self.and_([from_low, to_high])
        elif op in ("gt", "ge"):
            sure, maybe = above, from_low
        else:
            sure, maybe = below, to_high
        return Cond(sure, self.or_([maybe, d.tagged(t, "$decimal")]), False)

    def kind_guard(self, t: Term, operand: Any) -> Frag:
        """Rows whose value may be of the same kind as ``operand``."""
        d = self.d
        if isinstance(operand, (list, tuple, set, frozenset)):
            return self.or_([d.kind_is(t, "array")] + [d.tagged(t, tag) for tag in ARRAY_TAGS])
        if isinstance(operand, dict):
            return d.kind_is(t, "object")
        for tag, cls_name in (("$datetime", "datetime"), ("$date", "date"), ("$time", "time"),
                              ("$timedelta", "timedelta"), ("$uuid", "UUID"), ("$bytes", "bytes")):
            if type(operand).__name__ == cls_name:
                return d.tagged(t, tag)
        return d.kind_is(t, "object")

    def _regex(self, node: ast.Regex, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        found = self.d.regex(t, node)
        if found is None:
            return self.with_doubt(t, self.unknown(self.d.kind_is(t, "string")))
        return self.with_doubt(t, self.exact(found))

    def _one_of(self, node: ast.OneOf, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        values = node.values
        if values and all(type(v) is str for v in values):
            return self.with_doubt(t, self.exact(self.d.in_strings(t, values)))
        parts = [self.compare(t, "eq", v) for v in values]
        cond = Cond(self.or_([p.sure for p in parts]), self.or_([p.maybe for p in parts]), all(p.exact for p in parts))
        return self.with_doubt(t, cond)

    def _array(self, t: Term) -> tuple[Frag, Frag]:
        """(is a JSON array, may be a tagged tuple or set)."""
        return self.d.kind_is(t, "array"), self.or_([self.d.tagged(t, tag) for tag in ARRAY_TAGS])

    def _elements(self, t: Term, elem_cond: Callable[[str], Cond], every: bool = False) -> Cond:
        """Some (or, with ``every``, each) element of the array at ``t`` satisfies ``elem_cond``."""
        self._alias += 1
        alias = f"e{self._alias}"
        from_, elem = self.d.elements(t, alias)
        inner = elem_cond(elem)
        is_array, tagged = self._array(t)

        def over(frag: Frag) -> Frag:
            if every:
                bad = self.not_(frag)
                test = f"NOT EXISTS (SELECT 1 FROM {from_} WHERE {bad.sql})"
                params = bad.params
            else:
                if frag.sql == self.FALSE.sql:
                    return self.FALSE
                test, params = f"EXISTS (SELECT 1 FROM {from_} WHERE {frag.sql})", frag.params
            # Only arrays are iterated: json_each/jsonb_array_elements of a scalar misbehave.
            return self.and_([is_array, Frag(f"(CASE WHEN {is_array.sql} THEN {test} END)", is_array.params + params)])

        sure, maybe = over(inner.sure), over(inner.maybe)
        # A tuple or set is a tagged object in JSON: found by SQL, decided by Python.
        return Cond(sure, self.or_([maybe, tagged]), False)

    def _any_of(self, node: ast.AnyOf, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        if isinstance(node.cond, ast.Node):
            sub = node.cond
            return self.with_doubt(t, self._elements(t, lambda e: self.cond(sub, e, False)))
        values = node.cond

        def elem(e: str) -> Cond:
            et = self.term((), e, False)
            if et is None:
                return self.unknown()
            parts = [self.compare(et, "eq", v) for v in values]
            return Cond(self.or_([p.sure for p in parts]), self.or_([p.maybe for p in parts]), all(p.exact for p in parts))

        generic = self._elements(t, elem)
        if self.d.containment and t.keys and t.literal and t.indexed and values and all(
            v is None or type(v) in (str, bool)
            or (type(v) in (int, float) and math.isfinite(v) and abs(v) < self.d.exact_numbers)
            for v in values
        ):
            # ``doc @> {"tags": [v]}``: answered by the GIN index.
            found = [self.d.contains(t, [v]) for v in values]
            sure = self.or_([f for f in found if f is not None])
            if not any(type(v) in (int, float) for v in values):
                _, tagged = self._array(t)
                return Cond(sure, self.or_([sure, tagged]), False)
            return Cond(sure, self.or_([sure, generic.maybe]), False)
        return self.with_doubt(t, generic)

    def _all_of(self, node: ast.AllOf, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        if isinstance(node.cond, ast.Node):
            sub = node.cond
            return self.with_doubt(t, self._elements(t, lambda e: self.cond(sub, e, False), every=True))
        values = node.cond
        if not values:
            is_array, tagged = self._array(t)
            return self.with_doubt(t, Cond(is_array, self.or_([is_array, tagged]), False))
        parts = [self._any_of(ast.AnyOf(node.path, (v,)), base, root) for v in values]
        return Cond(self.and_([p.sure for p in parts]), self.and_([p.maybe for p in parts]), False)

    def _elem_match(self, node: ast.ElemMatch, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        sub = node.cond
        return self.with_doubt(t, self._elements(t, lambda e: self.cond(sub, e, False)))

    def _traverse(self, node: ast.Traverse, base: str, root: bool) -> Cond:
        path = node.path
        if len(path) <= _SPELLED_STEPS:
            # Short paths are spelled out, one EXISTS per array met: exact, index-friendly.
            return self.cond(_through_arrays(path, node.cond), base, root)
        # Longer paths: SQL narrows to documents holding an array (or a tuple) somewhere
        # on the way, and Python decides on those. Spelled out, every way of splitting
        # the path would be its own EXISTS: 2**(steps - 1) of them.
        maybe: list[Frag] = []
        for i in range(1, len(path)):
            t = self.term(path[:i], base, root)
            if t is None:
                return self.unknown()
            maybe.extend(self._array(t))
        return self.unknown(self.or_(maybe))

    def _fragment(self, node: ast.Fragment, base: str, root: bool) -> Cond:
        if any(not isinstance(k, str) or k.startswith("$") for k in node.fragment):
            return self.unknown()
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        parts = [self.cond(ast.Compare(node.path + (k,), "eq", v), base, root) for k, v in node.fragment.items()]
        is_object = self.d.kind_is(t, "object")
        if not parts:
            return self.with_doubt(t, Cond(self.FALSE, is_object, False))
        return self.with_doubt(t, Cond(
            self.and_([is_object] + [p.sure for p in parts]),
            self.and_([is_object] + [p.maybe for p in parts]),
            all(p.exact for p in parts),
        ))

    def _size(self, node: ast.Size, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None or type(node.size) is not int:
            return self.unknown()
        is_array = self.d.kind_is(t, "array")
        sure = self.and_([is_array, Frag(
            f"(CASE WHEN {is_array.sql} THEN {self.d.array_length(t)} END) = {self.d.param}", (node.size,)
        )])
        return self.with_doubt(t, Cond(sure, self.or_([sure, self.d.tagged(t, "$tuple")]), False))

    def _mod(self, node: ast.Mod, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None:
            return self.unknown()
        return self.unknown(self.or_([self.d.kind_is(t, "number"), self.d.tagged(t, "$decimal")]))

    def _guarded(self, node: Any, base: str, root: bool) -> Cond:
        t = self.term(node.path, base, root)
        if t is None or t.doubt is not None:
            return self.unknown()
        return self.unknown(self.d.exists(t))


#: What each node adds to the depth of the SQL parser's stack, roughly in stack entries
#: (measured on SQLite: ``NOT COALESCE((...)`` takes 5, ``EXISTS (SELECT ... WHERE``
#: 7, ``CASE WHEN ... THEN`` 6); compared with ``Dialect.nesting_budget``.
_NESTING_COST: dict[type, int] = {
    ast.And: 3,
    ast.Or: 3,
    ast.Not: 6,
    ast.ElemMatch: 18,
    ast.AnyOf: 18,
    ast.AllOf: 18,
    ast.Traverse: 18,
    ast.Fragment: 3,
}
#: Paths up to this many steps have their ways through arrays spelled out in SQL.
_SPELLED_STEPS = 3
_OBJECT = ast.TypeIs((), ("object",))


def _prefixed(node: ast.Node, prefix: ast.Path) -> ast.Node:
    """``node`` testing the value at ``prefix`` + each of its paths (the inverse of rebasing).

    ``And``, ``Or`` and ``Not`` are walked; any other node with a ``path`` gets the prefix
    (a condition inside ``ElemMatch`` or ``Traverse`` stays relative to its element).
    """
    if not prefix:
        return node
    if isinstance(node, (ast.And, ast.Or)):
        return type(node)(tuple(_prefixed(item, prefix) for item in node.items))
    if isinstance(node, ast.Not):
        return ast.Not(_prefixed(node.item, prefix))
    if isinstance(node, ast.Fragment):
        return ast.Fragment(tuple(prefix) + node.path, node.fragment)
    if "path" in node._fields:
        args = [tuple(prefix) + node.path if f == "path" else getattr(node, f)  # type: ignore[attr-defined]
                for f in node._fields]
        return type(node)(*args)
    return node


def _through_arrays(path: ast.Path, cond: ast.Node) -> ast.Node:
    """``Traverse(path, cond)`` spelled with ``ElemMatch``: one branch per array met."""
    branches: list[ast.Node] = []
    for i in range(1, len(path)):
        rest = path[i:]
        inner = ast.Or.of(_prefixed(cond, rest), *([ast.Traverse(rest, cond)] if len(rest) > 1 else []))
        if isinstance(rest[0], str) and DIGITS.match(rest[0]):
            # Only sub-documents are stepped into: a digit step must not index an array
            # inside the array (SQL would read a position where Python reads a key).
            inner = ast.And.of(_OBJECT, inner)
        branches.append(ast.ElemMatch(path[:i], inner))
    return ast.Or.of(*branches)


def _has_nul(param: Any) -> bool:
    # A raw NUL, or one escaped in the JSON text of a containment operand.
    return isinstance(param, str) and ("\x00" in param or "\\u0000" in param)


def node_paths(node: ast.Node | None) -> set[ast.Path]:
    """Every path a query tests, at any depth (used to tell whether an index may help)."""
    out: set[ast.Path] = set()
    if node is None:
        return out
    path = getattr(node, "path", None)
    if isinstance(path, tuple):
        out.add(path)
    if isinstance(node, ast.Fragment):
        out.update(path + (k,) for k in node.fragment if isinstance(path, tuple))
    for child in node.children():
        out.update(node_paths(child))
    return out


def compile_filter(
    node: ast.Node | None, dialect: Dialect, doc: str = "doc", indexed: frozenset[ast.Path] = frozenset()
) -> SQLFilter:
    """Compile a query (``None``: every document) to SQL plus the part Python must check.

    ``indexed`` names the paths that have an index, where the dialect picks its SQL form
    by that (PostgreSQL answers equality on them with GIN containment).
    """
    compiler = SQLCompiler(dialect, doc, indexed)
    if node is None:
        return SQLFilter(compiler.TRUE, compiler.TRUE, True, None)
    cond = compiler.cond(node)
    if not dialect.text_holds_nul and any(_has_nul(p) for p in cond.sure.params + cond.maybe.params):
        # PostgreSQL's text cannot hold NUL (no stored document can either): a query
        # naming one is answered by Python rather than refused by the server.
        return SQLFilter(compiler.TRUE, compiler.FALSE, False, node)
    if cond.exact:
        return SQLFilter(cond.maybe, cond.maybe, True, None)
    return SQLFilter(cond.maybe, cond.sure, False, node)
