"""Differential test: the same random data, queries and updates on every backend agree.

Memory, the JSON file, SQLite and PostgreSQL, each without and with indexes, receive the
same random documents (floats of 2**53 and above beside ints of the same size, control
characters and NUL in keys, nested arrays, deep paths), then the same random dict filters,
``where()`` queries, sorts and update operators. Every answer (ids, counts, sort order,
table contents after an update) must equal the unindexed in-memory answer.

It is seeded and time-bounded: ``MICRODB_DIFF_SEED`` picks the seed (a failure prints
it, with the round and the query, so the failure can be replayed) and
``MICRODB_DIFF_SECONDS`` the time it runs (default 15). Within a round a query that takes
longer than ``_HANG_SECONDS`` is interrupted and fails the run: a hang guard, not a speed check.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, Query, where
from microdb.errors import DocumentError, MicroDBError
from microdb.table import Table
from sql_backends import new_schema, require_postgres

_SECONDS = float(os.environ.get("MICRODB_DIFF_SECONDS", "15"))
_SEED = int(os.environ.get("MICRODB_DIFF_SEED", "20261201"))
_HANG_SECONDS = 10.0

#: Keys: plain, digits, and ones SQL engines find hard to address. PostgreSQL cannot store
#: NUL (``jsonb`` refuses ``\u0000``), so documents never hold it; queries name it.
_DOC_KEYS = ["a", "b", "c", "0", "1", "a\nb", "t\tab", "\x7f", "q\"uote", "sp ace", "dot"]
_KEYS = _DOC_KEYS + ["n\x00ul"]
_PLAIN_KEYS = ["a", "b", "c"]
#: Numbers around 2**53 and beyond, as ints and as floats, that Python compares exactly.
_BIG = [2**53, 2**53 + 1, 2.0**53, 2**62, 2.0**62, -(2**62), -(2.0**62), 2**63 - 1, 2.0**63, 2.0**70]
_SMALL = [0, 1, -1, 2, 0.5, 1.0, -2.5, 3]
_STRINGS = ["", "a", "ab", "b", "a" * 3, "x", "a\nb", "é"]
#: Strings only queries hold (PostgreSQL cannot store NUL).
_QUERY_STRINGS = _STRINGS + ["a\x00b", "\x00"]


def _scalar(rng: random.Random, strings: list[str] = _STRINGS) -> Any:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(_BIG)
    if pick < 0.55:
        return rng.choice(_SMALL)
    if pick < 0.8:
        return rng.choice(strings)
    return rng.choice([None, True, False])


def _qscalar(rng: random.Random) -> Any:
    """A scalar for a query (its strings may hold NUL)."""
    return _scalar(rng, _QUERY_STRINGS)


def _value(rng: random.Random, depth: int) -> Any:
    pick = rng.random()
    if depth <= 0 or pick < 0.55:
        return _scalar(rng)
    if pick < 0.8:
        return [_value(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return _object(rng, depth - 1)


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    keys = rng.sample(_DOC_KEYS if rng.random() < 0.5 else _PLAIN_KEYS, rng.randint(1, 3))
    return {k: _value(rng, depth) for k in keys}


def _document(rng: random.Random) -> dict[str, Any]:
    doc = _object(rng, 4)
    if rng.random() < 0.15:
        # A deep chain of one-key objects (with an array somewhere in it).
        steps = [rng.choice(_PLAIN_KEYS) for _ in range(rng.randint(5, 14))]
        inner: Any = _scalar(rng)
        for i, step in enumerate(reversed(steps)):
            inner = {step: [inner] if i == 3 else inner}
        doc["d"] = inner
    return doc


def _path(rng: random.Random) -> list[str]:
    pick = rng.random()
    if pick < 0.1:
        return ["d"] + [rng.choice(_PLAIN_KEYS) for _ in range(rng.randint(3, 24))]
    if pick < 0.5:
        return [rng.choice(_PLAIN_KEYS)]
    return [rng.choice(_KEYS) for _ in range(rng.randint(1, 4))]


def _dotted(steps: list[str]) -> str | None:
    return ".".join(steps) if all("." not in s and s for s in steps) else None


# -- dict filters ----------------------------------------------------------------------------

def _operand(rng: random.Random) -> Any:
    return _value(rng, 1) if rng.random() < 0.2 else _qscalar(rng)


def _field_ops(rng: random.Random) -> Any:
    pick = rng.randrange(14)
    if pick == 0:
        return _operand(rng)
    if pick <= 4:
        op = rng.choice(["$gt", "$gte", "$lt", "$lte"])
        return {op: _qscalar(rng)}
    if pick == 5:
        return {"$in": [_qscalar(rng) for _ in range(rng.randint(1, 3))]}
    if pick == 6:
        return {"$nin": [_qscalar(rng) for _ in range(rng.randint(1, 2))]}
    if pick == 7:
        return {"$exists": rng.random() < 0.7}
    if pick == 8:
        return {"$ne": _qscalar(rng)}
    if pick == 9:
        return {"$regex": rng.choice(["^a", "b", "a{2}", "a{300}", "a{1,256}", "^$", "\n"])}
    if pick == 10:
        return {"$elemMatch": rng.choice([{"$gte": _qscalar(rng)}, {"a": _qscalar(rng)}, {"$eq": _qscalar(rng)}])}
    if pick == 11:
        return {"$size": rng.randint(0, 3)}
    if pick == 12:
        return {"$type": rng.choice(["number", "string", "array", "object", "double", "int", "null"])}
    return {"$not": {rng.choice(["$gt", "$lt", "$eq"]): _qscalar(rng)}}


def _dict_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.2:
        op = rng.choice(["$and", "$or", "$nor"])
        return {op: [_dict_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    out: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        dotted = _dotted(_path(rng))
        if dotted is not None and not dotted.startswith("$"):
            out[dotted] = _field_ops(rng)
    return out or {"a": _qscalar(rng)}


# -- where() queries ----------------------------------------------------------------------------

def _field(steps: list[str]) -> Any:
    q: Any = Query()
    for step in steps:
        q = q[step]
    return q


def _where_leaf(rng: random.Random) -> Any:
    steps = _path(rng)
    field = where(steps[0]) if len(steps) == 1 and rng.random() < 0.5 else _field(steps)
    pick = rng.randrange(9)
    value = _qscalar(rng)
    if pick == 0:
        return field == value
    if pick == 1:
        return field != value
    if pick in (2, 3):
        return rng.choice([field < value, field <= value, field > value, field >= value])
    if pick == 4:
        return field.exists()
    if pick == 5:
        return field.one_of([_qscalar(rng) for _ in range(rng.randint(1, 3))])
    if pick == 6:
        return field.any([_qscalar(rng) for _ in range(rng.randint(1, 2))])
    if pick == 7:
        return field.search(rng.choice(["a", "^a{2}", "a{300}", "b$"]))
    return field == _value(rng, 2)


def _where(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth > 3 or pick < 0.5:
        return _where_leaf(rng)
    if pick < 0.65:
        return ~_where(rng, depth + 1)
    if pick < 0.82:
        return _where(rng, depth + 1) & _where(rng, depth + 1)
    return _where(rng, depth + 1) | _where(rng, depth + 1)


def _nested_not(rng: random.Random) -> Any:
    q = _where_leaf(rng)
    for _ in range(rng.randint(50, 150)):
        q = ~q
    return q


def _query(rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.5:
        return _dict_filter(rng)
    if pick < 0.95:
        return _where(rng)
    return _nested_not(rng)


# -- updates ------------------------------------------------------------------------------------

def _update(rng: random.Random) -> dict[str, Any]:
    key = rng.choice(_PLAIN_KEYS)
    op = rng.choice(["$set", "$inc", "$unset", "$max", "$min", "$push", "$pull", "$mul"])
    if op == "$set":
        return {op: {key: _value(rng, 2)}}
    if op in ("$inc", "$mul"):
        return {op: {key: rng.choice([1, 2, 2.0**53, 0.5, -(2**62)])}}
    if op == "$unset":
        return {op: {key: ""}}
    if op in ("$max", "$min"):
        return {op: {key: _scalar(rng)}}
    if op == "$push":
        return {op: {key: _scalar(rng)}}
    return {op: {key: _scalar(rng)}}


# -- backends --------------------------------------------------------------------------------

_INDEXED = ["a", "b", "a.b", "c"]
_VARIANTS = [f"{name}{index}" for name in ("memory", "json", "sqlite", "postgres") for index in ("", "+index")]


def _backends(tmp: Path) -> Iterator[tuple[str, Callable[[], MicroDB]]]:
    yield "memory", lambda: MicroDB()
    yield "json", lambda: MicroDB(str(tmp / "db.json"))
    yield "sqlite", lambda: MicroDB(f"sqlite:///{tmp / 'db.sqlite'}")
    url = require_postgres()
    schema = new_schema()
    yield "postgres", lambda: MicroDB(url, schema=schema, pool_size=1)


def _answer(table: Table, query: Any) -> tuple[list[int], int]:
    return sorted(d.doc_id for d in table.search(query)), table.count(query)


def _contents(table: Table) -> list[tuple[int, Any]]:
    return sorted((d.doc_id, _typed(dict(d))) for d in table.all())


def _typed(value: Any) -> Any:
    # 1 and 1.0 are equal in Python; a backend returning one for the other is a difference.
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, float):
        return ("float", repr(value))
    return value


class _Run:
    """The databases of one run: a reference (unindexed memory) and every other variant."""

    def __init__(self, tmp: Path):
        self.dbs: dict[str, MicroDB] = {}
        for name, make in _backends(tmp):
            self.dbs[name] = make()
        self.round = 0

    def tables(self) -> dict[str, Table]:
        out: dict[str, Table] = {}
        for name, db in self.dbs.items():
            out[name] = db.table(f"r{self.round}")
            out[name + "+index"] = db.table(f"x{self.round}")
        return out

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()


def _update_outcome(table: Table, change: Any, cond: Any) -> Any:
    return _outcome(lambda: sorted(table.update(change, cond))), _contents(table)


def _outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the kind of MicroDB error it raises (also an answer to compare)."""
    try:
        return call()
    except MicroDBError as exc:
        return ("raised", type(exc).__name__)


