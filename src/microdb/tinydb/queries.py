"""TinyDB's query language: ``Query``, ``where`` and ``QueryInstance``.

These build MicroDB's own immutable query AST (:mod:`microdb.query.builders`): the engine
compiles ``Query().name == 'John'`` once and can answer it from an index. Every method of
TinyDB's ``Query`` is there: ``exists``, ``matches``, ``search``, ``test``, ``any``,
``all``, ``one_of``, ``fragment``, ``noop`` and ``map``, combined with ``&``, ``|``
and ``~``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from microdb.query.ast import Call, Node
from microdb.query.builders import Query as _CoreQuery
from microdb.tinydb._errors import EmptyQueryError

__all__ = ["Query", "QueryInstance", "QueryLike", "where"]


def _field(name: str) -> Any:
    def get(self: Query) -> Query:
        return self.__getattr__(name)

    return property(get, doc=f"The field ``{name}`` of the document (a path, as in TinyDB).")


class Query(_CoreQuery):
    """A path into documents, built by attribute or item access: ``Query().address.city``.

    MicroDB's ``Query`` with TinyDB's namespace: every attribute that is not one of
    TinyDB's methods is a field, so ``Query().value``, ``Query().lt`` and the like are
    fields here (MicroDB's ``Query`` uses those names for the seed's fluent helpers).
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Query:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._child(self._path + (name,))

    def __getitem__(self, item: str | int) -> Query:
        return self._child(super().__getitem__(item)._path)

    def map(self, fn: Callable[[Any], Any]) -> Query:
        """Apply ``fn`` to the value before the comparison that follows."""
        return self._child(super().map(fn)._path)

    def __call__(self, value: Mapping[str, Any]) -> bool:
        """A path is not a condition: evaluating one raises, as in TinyDB."""
        raise EmptyQueryError(
            f"Empty query was evaluated: {self!r} is a path; compare it (==, <...) or call a method such as exists()"
        )

    def _child(self, path: tuple[Any, ...]) -> Query:
        child = type(self)()
        child._path = path
        return child

    value = _field("value")
    eq = _field("eq")
    ne = _field("ne")
    neq = _field("neq")
    lt = _field("lt")
    lte = _field("lte")
    gt = _field("gt")
    gte = _field("gte")


def where(key: str) -> Query:
    """A path to the top-level field ``key``: ``where('age') < 30`` is ``Query()['age'] < 30``."""
    return Query()[key]


class QueryLike(Protocol):
    """Anything usable as a condition: called with a document, it says whether it matches."""

    def __call__(self, value: Mapping[str, Any]) -> bool: ...

    def __hash__(self) -> int: ...


class _QueryInstanceType(type):
    """Makes every built query (and every ``Query`` path) an instance of ``QueryInstance``."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, (Node, _CoreQuery))

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, (Node, _CoreQuery))


class QueryInstance(metaclass=_QueryInstanceType):
    """What a comparison such as ``Query().age > 3`` builds: a query, callable on a document.

    ``isinstance(q, QueryInstance)`` holds for every query. Calling
    ``QueryInstance(test, hashval)`` makes a query of your own from a function of the
    document, as in TinyDB (``hashval`` is accepted for compatibility; MicroDB never caches
    the results of a query that runs your code).
    """

    def __new__(  # type: ignore[misc]
        cls, test: Callable[[Mapping[str, Any]], Any], hashval: Any = None
    ) -> Node:
        return Call(test)
