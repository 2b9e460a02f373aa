"""Filters from untrusted sources: bounded size, depth and regex time, on every backend."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest

import microdb
from microdb import FilterLimits, MicroDB, QueryError, untrusted_filter
from microdb.query import untrusted

CATASTROPHIC = "(a+)+b"
SLOW_IN_REGEX = "(a|a)+b"  # still exponential in the regex package
VICTIM = "a" * 26


def test_plain_filter_answers_as_a_dict_filter(db: MicroDB) -> None:
    """A checked filter finds what the same dict filter finds, with update and remove too."""
    t = db.table("t")
    t.insert_many([{"n": i, "s": f"x{i}"} for i in range(10)])
    f = {"n": {"$gte": 3, "$lt": 6}, "s": {"$regex": "^x"}}
    assert [d["n"] for d in t.query(untrusted_filter(f))] == [d["n"] for d in t.query(f)] == [3, 4, 5]
    assert t.count(untrusted_filter('{"n": {"$in": [1, 2]}}')) == 2
    t.update({"hit": True}, untrusted_filter({"n": 1}))
    assert t.count({"hit": True}) == 1
    t.remove(untrusted_filter({"n": {"$gt": 7}}))
    assert len(t) == 8


@pytest.mark.parametrize("pattern", [CATASTROPHIC, SLOW_IN_REGEX])
@pytest.mark.parametrize("mode", ["check", "timeout"])
def test_catastrophic_regex_does_not_hang(db: MicroDB, mode: str, pattern: str) -> None:
    """``(a+)+b`` on 26 a's is refused (check), or answered or stopped in time (timeout)."""
    t = db.table("t")
    t.insert({"s": VICTIM})
    limits = FilterLimits(regex=mode, regex_seconds=0.2)
    start = time.perf_counter()
    try:
        assert t.count(untrusted_filter({"s": {"$regex": pattern}}, limits)) == 0
    except QueryError as exc:
        assert "exponential" in str(exc) or "time limit" in str(exc)
    else:
        assert mode == "timeout" and pattern == CATASTROPHIC  # the regex package does not backtrack on it
    # The regex package checks its clock now and then: allow it a few times the limit.
    assert time.perf_counter() - start < 10


def test_timeout_budget_is_shared_by_every_document(db: MicroDB) -> None:
    """Slow matches on many documents together stop at the filter's budget."""
    t = db.table("t")
    t.insert_many([{"s": "a" * 14} for _ in range(1000)])
    limits = FilterLimits(regex="timeout", regex_seconds=0.3)
    start = time.perf_counter()
    with pytest.raises(QueryError, match="time limit"):
        t.count(untrusted_filter({"s": {"$regex": SLOW_IN_REGEX}}, limits))
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("mode", ["check", "timeout"])
def test_safe_regexes_match_as_re_does(db: MicroDB, mode: str) -> None:
    """Ordinary patterns, options and $not give the same answers as without the bound."""
    t = db.table("t")
    t.insert_many([{"s": "Alice"}, {"s": "bob"}, {"s": ["x", "ALBERT"]}, {"s": 5}])
    limits = FilterLimits(regex=mode)
    for f in (
        {"s": {"$regex": "^al", "$options": "i"}},
        {"s": {"$regex": "b.b"}},
        {"s": {"$not": {"$regex": "^A"}}},
        {"s": {"$in": ["bob"]}},
    ):
        assert sorted(d.doc_id for d in t.query(untrusted_filter(f, limits))) == sorted(
            d.doc_id for d in t.query(f)
        ), f


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+b", r"(a*)*", r"(a|ab)*c", r"(\w+\s?)*$", r"(a?){2,}", r"(.)\1", r"(x+x+)+y", r"a*a*a*a*a*b", SLOW_IN_REGEX],
)
def test_safe_pattern_check_refuses(pattern: str) -> None:
    """Nested quantifiers, alternation in repeats, backreferences and many quantifiers are refused."""
    with pytest.raises(QueryError, match=r"microdb\[regex\]"):
        untrusted_filter({"s": {"$regex": pattern}}, FilterLimits(regex="check"))


@pytest.mark.parametrize(
    "pattern", [r"^abc", r"a+b", r"[a-z]+@[a-z]+\.com", r"(?:ab){3}", r"(foo|bar)baz", r"^\d{4}-\d{2}", r".*x.*"]
)
def test_safe_pattern_check_accepts(pattern: str) -> None:
    """Common patterns pass the check."""
    untrusted_filter({"s": {"$regex": pattern}}, FilterLimits(regex="check"))


