"""Compile the query AST to parameterised SQL for SQLite and PostgreSQL.

Documents are stored as JSON text (SQLite) or ``jsonb`` (PostgreSQL) in the tagged form of
:mod:`microdb.serialization`. Every node compiles to a :class:`Cond` holding *two* SQL
conditions:

``sure``
    true only for documents that certainly match (never a false positive);
``maybe``
    true for every document that may match (never a false negative).

Where SQL can say exactly what the Python engine says, both are the same and the condition
is *exact*. Where it cannot (a ``test(fn)``, a ``map`` step, a ``Decimal`` stored as a
tagged string, a regex PostgreSQL reads differently, a node this module does not know),
``maybe`` narrows the rows and the whole query runs again in Python
(:func:`microdb.compile.python.predicate`) on the narrowed rows where ``sure`` is false.
Negation swaps the two (``NOT maybe`` is sure, ``NOT sure`` is maybe), and every operand of
``NOT`` is wrapped in ``COALESCE(..., FALSE)`` so SQL's three-valued logic never leaks:
``~(where('a') == 1)`` matches documents without ``a``, as in Python.

Dialect differences are data and a handful of small methods on :class:`Dialect` subclasses;
the per-node compiler (:class:`SQLCompiler`) never asks which engine it is talking to.
"""

from __future__ import annotations

from microdb.compile.sql.compiler import SQLCompiler, SQLFilter, compile_filter, node_paths
from microdb.compile.sql.dialect import Dialect
from microdb.compile.sql.fragments import Cond, Frag, Term, regex_match
from microdb.compile.sql.postgres import POSTGRES, PostgresDialect
from microdb.compile.sql.sort import SQLSort, compile_sort
from microdb.compile.sql.sqlite import SQLITE, SQLiteDialect

__all__ = [
    "POSTGRES",
    "SQLITE",
    "Cond",
    "Dialect",
    "Frag",
    "PostgresDialect",
    "SQLCompiler",
    "SQLFilter",
    "SQLSort",
    "SQLiteDialect",
    "Term",
    "compile_filter",
    "compile_sort",
    "node_paths",
    "regex_match",
]
