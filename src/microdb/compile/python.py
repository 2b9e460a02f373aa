"""Compile a query AST into fast Python functions, once per distinct query.

Each node becomes a Python *expression* in generated source; the expression is then
wrapped three ways (a predicate, a counting loop and an id-collecting loop) and compiled
with ``compile()``. The tree is therefore never walked per document: a table scan runs
one tight loop of specialised comparisons. Results are cached by the node (nodes hash
structurally), so ``where('a') == 1`` built twice compiles once.

The rules for comparing values of different kinds live in :mod:`microdb.query.values`;
the generated code implements exactly those rules, with fast paths for the common operand
kinds (strings and numbers) and the general helpers otherwise.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from microdb.errors import QueryError
from microdb.query import ast
from microdb.query.values import MISSING, kind, sort_key, values_equal

__all__ = ["Compiled", "compile_query", "predicate", "resolve"]

_NUMS = frozenset((int, float, Decimal))
#: Nodes nested in one generated expression before the rest goes to a function of its own.
_NESTING = 40
_SEQS = (list, tuple)
_ARRAYS = (list, tuple, set, frozenset)


def resolve(value: Any, path: ast.Path) -> Any:
    """The value at ``path`` inside ``value``, or ``MISSING``."""
    for step in path:
        if type(step) is ast.MapStep:
            value = step.func(value)
            continue
        if isinstance(value, Mapping):
            try:
                value = value[step]
            except (KeyError, TypeError):
                return MISSING
        elif isinstance(value, _SEQS):
            if isinstance(step, str):
                if not (step.isdigit() and step.isascii()):
                    return MISSING
                step = int(step)
            try:
                value = value[step]  # type: ignore[index]
            except (IndexError, TypeError):
                return MISSING
        else:
            return MISSING
    return value


def _step(value: Any, step: Any) -> Any:
    """The value one step below ``value`` (``resolve`` for a single step), or ``MISSING``."""
    if isinstance(value, Mapping):
        return value.get(step, MISSING)
    if isinstance(value, _SEQS) and type(step) is str and step.isdigit() and step.isascii():
        index = int(step)
        return value[index] if index < len(value) else MISSING
    return MISSING


def _traverse(doc: Any, path: ast.Path, pred: Callable[[Any], bool]) -> bool:
    """Whether a value reached along ``path`` through an array matches (see ``ast.Traverse``)."""
    direct = doc
    through: list[Any] = []  # values reached through at least one array
    for i, step in enumerate(path):
        found: list[Any] = []
        for value in through:
            below = _step(value, step)
            if below is not MISSING:
                found.append(below)
            if isinstance(value, _SEQS):
                found.extend(b for e in value if isinstance(e, Mapping) and (b := e.get(step, MISSING)) is not MISSING)
        if i and isinstance(direct, _SEQS):
            found.extend(b for e in direct if isinstance(e, Mapping) and (b := e.get(step, MISSING)) is not MISSING)
        through = found
        direct = _step(direct, step) if direct is not MISSING else MISSING
        if direct is MISSING and not through:
            return False
    return any(pred(value) for value in through)


def _ordered(a: Any, b: Any, op: str) -> bool:
    """``a OP b`` for values of one kind; false across kinds or when Python cannot order them."""
    if a is MISSING:
        return False
    ka = kind(a)
    if ka != kind(b) or ka in ("null",):
        return False
    try:
        if ka in ("object", "array"):
            a, b = sort_key(a), sort_key(b)
        if op == "lt":
            return bool(a < b)
        if op == "le":
            return bool(a <= b)
        if op == "gt":
            return bool(a > b)
        return bool(a >= b)
    except TypeError:
        return False


def _contains(seq: Iterable[Any], value: Any) -> bool:
    return any(values_equal(item, value) for item in seq)


def _one_of(value: Any, values: tuple[Any, ...]) -> bool:
    return value is not MISSING and _contains(values, value)


def _any_of(value: Any, values: tuple[Any, ...]) -> bool:
    if not isinstance(value, _ARRAYS):
        return False
    return any(_contains(values, item) for item in value)


def _all_of(value: Any, values: tuple[Any, ...]) -> bool:
    if not isinstance(value, (list, tuple, set, frozenset)):
        return False
    return all(_contains(value, item) for item in values)


def _any_str(value: Any, strings: frozenset[str]) -> bool:
    # Strings only: under MicroDB's equality only a string equals a string, and a set
    # lookup finds exactly those (stored strings are plain str), without a call per element.
    try:
        return not strings.isdisjoint(value)
    except TypeError:  # an unhashable element (a list, a dict) among them
        return any(type(item) is str and item in strings for item in value)


def _all_str(value: Any, strings: frozenset[str]) -> bool:
    if not isinstance(value, (list, tuple, set, frozenset)):
        return False
    try:
        return strings.issubset(value)
    except TypeError:
        return strings.issubset([item for item in value if type(item) is str])


def _any_match(value: Any, pred: Callable[[Any], bool]) -> bool:
    return isinstance(value, (list, tuple)) and any(pred(item) for item in value)


def _all_match(value: Any, pred: Callable[[Any], bool]) -> bool:
    return isinstance(value, (list, tuple)) and all(pred(item) for item in value)


def _fragment(value: Any, fragment: Mapping[str, Any]) -> bool:
    if not isinstance(value, Mapping):
        return False
    for key, expected in fragment.items():
        if key not in value or not values_equal(value[key], expected):
            return False
    return True


_TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "double": ("float",),
    "int": ("int",),
    "long": ("int",),
    "decimal": ("decimal",),
    "number": ("int", "float", "decimal"),
    "string": ("string",),
    "object": ("object",),
    "array": ("array",),
    "binData": ("bytes",),
    "bool": ("bool",),
    "null": ("null",),
    "date": ("datetime",),
}


def _type_is(value: Any, names: tuple[str, ...]) -> bool:
    if value is MISSING:
        return False
    k = kind(value)
    fine = {"int": int, "float": float, "decimal": Decimal}
    for name in names:
        for alias in _TYPE_ALIASES.get(name, (name,)):
            typ = fine.get(alias)
            if typ is not None:
                if type(value) is typ:
                    return True
            elif alias == k:
                return True
    return False


def _mod(value: Any, divisor: Any, remainder: Any) -> bool:
    if type(value) not in _NUMS or not divisor:
        return False
    try:
        # MongoDB truncates toward zero before taking the remainder.
        n, d = int(value), int(divisor)
    except (TypeError, ValueError, OverflowError):
        return False
    # ... and its remainder has the sign of the dividend (C's %, not Python's): -5 mod 3 is -2.
    r = abs(n) % abs(d)
    return bool((-r if n < 0 else r) == remainder)


#: Nodes that test the value at their ``path`` and are false when it is missing.
_LEAVES = (ast.Compare, ast.AnyOf, ast.ElemMatch, ast.OneOf, ast.Regex, ast.TypeIs, ast.Mod, ast.Size,
           ast.Exists)


def _leaf_path(node: ast.Node) -> ast.Path:
    return node.path if type(node) in _LEAVES else ()  # type: ignore[attr-defined]


def _by_path(items: tuple[ast.Node, ...]) -> list[list[ast.Node]]:
    """The items in order, neighbouring leaves on one same non-empty path grouped together."""
    groups: list[list[ast.Node]] = []
    for item in items:
        path = _leaf_path(item)
        if path and groups and _leaf_path(groups[-1][0]) == path:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _rebased(node: ast.Node) -> ast.Node:
    """The same leaf testing the value itself (path ``()``)."""
    args = [() if f == "path" else getattr(node, f) for f in node._fields]
    return type(node)(*args)


class _Gen:
    """Generates the source of one expression and the names it uses."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {
            "MISSING": MISSING,
            "_NUMS": _NUMS,
            "_SEQS": _SEQS,
            "_SEQ_CLASSES": frozenset(_SEQS),
            "_ARRAY_CLASSES": frozenset(_ARRAYS),
            "_resolve": resolve,
            "_ordered": _ordered,
            "_eq": values_equal,
            "_one_of": _one_of,
            "_any_of": _any_of,
            "_any_str": _any_str,
            "_all_str": _all_str,
            "_all_of": _all_of,
            "_any_match": _any_match,
            "_all_match": _all_match,
            "_traverse": _traverse,
            "_fragment": _fragment,
            "_type_is": _type_is,
            "_mod": _mod,
            "_bool": bool,
            "_str": str,
            "_dict": dict,
            "_len": len,
        }
        self.n = 0
        self.depth = 0

    def name(self, value: Any, prefix: str = "c") -> str:
        self.n += 1
        name = f"_{prefix}{self.n}"
        self.ns[name] = value
        return name

    def var(self) -> str:
        self.n += 1
        return f"_v{self.n}"

    # -- paths ------------------------------------------------------------------------
    def value_at(self, path: ast.Path, doc: str, is_dict: bool) -> str:
        """An expression for the value at ``path`` (``MISSING`` when absent)."""
        if not path:
            return doc
        simple = all(type(step) is str for step in path)
        if simple and is_dict and len(path) == 1:
            return f"{doc}.get({path[0]!r}, MISSING)"
        if simple and is_dict and len(path) == 2:
            v = self.var()
            return (
                f"({v}.get({path[1]!r}, MISSING) if ({v} := {doc}.get({path[0]!r})).__class__ "
                f"is _dict else _resolve({v}, {path[1:]!r}) if {v} is not None else MISSING)"
            )
        return f"_resolve({doc}, {self.name(path, 'p')})"

    # -- nodes ------------------------------------------------------------------------
    def expr(self, node: ast.Node, doc: str, is_dict: bool = True) -> str:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise QueryError(f"the Python engine cannot evaluate {type(node).__name__} nodes")
        if self.depth >= _NESTING and node.depth > 1:
            # Python's parser refuses 200 nested parentheses: a deep query is cut into
            # functions that call each other, each with a shallow expression.
            return f"{self.name(predicate(node, is_dict=is_dict), 'q')}({doc})"
        self.depth += 1
        try:
            return str(method(node, doc, is_dict))
        finally:
            self.depth -= 1

    def _Const(self, node: ast.Const, doc: str, is_dict: bool) -> str:
        return "True" if node.truth else "False"

    def _And(self, node: ast.And, doc: str, is_dict: bool) -> str:
        return "(" + " and ".join(self.expr(n, doc, is_dict) for n in node.items) + ")"

    def _Or(self, node: ast.Or, doc: str, is_dict: bool) -> str:
        parts = []
        for group in _by_path(node.items):
            if len(group) == 1:
                parts.append(self.expr(group[0], doc, is_dict))
                continue
            # Dict filters write {'f': v} as (f == v) | f.any([v]): fetch f once. Every
            # leaf is false on a missing value, so the MISSING guard changes no answer.
            v = self.var()
            x = self.value_at(group[0].path, doc, is_dict)  # type: ignore[attr-defined]
            inner = " or ".join(self.expr(_rebased(n), v, False) for n in group)
            parts.append(f"((({v} := {x}) is not MISSING) and ({inner}))")
        return "(" + " or ".join(parts) + ")"

    def _Not(self, node: ast.Not, doc: str, is_dict: bool) -> str:
        return f"(not {self.expr(node.item, doc, is_dict)})"

    def _eq_expr(self, x: str, operand: Any) -> str:
        t = type(operand)
        if t is str:
            return f"{x} == {self.name(operand)}"
        if t in (int, float, Decimal):
            if t is float and operand != operand:
                return "False"
            v = self.var()
            return f"(({v} := {x}) == {self.name(operand)} and {v}.__class__ is not bool)"
        if operand is None:
            return f"{x} is None"
        if t is bool:
            return f"{x} is {operand!r}"
        return f"_eq({x}, {self.name(operand)})"

    def _Compare(self, node: ast.Compare, doc: str, is_dict: bool) -> str:
        x = self.value_at(node.path, doc, is_dict)
        op, operand = node.op, node.operand
        if op == "eq":
            return self._eq_expr(x, operand)
        if op == "ne":
            v = self.var()
            return f"(({v} := {x}) is not MISSING and not ({self._eq_expr(v, operand)}))"
        symbol = ast.COMPARE_OPS[op]
        t = type(operand)
        c = self.name(operand)
        if t in (int, float, Decimal):
            v = self.var()
            return f"(({v} := {x}).__class__ in _NUMS and {v} {symbol} {c})"
        if t is str:
            v = self.var()
            return f"(({v} := {x}).__class__ is _str and {v} {symbol} {c})"
        return f"_ordered({x}, {c}, {op!r})"

    def _Exists(self, node: ast.Exists, doc: str, is_dict: bool) -> str:
        return f"({self.value_at(node.path, doc, is_dict)} is not MISSING)"

    def _Regex(self, node: ast.Regex, doc: str, is_dict: bool) -> str:
        compiled = re.compile(node.pattern, node.flags)
        fn = self.name(getattr(compiled, node.mode), "re")
        v = self.var()
        return f"(({v} := {self.value_at(node.path, doc, is_dict)}).__class__ is _str and {fn}({v}) is not None)"

    def _Test(self, node: ast.Test, doc: str, is_dict: bool) -> str:
        fn = self.name(node.func, "f")
        args = "".join(f", {self.name(a)}" for a in node.args)
        v = self.var()
        return f"(({v} := {self.value_at(node.path, doc, is_dict)}) is not MISSING and _bool({fn}({v}{args})))"

    def _sub(self, cond: ast.Node) -> str:
        return self.name(predicate(cond, is_dict=False), "q")

    # The class guards below only skip a helper call for non-array values, which dict
    # filters test on every document (``{'f': v}`` also asks "is v an element of f").
    # Stored documents hold exact list/tuple/set types (serialization checks them in).
    def _AnyOf(self, node: ast.AnyOf, doc: str, is_dict: bool) -> str:
        x = self.value_at(node.path, doc, is_dict)
        v = self.var()
        if isinstance(node.cond, ast.Node):
            return f"(({v} := {x}).__class__ in _SEQ_CLASSES and _any_match({v}, {self._sub(node.cond)}))"
        if node.cond and all(type(c) is str for c in node.cond):
            return f"(({v} := {x}).__class__ in _ARRAY_CLASSES and _any_str({v}, {self.name(frozenset(node.cond))}))"
        return f"(({v} := {x}).__class__ in _ARRAY_CLASSES and _any_of({v}, {self.name(node.cond)}))"

    def _AllOf(self, node: ast.AllOf, doc: str, is_dict: bool) -> str:
        x = self.value_at(node.path, doc, is_dict)
        if isinstance(node.cond, ast.Node):
            return f"_all_match({x}, {self._sub(node.cond)})"
        if node.cond and all(type(c) is str for c in node.cond):
            return f"_all_str({x}, {self.name(frozenset(node.cond))})"
        return f"_all_of({x}, {self.name(node.cond)})"

    def _ElemMatch(self, node: ast.ElemMatch, doc: str, is_dict: bool) -> str:
        v = self.var()
        x = self.value_at(node.path, doc, is_dict)
        return f"(({v} := {x}).__class__ in _SEQ_CLASSES and _any_match({v}, {self._sub(node.cond)}))"

    def _Traverse(self, node: ast.Traverse, doc: str, is_dict: bool) -> str:
        return f"_traverse({doc}, {self.name(node.path, 'p')}, {self._sub(node.cond)})"

    def _OneOf(self, node: ast.OneOf, doc: str, is_dict: bool) -> str:
        x = self.value_at(node.path, doc, is_dict)
        if node.values and all(type(v) is str for v in node.values):
            v = self.var()
            return f"(({v} := {x}).__class__ is _str and {v} in {self.name(frozenset(node.values))})"
        return f"_one_of({x}, {self.name(node.values)})"

    def _Fragment(self, node: ast.Fragment, doc: str, is_dict: bool) -> str:
        return f"_fragment({self.value_at(node.path, doc, is_dict)}, {self.name(node.fragment)})"

    def _Size(self, node: ast.Size, doc: str, is_dict: bool) -> str:
        v = self.var()
        return f"(({v} := {self.value_at(node.path, doc, is_dict)}).__class__ in _SEQS and _len({v}) == {self.name(node.size)})"

    def _TypeIs(self, node: ast.TypeIs, doc: str, is_dict: bool) -> str:
        return f"_type_is({self.value_at(node.path, doc, is_dict)}, {self.name(node.types)})"

    def _Mod(self, node: ast.Mod, doc: str, is_dict: bool) -> str:
        x = self.value_at(node.path, doc, is_dict)
        return f"_mod({x}, {self.name(node.divisor)}, {self.name(node.remainder)})"

    def _Call(self, node: ast.Call, doc: str, is_dict: bool) -> str:
        return f"_bool({self.name(node.func, 'f')}({doc}))"