class _Hung(Exception):
    """A single query ran past the hang guard."""


@contextlib.contextmanager
def _hang_guard(label: str) -> Iterator[None]:
    """Interrupt (with a failure naming ``label``) a call that runs past ``_HANG_SECONDS``."""

    def alarm(signum: int, frame: Any) -> None:
        raise _Hung(f"{label} ran for more than {_HANG_SECONDS} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, _HANG_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _check(what: str, seed: int, round_: int, tables: dict[str, Table], ask: Callable[[Table], Any],
           docs: list[dict[str, Any]]) -> None:
    with _hang_guard(f"memory: {what:.300} (seed {seed}, round {round_})"):
        want = ask(tables["memory"])
    for name, table in tables.items():
        if name == "memory":
            continue
        with _hang_guard(f"{name}: {what:.300} (seed {seed}, round {round_})"):
            got = ask(table)
        assert got == want, (
            f"{name} differs from memory on {what}\n  seed {seed} round {round_}\n"
            f"  memory: {want!r:.400}\n  {name}: {got!r:.400}\n  documents: {docs!r:.2000}"
        )


def run_differential(tmp: Path, seed: int, seconds: float) -> int:
    """Run rounds until ``seconds`` pass; returns the number of checks made."""
    rng = random.Random(seed)
    run = _Run(tmp)
    checks = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            run.round += 1
            tables = run.tables()
            docs = [_document(rng) for _ in range(rng.randint(3, 12))]
            for name, table in tables.items():
                if name.endswith("+index"):
                    for field in _INDEXED:
                        table.create_index(field)
                table.insert_many(docs)
            for _ in range(12):
                query = _query(rng)
                _check(f"query {query!r:.300}", seed, run.round, tables, lambda t, q=query: _answer(t, q), docs)
                checks += 1
            for _ in range(2):
                key = rng.choice(_PLAIN_KEYS + ["a.b", "d.a"])
                _check(f"sort on {key!r}", seed, run.round, tables,
                       lambda t, k=key: [d.doc_id for d in t.query().sort(k)], docs)
                checks += 1
            for _ in range(3):
                change, cond = _update(rng), _query(rng)
                _check(f"update {change!r} where {cond!r:.300}", seed, run.round, tables,
                       partial(_update_outcome, change=change, cond=cond), docs)
                checks += 1
    finally:
        run.close()
    return checks


