"""Compilers of the query AST and of updates: to Python functions, and to SQL.

- :mod:`.python`: a query node to a fast Python predicate (cached by node);
- :mod:`.sql`: a query node to parameterised SQL, with each engine's dialect as data;
- :mod:`.updates` and :mod:`.update_ops`: what ``update`` accepts, to a function that
  changes a document in place.

Importing this package lets query nodes be called with a document (``node(doc)``): the
AST (:mod:`microdb.query.ast`) imports no compiler, so this package registers the Python
compiler with it.
"""

from __future__ import annotations

from microdb.compile.python import predicate
from microdb.query import ast as _ast

_ast.set_evaluator(predicate)

__all__ = ["predicate"]
