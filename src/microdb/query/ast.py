"""The query AST: immutable, hashable nodes that every query syntax builds.

``where('age') < 30``, ``Query.lt('age', 30)`` and ``{'age': {'$lt': 30}}`` all end up as
nodes defined here. Nodes are plain data: compilers elsewhere turn them into a Python
predicate (:mod:`microdb.compile.python`), an index plan (:mod:`microdb.engine.planner`) or SQL
(:mod:`microdb.compile.sql`). Equality and hashing are structural, so a compiled predicate
can be cached by its node.

A *path* is a tuple of steps: a ``str`` (mapping key), an ``int`` (list position, or a
key in a mapping) or a :class:`MapStep` (a function applied to the value so far).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

from microdb.errors import QueryError
from microdb.query.fields import MapStep, Path, Step, parse_field, path_repr

__all__ = [
    "MAX_DEPTH",
    "AllOf",
    "And",
    "AnyOf",
    "Call",
    "Compare",
    "Const",
    "ElemMatch",
    "Exists",
    "Fragment",
    "MapStep",
    "Mod",
    "Node",
    "Not",
    "OneOf",
    "Or",
    "Path",
    "Regex",
    "Size",
    "Test",
    "Traverse",
    "TypeIs",
    "Step",
    "fluent_condition",
    "freeze",
    "path_repr",
    "set_converter",
    "set_evaluator",
]

#: The comparison operators of :class:`Compare`, with the symbol used in reprs.
COMPARE_OPS: dict[str, str] = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
}


#: The deepest nesting of conditions a query may have (see :class:`Node`).
MAX_DEPTH = 200


def freeze(value: Any) -> Any:
    """A hashable stand-in for a query operand (lists, dicts and sets included)."""
    if isinstance(value, Mapping):
        return ("__dict__", tuple(sorted(((k, freeze(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("__set__", frozenset(freeze(v) for v in value))
    if isinstance(value, Node):
        return value
    try:
        hash(value)
    except TypeError:
        return ("__id__", id(value))
    # 1, 1.0 and True are equal in Python but are different operands to MicroDB.
    return (type(value).__name__, value)


_Evaluator = Callable[["Node"], Callable[[Any], bool]]
_Converter = Callable[[Any], "Node"]


class _Hooks:
    """What the layers above register (see the module docstring)."""

    evaluator: _Evaluator | None = None
    converter: _Converter | None = None


_hooks = _Hooks()


def set_evaluator(evaluator: _Evaluator) -> None:
    """Register the function that compiles a node to a predicate (``node(doc)`` calls it)."""
    _hooks.evaluator = evaluator


def set_converter(converter: _Converter) -> None:
    """Register the function that turns anything accepted as a query into a node."""
    _hooks.converter = converter


class Node:
    """Base class of every query node: combine with ``&``, ``|`` and ``~``; call with a document.

    Nesting past :data:`MAX_DEPTH` levels raises ``QueryError`` when the node is built.
    """

    __slots__ = ("_hash", "depth")
    _hash: int
    #: Levels of nesting: 1 for a leaf, one more than its deepest child for the others.
    depth: int
    _fields: ClassVar[tuple[str, ...]] = ()

    def _key(self) -> tuple[Any, ...]:
        return (type(self).__name__,) + tuple(freeze(getattr(self, f)) for f in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Node):
            return NotImplemented
        # A work list, not recursion: equal queries MAX_DEPTH deep would exhaust the stack.
        pending: list[tuple[Node, Node]] = [(self, other)]
        while pending:
            a, b = pending.pop()
            if a is b:
                continue
            if type(a) is not type(b) or hash(a) != hash(b):
                return False
            for name in a._fields:
                x, y = getattr(a, name), getattr(b, name)
                if isinstance(x, Node) and isinstance(y, Node):
                    pending.append((x, y))
                elif name == "items":
                    if len(x) != len(y):
                        return False
                    pending.extend(zip(x, y))
                elif freeze(x) != freeze(y):
                    return False
        return True

    def __hash__(self) -> int:
        return self._hash

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **values: Any) -> None:
        depth = 1
        for name, value in values.items():
            object.__setattr__(self, name, value)
            for child in value if name == "items" else (value,):
                depth = max(depth, child.depth + 1) if isinstance(child, Node) else depth
        if depth > MAX_DEPTH:
            raise QueryError(
                f"a query may nest at most {MAX_DEPTH} levels deep (conditions inside ~, &, |, "
                f"$and, $or, $not, $elemMatch...); this one nests {depth}"
            )
        object.__setattr__(self, "depth", depth)
        try:
            # Hashed now, bottom-up: hashing a deep query later would recurse through it.
            object.__setattr__(self, "_hash", hash(self._key()))
        except RecursionError:
            raise QueryError(f"an operand of {type(self).__name__} nests too deep to compare") from None

    # -- combinators ---------------------------------------------------------------
    def __and__(self, other: Node) -> Node:
        return And.of(self, _as_node(other))

    def __rand__(self, other: Node) -> Node:
        return And.of(_as_node(other), self)

    def __or__(self, other: Node) -> Node:
        return Or.of(self, _as_node(other))

    def __ror__(self, other: Node) -> Node:
        return Or.of(_as_node(other), self)

    def __invert__(self) -> Node:
        return Not(self)

    def __bool__(self) -> bool:
        # ``a < b < c`` and ``x == 1 and y == 2`` silently drop a condition; say so.
        raise QueryError(
            f"a query cannot be used as a bool ({self!r}); combine conditions with & | ~"
        )

    # -- the seed's fluent chain: Query().exists('age').value('name', 'Alice') -------
    def exists(self, field: Any) -> Node:
        """Also require that ``field`` exists (the seed's fluent chain)."""
        return self & Exists(parse_field(field))

    def value(self, field_or_cond: Any, *value: Any) -> Node:
        """Also require a condition, or that ``field`` equals a value (the seed's fluent chain)."""
        return self & fluent_condition(field_or_cond, *value)

    # -- evaluation ------------------------------------------------------------------
    def __call__(self, doc: Mapping[str, Any]) -> bool:
        evaluator = _hooks.evaluator
        if evaluator is None:
            raise QueryError("no query compiler is registered: import microdb first")
        return evaluator(self)(doc)

    def children(self) -> Iterator[Node]:
        """The direct sub-queries of this node."""
        return iter(())

    def __repr__(self) -> str:
        args = ", ".join(repr(getattr(self, f)) for f in self._fields)
        return f"{type(self).__name__}({args})"


def _as_node(value: Any) -> Node:
    if isinstance(value, Node):
        return value
    converter = _hooks.converter
    if converter is None:
        raise QueryError("no query converter is registered: import microdb first")
    return converter(value)


def fluent_condition(field_or_cond: Any, *value: Any) -> Node:
    """The seed's ``value(...)``: ``value(cond)`` is the condition, ``value(field, v)`` is equality."""
    if not value:
        return _as_node(field_or_cond)
    if len(value) != 1:
        raise QueryError("value() takes a condition, or a field and a value")
    return Compare(parse_field(field_or_cond), "eq", value[0])


class Const(Node):
    """Matches every document (``True``) or none (``False``); TinyDB's ``noop()`` is ``Const(True)``."""

    __slots__ = ("truth",)
    _fields = ("truth",)
    truth: bool

    def __init__(self, truth: bool = True):
        self._set(truth=bool(truth))

    def __repr__(self) -> str:
        return "Query().noop()" if self.truth else "Const(False)"


class Compare(Node):
    """``path OP value`` for OP in ``eq ne lt le gt ge``.

    A missing field never matches (not even ``ne``: use ``~(path == value)`` for that). An
    ordering (``lt le gt ge``) against a value of another kind (a string against a number, a
    bool against a number) does not match; ``eq`` treats values of different kinds as
    unequal, so ``True`` is not ``1``, and ``ne`` is ``eq`` negated on a present field.
    """

    __slots__ = ("path", "op", "operand")
    _fields = ("path", "op", "operand")
    path: Path
    op: str
    operand: Any

    def __init__(self, path: Path, op: str, operand: Any):
        if op not in COMPARE_OPS:
            raise QueryError(f"unknown comparison operator {op!r} at {path_repr(path)}")
        self._set(path=tuple(path), op=op, operand=operand)

    def __repr__(self) -> str:
        return f"{path_repr(self.path)} {COMPARE_OPS[self.op]} {self.operand!r}"


class Exists(Node):
    """The path leads to a value (``None`` counts as a value)."""

    __slots__ = ("path",)
    _fields = ("path",)
    path: Path

    def __init__(self, path: Path):
        self._set(path=tuple(path))

    def __repr__(self) -> str:
        return f"{path_repr(self.path)}.exists()"


class Regex(Node):
    """A string value matches a regular expression (``mode`` is ``match`` or ``search``)."""

    __slots__ = ("path", "pattern", "flags", "mode")
    _fields = ("path", "pattern", "flags", "mode")
    path: Path
    pattern: str
    flags: int
    mode: str

    def __init__(self, path: Path, pattern: str, flags: int = 0, mode: str = "match"):
        if isinstance(pattern, re.Pattern):
            flags |= pattern.flags & ~re.UNICODE
            pattern = pattern.pattern
        if not isinstance(pattern, str):
            raise QueryError(f"a regular expression must be a string, got {pattern!r}")
        if mode not in ("match", "search", "fullmatch"):
            raise QueryError(f"unknown regex mode {mode!r}")
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            raise QueryError(f"bad regular expression {pattern!r} at {path_repr(path)}: {exc}") from exc
        self._set(path=tuple(path), pattern=pattern, flags=int(flags), mode=mode)

    def __repr__(self) -> str:
        name = "matches" if self.mode == "match" else self.mode
        extra = f", flags={self.flags}" if self.flags else ""
        return f"{path_repr(self.path)}.{name}({self.pattern!r}{extra})"


class Test(Node):
    """A user function returns true for the value (TinyDB's ``test(fn, *args)``)."""

    __slots__ = ("path", "func", "args")
    _fields = ("path", "func", "args")
    path: Path
    func: Callable[..., Any]
    args: tuple[Any, ...]

    def __init__(self, path: Path, func: Callable[..., Any], args: tuple[Any, ...] = ()):
        if not callable(func):
            raise QueryError(f"test() needs a callable, got {func!r}")
        self._set(path=tuple(path), func=func, args=tuple(args))

    def _key(self) -> tuple[Any, ...]:
        return ("Test", self.path, id(self.func), freeze(self.args))

    def __repr__(self) -> str:
        name = getattr(self.func, "__name__", repr(self.func))
        args = "".join(f", {a!r}" for a in self.args)
        return f"{path_repr(self.path)}.test({name}{args})"


class _ElementCondition(Node):
    """A condition on the elements of a list value (:class:`AnyOf`, :class:`AllOf`).

    ``cond`` is a tuple of values, or a node evaluated with each element as the document,
    as for :class:`ElemMatch`.
    """

    __slots__ = ("path", "cond")
    _fields = ("path", "cond")
    _method: ClassVar[str]
    path: Path
    cond: Node | tuple[Any, ...]

    def __init__(self, path: Path, cond: Node | tuple[Any, ...]):
        self._set(path=tuple(path), cond=cond)

    def children(self) -> Iterator[Node]:
        if isinstance(self.cond, Node):
            yield self.cond

    def __repr__(self) -> str:
        return f"{path_repr(self.path)}.{self._method}({self.cond!r})"


class AnyOf(_ElementCondition):
    """TinyDB's ``any``: some element of a list value is in ``cond`` (or matches it).

    With a tuple of values, the value may be a list, tuple, set or frozenset, and an
    element is "in" when it equals one of the values under MicroDB's equality (kinds
    apart: ``True`` is not ``1``). With a node, the value must be a list or tuple and the
    node is evaluated with each element as the document, as for :class:`ElemMatch`.
    """

    __slots__ = ()
    _method = "any"


class AllOf(_ElementCondition):
    """TinyDB's ``all``: every element matches ``cond``, or the list holds every element of it."""

    __slots__ = ()
    _method = "all"


class OneOf(Node):
    """The value equals one of ``values`` (TinyDB's ``one_of``, MongoDB's ``$in`` on scalars)."""

    __slots__ = ("path", "values")
    _fields = ("path", "values")
    path: Path
    values: tuple[Any, ...]

    def __init__(self, path: Path, values: tuple[Any, ...]):
        self._set(path=tuple(path), values=tuple(values))

    def __repr__(self) -> str:
        return f"{path_repr(self.path)}.one_of({list(self.values)!r})"


class Fragment(Node):
    """The value is a mapping holding every key and value of ``fragment``."""

    __slots__ = ("path", "fragment")
    _fields = ("path", "fragment")
    path: Path
    fragment: Mapping[str, Any]

    def __init__(self, path: Path, fragment: Mapping[str, Any]):
        if not isinstance(fragment, Mapping):
            raise QueryError(f"fragment() needs a mapping, got {fragment!r}")
        self._set(path=tuple(path), fragment=dict(fragment))

    def __repr__(self) -> str:
        prefix = "Query()" if not self.path else path_repr(self.path)
        return f"{prefix}.fragment({self.fragment!r})"


class Size(Node):
    """The value is an array of exactly ``size`` elements (MongoDB's ``$size``).

    Only a ``list`` or ``tuple`` value counts; a missing field, another kind, or a set
    never matches.
    """

    __slots__ = ("path", "size")
    _fields = ("path", "size")
    path: Path
    size: int

    def __init__(self, path: Path, size: int):
        self._set(path=tuple(path), size=size)


class TypeIs(Node):
    """The value is of one of the named types (MongoDB's ``$type``); a missing field never matches.

    Names: ``double`` (a float), ``int`` and ``long`` (an int), ``decimal`` (a Decimal),
    ``number`` (any of those three), ``string``, ``object``, ``array`` (a list, tuple, set
    or frozenset), ``binData`` and ``bytes`` (bytes), ``bool``, ``null``, ``date`` and
    ``datetime`` (a datetime), ``uuid``, ``time`` and ``timedelta``. ``True`` is a
    ``bool``, never a number. :mod:`microdb.query.mongo` only builds these names.
    """

    __slots__ = ("path", "types")
    _fields = ("path", "types")
    path: Path
    types: tuple[str, ...]

    def __init__(self, path: Path, types: tuple[str, ...]):
        self._set(path=tuple(path), types=tuple(types))


class Mod(Node):
    """A number whose remainder by ``divisor`` is ``remainder`` (MongoDB's ``$mod``).

    The value must be a number (``int``, ``float`` or ``Decimal``, never a ``bool``); it is
    truncated toward zero, and the remainder takes the sign of the value, as in C and
    MongoDB (``-5`` mod ``3`` is ``-2``). NaN, infinities and a zero divisor never match.
    """

    __slots__ = ("path", "divisor", "remainder")
    _fields = ("path", "divisor", "remainder")
    path: Path
    divisor: int | float
    remainder: int | float

    def __init__(self, path: Path, divisor: int | float, remainder: int | float):
        self._set(path=tuple(path), divisor=divisor, remainder=remainder)


class _Nested(Node):
    """A condition ``cond`` evaluated on values found at ``path`` (:class:`ElemMatch`, :class:`Traverse`)."""

    __slots__ = ("path", "cond")
    _fields = ("path", "cond")
    path: Path
    cond: Node

    def __init__(self, path: Path, cond: Node):
        self._set(path=tuple(path), cond=cond)

    def children(self) -> Iterator[Node]:
        yield self.cond


class ElemMatch(_Nested):
    """Some element of an array value matches ``cond`` (MongoDB's ``$elemMatch``).

    The value must be a ``list`` or ``tuple``; ``cond`` is evaluated with each element
    as the document, so its paths are relative to the element (``()`` is the element
    itself) and a path into a non-mapping element is missing. Dict filters also use it
    for MongoDB's implicit array traversal (``{'items.sku': 'x'}``).
    """

    __slots__ = ()


class Traverse(_Nested):
    """Some value reached along ``path`` *through an array* matches ``cond`` (dict filters' paths).

    Each step reads the key (or, for a digit step on an array, the position) of the value
    so far, and where that value is an array, also the key of each sub-document element
    (``'items.sku'`` reaches ``items[i].sku``; ``'a.0'`` never reaches inside ``[[...]]``).
    Only values reached through such an element count: dict filters write
    ``leaf(path) | Traverse(path, leaf(()))``. ``cond`` sees each value as the document.
    One pass along the path: the cost never grows with the ways to split the path.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{path_repr(self.path)}.traverse({self.cond!r})"


class Call(Node):
    """A plain Python callable used as a query (``lambda doc: ...``)."""

    __slots__ = ("func",)
    _fields = ("func",)
    func: Callable[[Mapping[str, Any]], Any]

    def __init__(self, func: Callable[[Mapping[str, Any]], Any]):
        self._set(func=func)

    def _key(self) -> tuple[Any, ...]:
        return ("Call", id(self.func))

    def __repr__(self) -> str:
        return f"Call({getattr(self.func, '__name__', repr(self.func))})"


class _Junction(Node):
    """Sub-queries joined by one operator (:class:`And`, :class:`Or`), kept flat."""

    __slots__ = ("items",)
    _fields = ("items",)
    _symbol: ClassVar[str]
    items: tuple[Node, ...]

    def __init__(self, items: tuple[Node, ...]):
        self._set(items=tuple(items))

    @classmethod
    def of(cls, *nodes: Node) -> Node:
        """``nodes`` joined, flattened (a single node is returned as it is)."""
        flat: list[Node] = []
        for node in nodes:
            flat.extend(node.items if isinstance(node, cls) else (node,))
        return flat[0] if len(flat) == 1 else cls(tuple(flat))

    def children(self) -> Iterator[Node]:
        return iter(self.items)

    def __repr__(self) -> str:
        return "(" + f" {self._symbol} ".join(map(repr, self.items)) + ")"


class And(_Junction):
    """Every sub-query matches."""

    __slots__ = ()
    _symbol = "&"


class Or(_Junction):
    """At least one sub-query matches."""

    __slots__ = ()
    _symbol = "|"


class Not(Node):
    """The sub-query does not match (a missing field therefore matches ``~(f == 1)``)."""

    __slots__ = ("item",)
    _fields = ("item",)
    item: Node

    def __init__(self, item: Node):
        self._set(item=item)

    def children(self) -> Iterator[Node]:
        yield self.item

    def __repr__(self) -> str:
        return f"~{self.item!r}"
