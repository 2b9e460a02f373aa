"""TinyDB's update operations, for ``table.update(increment('visits'), where('id') == 7)``.

They are MicroDB's own (:mod:`microdb.operations`): functions that change a copy of each
matching document, which is then stored in one commit.
"""

from __future__ import annotations

from microdb.operations import add, decrement, delete, increment, set, subtract

__all__ = ["add", "decrement", "delete", "increment", "set", "subtract"]
