"""TinyDB's query language: ``Query``, ``where`` and ``QueryInstance``.

These are MicroDB's own builders (:mod:`microdb.query.builders`): ``Query().name ==
'John'`` and ``where('age') < 30`` build MicroDB's immutable query AST, which the engine
compiles once and can answer from an index. Every method of TinyDB's ``Query`` is there:
``exists``, ``matches``, ``search``, ``test``, ``any``, ``all``, ``one_of``,
``fragment``, ``noop`` and ``map``, combined with ``&``, ``|`` and ``~``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from microdb.query.ast import Call, Node
from microdb.query.builders import Query, where

__all__ = ["Query", "QueryInstance", "QueryLike", "where"]


class QueryLike(Protocol):
    """Anything usable as a condition: called with a document, it says whether it matches."""

    def __call__(self, value: Mapping[str, Any]) -> bool: ...

    def __hash__(self) -> int: ...


class _QueryInstanceType(type):
    """Makes every built query (and every ``Query`` path) an instance of ``QueryInstance``."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, (Node, Query))

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, (Node, Query))


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
