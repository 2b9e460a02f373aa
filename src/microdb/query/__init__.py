"""The query language as data: one AST (:mod:`.ast`), field paths, its builders and dict filters.

The compilers live in :mod:`microdb.compile`; nothing here imports them.
"""

from __future__ import annotations

from microdb.query.ast import Node
from microdb.query.builders import Query, to_node, where

__all__ = ["Node", "Query", "to_node", "where"]