class Compiled:
    """The functions generated for one query.

    Attributes:
        predicate: ``predicate(doc) -> bool``.
        count: ``count(docs) -> int``, the number of matching documents.
        select: ``select(items) -> list`` of the keys of matching ``(key, doc)`` pairs.
        source: the generated source, for ``explain()`` and debugging.
    """

    __slots__ = ("predicate", "count", "select", "source")

    def __init__(self, node: ast.Node, *, is_dict: bool = True):
        gen = _Gen()
        e = gen.expr(node, "doc", is_dict)
        self.source = (
            f"def predicate(doc):\n    return {e}\n\n"
            f"def count(docs):\n    n = 0\n    for doc in docs:\n        if {e}:\n            n += 1\n    return n\n\n"
            f"def select(items):\n    return [key for key, doc in items if {e}]\n"
        )
        code = compile(self.source, f"<microdb query {node!r:.80}>", "exec")
        exec(code, gen.ns)  # noqa: S102 - source is generated from the AST above, never from input text
        self.predicate: Callable[[Any], bool] = gen.ns["predicate"]
        self.count: Callable[[Iterable[Any]], int] = gen.ns["count"]
        self.select: Callable[[Iterable[tuple[Any, Any]]], list[Any]] = gen.ns["select"]


_CACHE_SIZE = 512
_cache: OrderedDict[tuple[ast.Node, bool], Compiled] = OrderedDict()
_cache_lock = threading.Lock()


def compile_query(node: ast.Node, *, is_dict: bool = True) -> Compiled:
    """The compiled functions of ``node``, from the cache when it was compiled before."""
    key = (node, is_dict)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    compiled = Compiled(node, is_dict=is_dict)
    with _cache_lock:
        _cache[key] = compiled
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def predicate(node: ast.Node, *, is_dict: bool = True) -> Callable[[Any], bool]:
    """A function telling whether a document matches ``node``."""
    if is_dict:
        return compile_query(node).predicate
    return compile_query(node, is_dict=False).predicate
