"""The query language: one AST (:mod:`.ast`), its builders, and its compilers."""

from __future__ import annotations

from microdb.query.ast import Node
from microdb.query.builders import Query, to_node, where

__all__ = ["Node", "Query", "to_node", "where"]
