"""MongoDB-style dict filters (``{'age': {'$lt': 30}}``), parsed into the query AST.

:func:`parse_filter` builds the same nodes as ``where(...)`` (:mod:`microdb.query.ast`), so
every engine (the compiled Python predicate, the index planner, the SQL compilers) runs a
dict filter with no code of its own. MongoDB's semantics are spelled out with those nodes:

- **Paths.** Dot paths (:mod:`microdb.query.fields`): ``'address.city'`` walks into
  sub-documents; a numeric step (``'tags.0'``) indexes an array. A path that meets an
  array of sub-documents *fans out*: the condition holds if it holds for any element
  (``{'items.sku': 'x'}`` matches ``{'items': [{'sku': 'x'}]}``). Fan-out is one
  ``Traverse(path, leaf)`` node beside the leaf on the plain path; one array level is
  expanded at each step, into elements that are sub-documents, never arrays of arrays
  (``{'a.0': 3}`` does not match ``{'a': [[3]]}``).
- **Arrays at the end of a path.** Equality, ``$in``, ranges, ``$regex``, ``$type`` and
  ``$mod`` hold when they hold for the value itself *or* for one of its elements
  (``{'tags': 'x'}`` matches ``{'tags': ['x', 'y']}``); ``$size``, ``$elemMatch`` and
  ``$exists`` look at the value itself.
- **Missing and null.** ``{'f': None}`` matches when a value reached is ``None`` (or an array
  holding ``None``) or when the path reaches no value at all; ``$ne`` and ``$nin`` are
  the negations of equality and ``$in``, so they match documents without the field.
- **Kinds.** Comparisons follow :mod:`microdb.query.values`: values of different kinds
  never compare (``{'n': {'$gt': 1}}`` does not match ``{'n': 'a'}``) and ``True`` is not
  ``1``.

Where a condition can use an index, it is written with the nodes the planner understands
(``Compare``, ``OneOf``, ``AnyOf`` over values, ``ElemMatch`` of a ``Compare`` on ``()``):
``{'age': 30}`` is ``Compare(('age',), 'eq', 30) | AnyOf(('age',), (30,))``.

An unknown operator, a malformed operand or an operator in the wrong place raises
:class:`~microdb.errors.QueryError` naming the operator and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from microdb.errors import QueryError
from microdb.query.ast import (
    MAX_DEPTH,
    And,
    AnyOf,
    Compare,
    Const,
    ElemMatch,
    Exists,
    Mod,
    Node,
    Not,
    OneOf,
    Or,
    Path,
    Regex,
    Size,
    Traverse,
    TypeIs,
)
from microdb.query.fields import dot_path

__all__ = ["TYPE_CODES", "TYPE_NAMES", "condition_on_values", "parse_filter"]

#: ``$type`` numbers (BSON type codes) MicroDB can hold, and the name each stands for.
TYPE_CODES: dict[int, str] = {
    1: "double",
    2: "string",
    3: "object",
    4: "array",
    5: "binData",
    8: "bool",
    9: "date",
    10: "null",
    16: "int",
    18: "long",
    19: "decimal",
}

#: Every ``$type`` name: MongoDB's aliases, plus MicroDB's own kinds for its rich types.
TYPE_NAMES: frozenset[str] = frozenset(TYPE_CODES.values()) | {
    "number",
    "bytes",
    "uuid",
    "datetime",
    "time",
    "timedelta",
}

_LOGICAL = ("$and", "$or", "$nor")
_REGEX_FLAGS: dict[str, int] = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}
_ORDER_OPS: dict[str, str] = {"$gt": "gt", "$gte": "ge", "$lt": "lt", "$lte": "le"}

Leaf = Callable[[Path], Node]


@dataclass(frozen=True)
class _Field:
    """Where an operator applies: the path, its name for messages, and whether arrays expand."""

    steps: Path
    name: str
    #: False inside ``$elemMatch``'s operator form and ``$pull`` conditions, where an
    #: operator sees the array element itself (MongoDB expands no further there).
    expand: bool = True

    def where(self) -> str:
        return f"field {self.name!r}" if self.name else "the array element"


# ---------------------------------------------------------------------------------------
# Helpers: paths, fan-out, literals
# ---------------------------------------------------------------------------------------


def _fan(steps: Path, leaf: Leaf) -> Node:
    """``leaf`` at ``steps``, or at the rest of the path inside any array met on the way."""
    if len(steps) < 2:
        return leaf(steps)
    # One node for every way through arrays: spelling each split of the path as its own
    # ElemMatch branch took 2**(steps - 1) branches (a 20-step path took 84 s).
    return Or.of(leaf(steps), Traverse(steps, leaf(())))


def _reach(f: _Field, leaf: Leaf) -> Node:
    return _fan(f.steps, leaf) if f.expand else leaf(f.steps)


def _is_operators(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and any(
        isinstance(k, str) and k.startswith("$") for k in value
    )


def _literal(value: Any, f: _Field, op: str = "") -> Any:
    """Check that a value compared against holds no operator (a misplaced ``$gt``...)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("$"):
                inside = f" inside {op}" if op else ""
                raise QueryError(
                    f"operator {key!r} at {f.where()}{inside} is in the wrong place: it is inside a "
                    "value to compare with (use a dot path such as 'a.b' for a nested field)"
                )
            _literal(item, f, op)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _literal(item, f, op)
    elif isinstance(value, re.Pattern) and op:
        raise QueryError(f"{op} at {f.where()} cannot take a regular expression; use $regex")
    return value


