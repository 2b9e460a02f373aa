"""The Python-looking query syntaxes: TinyDB's ``where``/``Query`` paths and the seed's fluent form.

``Query()`` is a path under construction: attribute and item access add steps, and a
comparison or method turns it into an AST node (:mod:`microdb.query.ast`). ``Query`` also
carries the seed's fluent helpers: ``Query().exists('age').value('name', 'Alice')`` and the
static conditions ``Query.lt('age', 30)`` and friends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from microdb.errors import QueryError
from microdb.query.ast import (
    AllOf,
    AnyOf,
    Call,
    Compare,
    Const,
    Exists,
    Fragment,
    MapStep,
    Node,
    OneOf,
    Path,
    Regex,
    Test,
    fluent_condition,
    path_repr,
    set_converter,
)
from microdb.query.fields import FieldPath, parse_field
from microdb.query.mongo import parse_filter

__all__ = ["Query", "to_node", "where"]


def to_node(query: Any) -> Node:
    """Turn anything accepted as a query into an AST node.

    Accepts a node, a MongoDB-style dict filter, or a plain callable taking the document.
    """
    if isinstance(query, Query):
        if not query._path:
            return query._node if query._node is not None else Const(True)
        raise QueryError(
            f"{path_repr(query._path)} is a path, not a condition; compare it (== < ...) or "
            "call a method such as exists()"
        )
    if isinstance(query, Node):
        return query
    if isinstance(query, Mapping):
        return parse_filter(query)
    if callable(query):
        return Call(query)
    raise QueryError(f"not a query: {query!r} (expected where(...), Query(), a dict or a callable)")


def _static_condition(op: str, symbol: str) -> staticmethod[[Any, Any], Node]:
    """The seed's ``Query.<name>(field, value)``: one comparison of ``field`` with ``value``."""

    def condition(field: Any, value: Any) -> Node:
        return Compare(parse_field(field), op, value)

    condition.__doc__ = f"``field {symbol} value``."
    return staticmethod(condition)


class Query(FieldPath):
    """A path into documents, built by attribute or item access: ``Query().address.city``.

    Comparing a path (``==``, ``<``, ...) or calling one of its methods gives a query node.
    ``Query()`` itself, with no path, matches every document and starts the seed's fluent
    chain: ``Query().exists('age').value('name', 'Alice')``.
    """

    __slots__ = ("_node",)

    def __init__(self) -> None:
        super().__init__()
        self._node: Node | None = None

    @classmethod
    def _at(cls, path: Path) -> Query:
        q = cls()
        q._path = path
        return q

    # -- building paths ------------------------------------------------------------
    def __getattr__(self, name: str) -> Query:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Query._at(self._path + (name,))

    def __getitem__(self, item: str | int) -> Query:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise QueryError(f"a path step must be a str or int, got {item!r}")
        return Query._at(self._path + (item,))

    def _need_path(self, what: str) -> Path:
        if not self._path:
            raise QueryError(f"{what} needs a field: use where('field') or Query().field")
        return self._path

    # -- comparisons ---------------------------------------------------------------
    def __eq__(self, other: Any) -> Node:  # type: ignore[override]
        return Compare(self._need_path("=="), "eq", other)

    def __ne__(self, other: Any) -> Node:  # type: ignore[override]
        return Compare(self._need_path("!="), "ne", other)

    def __lt__(self, other: Any) -> Node:
        return Compare(self._need_path("<"), "lt", other)

    def __le__(self, other: Any) -> Node:
        return Compare(self._need_path("<="), "le", other)

    def __gt__(self, other: Any) -> Node:
        return Compare(self._need_path(">"), "gt", other)

    def __ge__(self, other: Any) -> Node:
        return Compare(self._need_path(">="), "ge", other)

    def __hash__(self) -> int:
        return hash(("Query", self._path))

    def __bool__(self) -> NoReturn:
        raise QueryError("a Query path cannot be used as a bool; compare it first")

    def __repr__(self) -> str:
        return path_repr(self._path) if self._path else "Query()"

    # -- TinyDB's methods ----------------------------------------------------------
    def exists(self, field: Any = None) -> Node:
        """The field exists; ``Query().exists('f')`` is the seed's form of ``Query().f.exists()``."""
        if field is not None:
            base = Exists(self._path + parse_field(field)) if self._path else Exists(parse_field(field))
            return base
        return Exists(self._need_path("exists()"))

    def value(self, field_or_cond: Any, *value: Any) -> Node:
        """The seed's fluent condition: ``value(cond)`` or ``value(field, v)`` (equality)."""
        return fluent_condition(field_or_cond, *value)

    def matches(self, regex: str | re.Pattern[str], flags: int = 0) -> Node:
        """The whole value... from its start, matches the regex (``re.match``)."""
        return Regex(self._need_path("matches()"), regex, flags, "match")  # type: ignore[arg-type]

    def search(self, regex: str | re.Pattern[str], flags: int = 0) -> Node:
        """Some part of the string value matches the regex (``re.search``)."""
        return Regex(self._need_path("search()"), regex, flags, "search")  # type: ignore[arg-type]

    def test(self, func: Callable[..., Any], *args: Any) -> Node:
        """``func(value, *args)`` is true."""
        return Test(self._need_path("test()"), func, args)

    def any(self, cond: Node | Query | Iterable[Any]) -> Node:
        """Some element of the list matches ``cond`` (a query) or is in ``cond`` (a list)."""
        return AnyOf(self._need_path("any()"), _list_cond(cond))

    def all(self, cond: Node | Query | Iterable[Any]) -> Node:
        """Every element matches ``cond`` (a query), or the list holds every item of ``cond``."""
        return AllOf(self._need_path("all()"), _list_cond(cond))

    def one_of(self, items: Iterable[Any]) -> Node:
        """The value equals one of ``items``."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise QueryError(f"one_of() needs a list of values, got {items!r}")
        return OneOf(self._need_path("one_of()"), tuple(items))

    def fragment(self, document: Mapping[str, Any]) -> Node:
        """The value (or the document, on ``Query()``) holds every key and value of ``document``."""
        return Fragment(self._path, document)

    def noop(self) -> Node:
        """Matches every document."""
        return Const(True)

    def map(self, fn: Callable[[Any], Any]) -> Query:
        """Apply ``fn`` to the value before the comparison that follows."""
        if not callable(fn):
            raise QueryError(f"map() needs a callable, got {fn!r}")
        return Query._at(self._path + (MapStep(fn),))

    # -- the seed's static conditions: Query.lt('age', 30) ----------------------------
    eq = _static_condition("eq", "==")
    ne = _static_condition("ne", "!=")
    lt = _static_condition("lt", "<")
    lte = _static_condition("le", "<=")
    gt = _static_condition("gt", ">")
    gte = _static_condition("ge", ">=")


def _list_cond(cond: Any) -> Node | tuple[Any, ...]:
    if isinstance(cond, (Node, Query)):
        return to_node(cond)
    if isinstance(cond, (str, bytes, Mapping)) or not isinstance(cond, Iterable):
        raise QueryError(f"any()/all() need a query or a list of values, got {cond!r}")
    return tuple(cond)


def where(key: str) -> Query:
    """A path to the top-level field ``key``: ``where('age') < 30``."""
    if not isinstance(key, str):
        raise QueryError(f"where() needs a field name, got {key!r}")
    return Query()[key]


# Lets the AST combine a node with a dict filter or a callable (``node & {'a': 1}``).
set_converter(to_node)