def test_backends_agree_on_random_data_queries_and_updates(tmp_path: Path) -> None:
    """Every backend, indexed or not, gives the in-memory answer to random queries and updates."""
    checks = run_differential(tmp_path, _SEED, _SECONDS)
    assert checks > 0
    print(f"differential: {checks} checks on {len(_VARIANTS)} variants, seed {_SEED}")


@pytest.mark.parametrize("docs, query", [
    ([{"x": 2.0**62}], where("x") == 2**62),                                 # item 7
    ([{"x": 2**62}], {"x": {"$lte": 2.0**62}}),
    ([{"x": 2.0**62}, {"x": 2**62 + 1}], {"x": {"$in": [2**62 + 1]}}),
    ([{"a\nb": 1}, {"t\tab": 2}], where("a\nb") == 1),                       # item 8
    ([{"a\nb": 1}], {"a\nb": {"$exists": True}}),
    ([{"a": [1, ["x"]]}], {"a.0": "x"}),                                      # item 9
    ([{"a": [[[3]]]}], {"a.0": 3}),
    ([{"a": 1}], where("n\x00ul") == 1),                                      # item 10
    ([{"a": 1}], {"n\x00ul": {"$exists": False}}),
    ([{"a": {"b": 1}}], ~(Query()["a"]["n\x00ul"] == 1)),
    ([{"s": "a" * 300}], {"s": {"$regex": "a{300}"}}),
    ([{"a": "x"}, {"a": ["x"]}], where("a") != "x\x00"),                        # NUL operands
    ([{"a": "x"}, {"a": ["x"]}], {"a": {"$in": ["x", "\x00"]}}),
])
def test_known_differences_are_gone(tmp_path: Path, docs: list[dict[str, Any]], query: Any) -> None:
    """The cases that once differed between backends now get the in-memory answer everywhere."""
    run = _Run(tmp_path)
    try:
        tables = run.tables()
        for name, table in tables.items():
            if name.endswith("+index"):
                for field in ("x", "a", "s"):
                    table.create_index(field)
            table.insert_many(docs)
        _check(f"query {query!r}", 0, 0, tables, lambda t: _answer(t, query), docs)
    finally:
        run.close()


