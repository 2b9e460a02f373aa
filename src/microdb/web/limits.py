"""Bounds on the filters the page accepts: anyone who can open the page can send one.

A filter is refused with a ``QueryError`` naming the bound before it is parsed when it is
too large, nested too deeply, or holds a regular expression that is long or has a
quantified group (the shape behind catastrophic backtracking, such as ``(a+)+``).
"""

from __future__ import annotations

import re
from typing import Any

from microdb import QueryError

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_REGEX", "check_filter"]

#: Deepest nesting of objects and arrays in a filter.
MAX_DEPTH = 16
#: Most values (objects, arrays, keys and leaves) in a filter.
MAX_NODES = 2000
#: Longest ``$regex`` pattern, in characters.
MAX_REGEX = 200
_NESTED_QUANTIFIER = re.compile(r"\)\s*(?:[*+]|\{\d*,?\d*\})")


def _check_regex(pattern: Any) -> None:
    if not isinstance(pattern, str):
        return
    if len(pattern) > MAX_REGEX:
        raise QueryError(f"a $regex from the page is limited to {MAX_REGEX} characters (got {len(pattern)})")
    if _NESTED_QUANTIFIER.search(pattern):
        raise QueryError("a $regex from the page may not repeat a group, such as (a+)+ or (ab)*: "
                         "it could run for a very long time")


def check_filter(value: Any) -> None:
    """Raise ``QueryError`` when the filter breaks a bound; return quietly otherwise."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise QueryError(f"a filter from the page is limited to {MAX_NODES} values")
        if isinstance(item, (dict, list)) and depth > MAX_DEPTH:
            raise QueryError(f"a filter from the page is limited to {MAX_DEPTH} levels of nesting")
        if isinstance(item, dict):
            for key, sub in item.items():
                if key == "$regex":
                    _check_regex(sub)
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)
