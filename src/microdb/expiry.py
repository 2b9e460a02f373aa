"""Expiring documents (TTL indexes): when a document has expired, and the queries that say so.

``table.create_index('expires_at', expire_after=timedelta(0))`` stores a rule with the
table (in its options, ``{"ttl": [{"path": [...], "seconds": float}]}``) beside an
ordinary index on the field. A document expires when the value at the path is a
``datetime`` and ``value + expire_after <= now``; a naive ``datetime`` counts as UTC, as
MongoDB's dates are. Any other value (missing, a string, a ``date``, a list) never
expires.

From that moment no read returns the document: the in-memory engine adds
:func:`live_node` to every query; the SQL engines add the same test in SQL (with the
database's clock). Writers remove expired documents in small batches
(:data:`SWEEP_BATCH` at a time, at most every :data:`SWEEP_INTERVAL` seconds per table
and process); a document that has expired but is not removed yet is invisible all the same.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

from microdb.query import ast

__all__ = ["SWEEP_BATCH", "SWEEP_INTERVAL", "Rule", "expired_node", "is_expired", "live_node", "rules_of", "utc_now"]

#: How many expired documents one sweep removes at most.
SWEEP_BATCH = 100
#: Seconds between two sweeps of one table by one process (writes in between do not sweep).
SWEEP_INTERVAL = 1.0

#: One TTL rule: the path of the datetime field, and the seconds after it that a document lives.
Rule = tuple[ast.Path, float]

_UTC = _dt.timezone.utc


def utc_now() -> _dt.datetime:
    """The current time, aware, in UTC (the clock the in-memory engine expires by)."""
    return _dt.datetime.now(_UTC)


_rules: dict[int, tuple[Mapping[str, Any], tuple[Rule, ...]]] = {}


def rules_of(options: Mapping[str, Any]) -> tuple[Rule, ...]:
    """The TTL rules kept in a table's options (empty when it has none)."""
    raw = options.get("ttl") if options else None
    if not raw:
        return ()
    # Backends hand back the same options object while the options stay the same.
    hit = _rules.get(id(options))
    if hit is not None and hit[0] is options:
        return hit[1]
    rules = tuple((tuple(r["path"]), float(r["seconds"])) for r in raw)
    if len(_rules) > 256:
        _rules.clear()
    _rules[id(options)] = (options, rules)
    return rules


def _value(doc: Mapping[str, Any], path: ast.Path) -> Any:
    value: Any = doc
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def is_expired(doc: Mapping[str, Any], rules: tuple[Rule, ...], now: _dt.datetime | None = None) -> bool:
    """Whether ``doc`` has expired under any of ``rules`` at ``now`` (default: the current time)."""
    for path, seconds in rules:
        value = _value(doc, path)
        if isinstance(value, _dt.datetime):
            if now is None:
                now = utc_now()
            if value.tzinfo is None or value.utcoffset() is None:
                value = value.replace(tzinfo=_UTC)
            if value + _dt.timedelta(seconds=seconds) <= now:
                return True
    return False


_live: dict[tuple[Rule, ...], ast.Node] = {}


def live_node(rules: tuple[Rule, ...]) -> ast.Node:
    """A query matching the documents that have not expired (the same node for the same rules,
    so compiled queries are cached)."""
    node = _live.get(rules)
    if node is None:

        def unexpired(doc: Mapping[str, Any]) -> bool:
            return not is_expired(doc, rules)

        unexpired.__name__ = "unexpired"
        node = _live[rules] = ast.Call(unexpired)
    return node


def expired_node(rules: tuple[Rule, ...], now: _dt.datetime) -> ast.Node:
    """A query matching the documents expired at ``now``; its range part can use the field's index."""
    parts: list[ast.Node] = []
    for path, seconds in rules:
        cutoff = now - _dt.timedelta(seconds=seconds)
        # Naive and aware datetimes never compare with each other: one range for each.
        parts.append(ast.Compare(path, "le", cutoff))
        parts.append(ast.Compare(path, "le", cutoff.replace(tzinfo=None)))

    def expired(doc: Mapping[str, Any]) -> bool:
        return is_expired(doc, rules, now)

    return ast.And.of(ast.Or.of(*parts), ast.Call(expired))