def test_sort_mixes_big_ints_and_floats_as_python_does(tmp_path: Path) -> None:
    """Sorting 2**62 + 1 after 2.0**62 (its float neighbour) is the same on every backend."""
    docs: list[dict[str, Any]] = [{"x": 2**62 + 1}, {"x": 2.0**62}, {"x": 2**62 - 1}, {"x": 2**53 + 1}, {"x": 2.0**53}]
    run = _Run(tmp_path)
    try:
        tables = run.tables()
        for table in tables.values():
            table.insert_many(docs)
        _check("sort", 0, 0, tables, lambda t: [d.doc_id for d in t.query().sort("x")], docs)
        assert [d["x"] for d in tables["postgres"].query().sort("x")] == sorted(d["x"] for d in docs)
    finally:
        run.close()


def test_regex_repetition_bound_over_255_answers(tmp_path: Path) -> None:
    """A ``{300}`` repetition (past PostgreSQL's limit of 255) is matched as Python matches it."""
    run = _Run(tmp_path)
    try:
        tables = run.tables()
        for table in tables.values():
            table.insert_many([{"s": "a" * 300}, {"s": "a" * 299}])
        _check("regex", 0, 0, tables, lambda t: _answer(t, {"s": {"$regex": re.escape("a") + "{300}"}}), [])
    finally:
        run.close()


def test_postgresql_refuses_nul_in_documents_with_a_document_error(tmp_path: Path) -> None:
    """PostgreSQL's jsonb cannot hold NUL: such a document is refused whole, nothing else lost."""
    run = _Run(tmp_path)
    try:
        table = run.tables()["postgres"]
        table.insert({"a": 1})
        for doc in ({"n\x00ul": 1}, {"a": "x\x00y"}):
            with pytest.raises(DocumentError, match="cannot store"):
                table.insert(doc)
        assert [dict(d) for d in table.all()] == [{"a": 1}]
        assert run.tables()["memory"].insert({"n\x00ul": 1}) == 1
    finally:
        run.close()