def _values(operand: Any, f: _Field, op: str) -> list[Any]:
    if not isinstance(operand, (list, tuple, set, frozenset)):
        raise QueryError(f"{op} at {f.where()} needs an array of values, got {operand!r:.60}")
    return list(operand)


# ---------------------------------------------------------------------------------------
# Leaf conditions (one path, no fan-out)
# ---------------------------------------------------------------------------------------


def _eq_leaf(value: Any, elements: bool) -> Leaf:
    def leaf(p: Path) -> Node:
        node = Compare(p, "eq", value)
        return Or.of(node, AnyOf(p, (value,))) if elements else node

    return leaf


def _in_leaf(values: tuple[Any, ...], elements: bool) -> Leaf:
    def leaf(p: Path) -> Node:
        node = OneOf(p, values)
        return Or.of(node, AnyOf(p, values)) if elements else node

    return leaf


def _elementwise(make: Callable[[Path], Node], elements: bool) -> Leaf:
    """``make(p)`` on the value, or (when arrays expand) on one of its elements."""

    def leaf(p: Path) -> Node:
        node = make(p)
        return Or.of(node, ElemMatch(p, make(()))) if elements else node

    return leaf


def _null(f: _Field) -> Node:
    present = _reach(f, _eq_leaf(None, f.expand))
    if not f.steps:
        return present  # an array element always exists
    return Or.of(present, Not(_reach(f, Exists)))


def _eq(f: _Field, value: Any, op: str = "") -> Node:
    if isinstance(value, re.Pattern):
        if op:
            raise QueryError(f"{op} at {f.where()} cannot take a regular expression; use $regex")
        return _regex_node(f, value.pattern, value.flags & ~re.UNICODE)
    if value is None:
        return _null(f)
    return _reach(f, _eq_leaf(_literal(value, f, op), f.expand))


def _regex_node(f: _Field, pattern: Any, flags: int) -> Node:
    if not isinstance(pattern, str):
        raise QueryError(f"$regex at {f.where()} needs a string pattern, got {pattern!r:.60}")
    try:
        Regex((), pattern, flags, "search")
    except QueryError as exc:
        raise QueryError(f"$regex at {f.where()}: {exc}") from exc
    return _reach(f, _elementwise(lambda p: Regex(p, pattern, flags, "search"), f.expand))


# ---------------------------------------------------------------------------------------
# Field operators: {'field': {'$op': operand, ...}}
# ---------------------------------------------------------------------------------------