def test_auto_uses_the_check_without_the_regex_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the regex package, "auto" falls back to the check; "timeout" names the install."""
    monkeypatch.setattr(untrusted, "_regex_module", lambda: None)
    with pytest.raises(QueryError, match="exponential"):
        untrusted_filter({"s": {"$regex": CATASTROPHIC}})
    with pytest.raises(QueryError, match=r"pip install 'microdb\[regex\]'"):
        untrusted_filter({"s": {"$regex": "a"}}, FilterLimits(regex="timeout"))


def nested(depth: int) -> dict[str, object]:
    f: dict[str, object] = {"a": 1}
    for _ in range(depth):
        f = {"$and": [f]}
    return f


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: nested(10_000), "nested"),
        (lambda: "[" * 100_000 + "]" * 100_000, "characters long"),
        (lambda: '{"a": ' + "[" * 5_000 + "]" * 5_000 + "}", "nested 5001 deep"),
        (lambda: {"a": {"$in": list(range(5_000))}}, "more than 2000"),
        (lambda: {".".join(["a"] * 40): 1}, "40 steps"),
        (lambda: {"a": "x" * 10_000}, "characters long"),
        (lambda: {"a": {"$regex": "x" * 1000}}, "1000 characters long"),
        (lambda: "[1]", "JSON object"),
        (lambda: "{nope", "not valid JSON: .* line 1 column 2"),
        (lambda: {"a": {"$where": "sleep(100)"}}, r"\$where"),
        (lambda: '{"a": NaN}', "not valid JSON"),
    ],
)
def test_limits_raise_query_error(make: Callable[[], object], message: str) -> None:
    """Each limit, and malformed input, raises QueryError naming the problem, quickly."""
    start = time.perf_counter()
    with pytest.raises(QueryError, match=message):
        untrusted_filter(make())  # type: ignore[arg-type]
    assert time.perf_counter() - start < 5


def test_limits_are_settable_and_checked() -> None:
    """A caller can tighten or loosen a limit; nonsense limits are refused."""
    assert untrusted_filter({"a.b.c": 1}, FilterLimits(max_path_steps=3)) is not None
    with pytest.raises(QueryError, match="3 steps"):
        untrusted_filter({"a.b.c": 1}, FilterLimits(max_path_steps=2))
    with pytest.raises(QueryError):
        FilterLimits(max_depth=0)
    with pytest.raises(QueryError):
        FilterLimits(regex="maybe")


def test_tagged_values_in_text_filters(db: MicroDB) -> None:
    """A filter given as text reads rich values in tagged form, as the CLI prints them."""
    t = db.table("t")
    t.insert_many([{"d": dt.date(2024, 1, i)} for i in range(1, 6)])
    f = untrusted_filter('{"d": {"$gte": {"$date": "2024-01-04"}}}')
    assert t.count(f) == 2


def test_tagged_round_trip() -> None:
    """microdb.dumps/loads and encode/decode round-trip every rich type; bad input is DocumentError."""
    import decimal
    import uuid

    value = {
        "when": dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc), "d": dt.date(2024, 5, 1), "t": dt.time(1, 2),
        "td": dt.timedelta(days=1, seconds=3), "u": uuid.UUID(int=7), "dec": decimal.Decimal("1.50"),
        "b": b"\x00hi", "s": {1, 2}, "fs": frozenset({"a"}), "tu": (1, "x"), "$odd": {"$date": 1},
    }
    assert microdb.loads(microdb.dumps(value)) == value
    assert microdb.decode(microdb.encode(value)) == value
    assert microdb.loads(microdb.dumps(value, indent=2)) == value
    with pytest.raises(microdb.DocumentError):
        microdb.dumps({"x": float("nan")})
    with pytest.raises(microdb.DocumentError, match="line 2 column 1"):
        microdb.loads('{"a":\n}')
    with pytest.raises(microdb.DocumentError):
        microdb.loads("[" * 100_000)


@pytest.mark.parametrize("mode", ["check", "timeout"])
def test_sqlite_is_bounded_too(tmp_path: object, mode: str) -> None:
    """On SQLite the bound holds as well, and safe patterns still answer."""
    with MicroDB(f"sqlite:///{tmp_path}/x.db") as db:
        t = db.table("t")
        t.insert_many([{"s": VICTIM}, {"s": "ab"}])
        limits = FilterLimits(regex=mode, regex_seconds=0.2)
        assert t.count(untrusted_filter({"s": {"$regex": "^ab$"}}, limits)) == 1
        start = time.perf_counter()
        with pytest.raises(QueryError):
            t.count(untrusted_filter({"s": {"$regex": SLOW_IN_REGEX}}, limits))
        assert time.perf_counter() - start < 10