def _op_eq(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    return _eq(f, operand, "$eq")


def _op_ne(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    return Not(_eq(f, operand, "$ne"))


def _order(op: str) -> Callable[[_Field, Any, Mapping[str, Any]], Node]:
    name = {v: k for k, v in _ORDER_OPS.items()}[op]

    def handler(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
        if operand is None:
            # MongoDB: null is only equal to null (or missing); nothing is less or greater.
            return _null(f) if op in ("ge", "le") else Const(False)
        _literal(operand, f, name)
        if isinstance(operand, float) and math.isnan(operand):
            return Const(False)
        return _reach(f, _elementwise(lambda p: Compare(p, op, operand), f.expand))

    return handler


def _op_in(f: _Field, operand: Any, ops: Mapping[str, Any], op: str = "$in") -> Node:
    values = _values(operand, f, op)
    plain: list[Any] = []
    branches: list[Node] = []
    for value in values:
        if isinstance(value, re.Pattern):
            branches.append(_regex_node(f, value.pattern, value.flags))
        elif value is None:
            branches.append(_null(f))
        else:
            plain.append(_literal(value, f, op))
    if plain:
        branches.insert(0, _reach(f, _in_leaf(tuple(plain), f.expand)))
    return Or.of(*branches) if branches else Const(False)


def _op_nin(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    return Not(_op_in(f, operand, ops, "$nin"))


def _op_exists(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    if not isinstance(operand, (bool, int, float)) and operand is not None:
        raise QueryError(f"$exists at {f.where()} needs true or false, got {operand!r:.60}")
    exists = _reach(f, Exists)
    return exists if operand else Not(exists)


def _op_regex(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    flags = 0
    if isinstance(operand, re.Pattern):
        flags = operand.flags & ~re.UNICODE
        operand = operand.pattern
    options = ops.get("$options", "")
    if not isinstance(options, str):
        raise QueryError(f"$options at {f.where()} must be a string of flags, got {options!r:.60}")
    for letter in options:
        flag = _REGEX_FLAGS.get(letter)
        if flag is None:
            raise QueryError(f"$options at {f.where()}: unknown regex option {letter!r} (use i, m, s, x)")
        flags |= flag
    return _regex_node(f, operand, flags)


def _op_options(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    if "$regex" not in ops:
        raise QueryError(f"$options at {f.where()} needs a $regex beside it")
    return Const(True)  # read by $regex


def _op_not(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    if isinstance(operand, re.Pattern):
        return Not(_regex_node(f, operand.pattern, operand.flags & ~re.UNICODE))
    if not _is_operators(operand):
        raise QueryError(
            f"$not at {f.where()} needs operators (such as {{'$gt': 5}}) or a regular expression, "
            f"got {operand!r:.60}"
        )
    return Not(_operators(f, operand))


def _op_all(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    values = _values(operand, f, "$all")
    if not values:
        return Const(False)  # MongoDB: $all of nothing matches nothing
    parts: list[Node] = []
    for value in values:
        if isinstance(value, Mapping) and _is_operators(value):
            if list(value) != ["$elemMatch"]:
                raise QueryError(
                    f"$all at {f.where()}: an element may be a value or {{'$elemMatch': ...}}, "
                    f"got {value!r:.60}"
                )
            parts.append(_op_elem_match(f, value["$elemMatch"], value))
        else:
            parts.append(_eq(f, value))
    return And.of(*parts)


def _op_elem_match(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    if not isinstance(operand, Mapping) or not operand:
        raise QueryError(f"$elemMatch at {f.where()} needs a non-empty mapping, got {operand!r:.60}")
    keys = list(operand)
    label = f"{f.name}.$elemMatch" if f.name else "$elemMatch"
    dollar = [k for k in keys if isinstance(k, str) and k.startswith("$")]
    if dollar and len(dollar) == len(keys) and not any(k in _LOGICAL for k in keys):
        # Operator form: each operator applies to the element itself.
        cond = _operators(_Field((), label, expand=False), operand)
    else:
        wrong = [k for k in dollar if k not in _LOGICAL]
        if wrong:
            raise QueryError(
                f"$elemMatch at {f.where()} mixes operators ({wrong[0]!r}) with fields; use one form"
            )
        # Query form: the element is a sub-document the filter applies to.
        cond = And.of(TypeIs((), ("object",)), _document(operand, label))
    return _reach(f, lambda p: ElemMatch(p, cond))


def _op_size(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    if isinstance(operand, float) and operand.is_integer():
        operand = int(operand)
    if not isinstance(operand, int) or isinstance(operand, bool) or operand < 0:
        raise QueryError(f"$size at {f.where()} needs a non-negative integer, got {operand!r:.60}")
    size = operand
    return _reach(f, lambda p: Size(p, size))


def _type_name(value: Any, f: _Field) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        name = TYPE_CODES.get(value)
        if name is None:
            raise QueryError(f"$type at {f.where()}: type number {value} is not one MicroDB can hold")
        return name
    if isinstance(value, str) and value in TYPE_NAMES:
        return value
    raise QueryError(
        f"$type at {f.where()}: unknown type {value!r:.60} (use one of {', '.join(sorted(TYPE_NAMES))})"
    )


def _op_type(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    raw = operand if isinstance(operand, (list, tuple)) else [operand]
    if not raw:
        raise QueryError(f"$type at {f.where()} needs at least one type")
    names = tuple(dict.fromkeys(_type_name(v, f) for v in raw))
    return _reach(f, _elementwise(lambda p: TypeIs(p, names), f.expand))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _op_mod(f: _Field, operand: Any, ops: Mapping[str, Any]) -> Node:
    if not isinstance(operand, (list, tuple)) or len(operand) != 2 or not all(map(_number, operand)):
        raise QueryError(f"$mod at {f.where()} needs [divisor, remainder], got {operand!r:.60}")
    try:
        # MongoDB truncates both toward zero.
        divisor, remainder = int(operand[0]), int(operand[1])
    except (ValueError, OverflowError) as exc:
        raise QueryError(f"$mod at {f.where()} needs finite numbers, got {operand!r:.60}") from exc
    if divisor == 0:
        raise QueryError(f"$mod at {f.where()}: the divisor cannot be 0")
    return _reach(f, _elementwise(lambda p: Mod(p, divisor, remainder), f.expand))


_FIELD_OPS: dict[str, Callable[[_Field, Any, Mapping[str, Any]], Node]] = {
    "$eq": _op_eq,
    "$ne": _op_ne,
    "$gt": _order("gt"),
    "$gte": _order("ge"),
    "$lt": _order("lt"),
    "$lte": _order("le"),
    "$in": _op_in,
    "$nin": _op_nin,
    "$exists": _op_exists,
    "$regex": _op_regex,
    "$options": _op_options,
    "$not": _op_not,
    "$all": _op_all,
    "$elemMatch": _op_elem_match,
    "$size": _op_size,
    "$type": _op_type,
    "$mod": _op_mod,
}


def _operators(f: _Field, ops: Mapping[str, Any]) -> Node:
    parts: list[Node] = []
    for op, operand in ops.items():
        if not isinstance(op, str) or not op.startswith("$"):
            raise QueryError(
                f"{f.where()} mixes operators and plain fields ({op!r}); use one form or a dot path"
            )
        handler = _FIELD_OPS.get(op)
        if handler is None:
            if op in _TOP_LEVEL:
                raise QueryError(f"{op} at {f.where()} is in the wrong place: it belongs at the top level")
            raise QueryError(f"unknown operator {op!r} at {f.where()}")
        node = handler(f, operand, ops)
        if not (isinstance(node, Const) and node.truth):
            parts.append(node)
    return And.of(*parts) if parts else Const(True)


# ---------------------------------------------------------------------------------------
# Documents: {'field': value-or-operators, '$and': [...], ...}
# ---------------------------------------------------------------------------------------


def _clauses(operand: Any, op: str, context: str) -> list[Node]:
    where = f" in {context}" if context else ""
    if not isinstance(operand, (list, tuple)) or not operand:
        raise QueryError(f"{op}{where} needs a non-empty array of filters, got {operand!r:.60}")
    out = []
    for clause in operand:
        if not isinstance(clause, Mapping):
            raise QueryError(f"{op}{where}: every clause must be a filter document, got {clause!r:.60}")
        out.append(_document(clause, context))
    return out


def _top_and(operand: Any, context: str) -> Node:
    return And.of(*_clauses(operand, "$and", context))


def _top_or(operand: Any, context: str) -> Node:
    return Or.of(*_clauses(operand, "$or", context))


def _top_nor(operand: Any, context: str) -> Node:
    return Not(Or.of(*_clauses(operand, "$nor", context)))


def _top_comment(operand: Any, context: str) -> Node:
    return Const(True)  # MongoDB's $comment annotates a query and never filters


_TOP_LEVEL: dict[str, Callable[[Any, str], Node]] = {
    "$and": _top_and,
    "$or": _top_or,
    "$nor": _top_nor,
    "$comment": _top_comment,
}


def _field_condition(f: _Field, value: Any) -> Node:
    if isinstance(value, re.Pattern):
        return _regex_node(f, value.pattern, value.flags & ~re.UNICODE)
    if _is_operators(value):
        return _operators(f, value)
    return _eq(f, value)


def _document(filter: Mapping[str, Any], context: str = "") -> Node:
    if not isinstance(filter, Mapping):
        raise QueryError(f"a filter must be a mapping, got {type(filter).__name__}: {filter!r:.60}")
    parts: list[Node] = []
    for key, value in filter.items():
        if isinstance(key, str) and key.startswith("$"):
            handler = _TOP_LEVEL.get(key)
            if handler is None:
                where = f" in {context}" if context else " at the top level"
                if key in _FIELD_OPS:
                    raise QueryError(f"{key}{where} is in the wrong place: it applies to a field, "
                                     f"as in {{'field': {{{key!r}: ...}}}}")
                raise QueryError(f"unknown operator {key!r}{where}")
            node = handler(value, context)
        else:
            steps = dot_path(key, context=context)
            name = f"{context}.{key}" if context else key
            node = _field_condition(_Field(steps, name), value)
        if not (isinstance(node, Const) and node.truth):
            parts.append(node)
    return And.of(*parts) if parts else Const(True)


def _check_depth(filter: Any) -> None:
    """Refuse a filter nesting deeper than the query limit, before parsing recurses into it."""
    stack: list[tuple[Any, int]] = [(filter, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryError(
                f"a filter may nest at most {MAX_DEPTH} levels of mappings and arrays "
                "(operators, values and clauses together)"
            )
        if isinstance(value, Mapping):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)


def parse_filter(filter: Mapping[str, Any]) -> Node:
    """The query node of a MongoDB-style filter document (``{}`` matches every document).

    Raises ``QueryError`` for an unknown operator, a malformed operand or an operator in
    the wrong place, naming it and the field it was found at, and for a filter nesting
    more than :data:`~microdb.query.ast.MAX_DEPTH` levels deep.
    """
    _check_depth(filter)
    return _document(filter)


def condition_on_values(cond: Any) -> Node:
    """A node testing one value (path ``()``), for ``$pull``'s conditions on array elements.

    ``cond`` is operators (``{'$gte': 6}``), a regular expression, or a filter document
    (``{'sku': 'x'}``, matched against elements that are sub-documents).
    """
    if isinstance(cond, re.Pattern):
        return _regex_node(_Field((), "", expand=False), cond.pattern, cond.flags & ~re.UNICODE)
    _check_depth(cond)
    if isinstance(cond, Mapping) and cond:
        keys = list(cond)
        dollar = [k for k in keys if isinstance(k, str) and k.startswith("$")]
        if dollar and len(dollar) == len(keys) and not any(k in _LOGICAL for k in keys):
            return _operators(_Field((), "", expand=False), cond)
        return And.of(TypeIs((), ("object",)), _document(cond, "$pull"))
    raise QueryError(f"not a condition on array elements: {cond!r:.60}")
