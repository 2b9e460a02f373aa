"""Shared helpers of the benchmarks: generated documents, timers, memory peaks, tables.

Every benchmark module exposes ``run(quick: bool) -> list[dict]``. A row is a flat dict;
the printer below understands three kinds (the ``kind`` key):

- ``"time"``: ``suite``, ``case``, ``system``, ``n`` and ``seconds`` (best time of one
  operation);
- ``"memory"``: the same keys with ``bytes`` instead of ``seconds``;
- ``"info"``: ``suite``, ``case``, ``n`` and a free-text ``note``;
- ``"ratio"``: ``suite``, ``case``, ``n``, ``ratio`` (a float), ``meaning`` (how to read
  it, e.g. "times faster than sqlite3"), and optionally ``target`` (e.g. ``">= 2"``) and
  ``met`` (``True``/``False``; ``None`` when no target applies at that size).

Rows of any other shape are printed as a plain table of their keys.
"""

from __future__ import annotations

import gc
import math
import random
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "CITIES",
    "TAGS",
    "check_target",
    "compare",
    "compare_with_setup",
    "format_rows",
    "iter_docs",
    "make_docs",
    "measure",
    "peak_memory",
    "print_rows",
    "ratio_row",
]

T = TypeVar("T")

#: 50 cities, so an equality match on ``city`` selects 1 document in 50.
CITIES: tuple[str, ...] = (
    "Amsterdam", "Athens", "Auckland", "Bangkok", "Barcelona", "Beijing", "Berlin", "Bogota",
    "Boston", "Brussels", "Budapest", "Buenos Aires", "Cairo", "Cape Town", "Chicago",
    "Copenhagen", "Dakar", "Delhi", "Dublin", "Dubai", "Edinburgh", "Helsinki", "Hong Kong",
    "Istanbul", "Jakarta", "Kyiv", "Lagos", "Lima", "Lisbon", "London", "Madrid", "Manila",
    "Melbourne", "Mexico City", "Montreal", "Mumbai", "Nairobi", "Oslo", "Paris", "Prague",
    "Rome", "Santiago", "Seoul", "Singapore", "Stockholm", "Sydney", "Tokyo", "Toronto",
    "Vienna", "Warsaw",
)

TAGS: tuple[str, ...] = (
    "admin", "beta", "blue", "green", "new", "pro", "red", "trial", "vip", "yellow",
)

_FIRST = ("Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace",
          "Guido", "John", "Ken", "Linus", "Margaret", "Niklaus", "Radia", "Tim")
_LAST = ("Backus", "Hamming", "Hopper", "Kay", "Knuth", "Lamport", "Liskov", "Lovelace",
         "McCarthy", "Perlman", "Ritchie", "Stroustrup", "Thompson", "Torvalds", "Turing")
_STREETS = ("Main Street", "High Street", "Park Avenue", "Oak Road", "Mill Lane",
            "Church Street", "Station Road", "Elm Street", "Bridge Street", "King Street")

#: Ages run from 18 to 79, so ``age < 20`` selects about 1 document in 31.
AGE_MIN, AGE_MAX = 18, 79


def iter_docs(n: int, seed: int = 42) -> Iterator[dict[str, Any]]:
    """``n`` deterministic documents of about 250 bytes of JSON each, made one at a time."""
    rng = random.Random(seed)
    for i in range(n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        yield {
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{i}@mail.example.com",
            "age": rng.randint(AGE_MIN, AGE_MAX),
            "city": rng.choice(CITIES),
            "tags": rng.sample(TAGS, rng.randint(1, 4)),
            "address": {
                "street": f"{rng.randint(1, 999)} {rng.choice(_STREETS)}",
                "city": rng.choice(CITIES),
                "zip": f"{rng.randint(0, 99999):05d}",
            },
            "score": round(rng.uniform(0, 100), 2),
            "active": rng.random() < 0.7,
        }


def make_docs(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """``n`` deterministic documents (see :func:`iter_docs`) as a list."""
    return list(iter_docs(n, seed))


# -- timing -------------------------------------------------------------------------------

def _calibrate(fn: Callable[[], Any], min_time: float, max_number: int) -> tuple[int, float]:
    """How many calls make a group lasting ``min_time``, and how long that group took."""
    number = 1
    while True:
        elapsed = _timed(fn, number)
        if elapsed >= min_time or number >= max_number:
            return number, elapsed
        # Aim straight for min_time instead of doubling many times.
        number = min(max_number, max(number * 2, int(number * min_time / max(elapsed, 1e-9) * 1.2)))


def measure(
    fn: Callable[..., Any],
    *,
    repeat: int = 5,
    min_time: float = 0.05,
    warmup: int = 1,
    setup: Callable[[], Any] | None = None,
    max_number: int = 100_000,
) -> float:
    """Best time of one call of ``fn``, in seconds (``time.perf_counter``, best of ``repeat``).

    Without ``setup``, calls are grouped so one timed group lasts at least ``min_time``
    (short operations are otherwise lost in the timer's resolution). With ``setup``, it is
    run untimed before each single timed call (for operations that change their input, such
    as a bulk insert into a fresh table); ``fn`` then receives what ``setup`` returned.

    Unlike ``timeit``, the garbage collector stays on: its passes over many new containers
    are part of what a bulk operation really costs a program. A full collection runs
    before each timed group, so garbage left by earlier work is not charged to it.
    """
    if setup is not None:
        return compare_with_setup({"": (fn, setup)}, repeat=repeat, warmup=warmup)[""]
    for _ in range(warmup):
        fn()
    number, elapsed = _calibrate(fn, min_time, max_number)
    best = elapsed / number
    for _ in range(repeat - 1):
        best = min(best, _timed(fn, number) / number)
    return best


def compare(
    calls: Mapping[str, Callable[[], Any]],
    *,
    repeat: int = 5,
    min_time: float = 0.05,
    warmup: int = 1,
    max_number: int = 100_000,
) -> dict[str, float]:
    """Best time of one call of each function, timed in interleaved rounds.

    Each round times every function once (in groups calibrated as in :func:`measure`), so
    a slow spell of a shared machine hits every system alike instead of one of them, and
    the ratios between them stay meaningful.
    """
    numbers: dict[str, int] = {}
    best: dict[str, float] = {}
    for name, fn in calls.items():
        for _ in range(warmup):
            fn()
        number, elapsed = _calibrate(fn, min_time, max_number)
        numbers[name], best[name] = number, elapsed / number
    for _ in range(repeat - 1):
        for name, fn in calls.items():
            best[name] = min(best[name], _timed(fn, numbers[name]) / numbers[name])
    return best


def compare_with_setup(
    calls: Mapping[str, tuple[Callable[[Any], Any], Callable[[], Any]]], *, repeat: int = 3, warmup: int = 1,
) -> dict[str, float]:
    """Like :func:`compare` for ``(fn, setup)`` pairs: ``setup()`` runs untimed before each call."""
    best = {name: math.inf for name in calls}
    for i in range(warmup + repeat):
        for name, (fn, setup) in calls.items():
            arg = setup()
            gc.collect()
            start = time.perf_counter()
            fn(arg)
            elapsed = time.perf_counter() - start
            del arg
            if i >= warmup:
                best[name] = min(best[name], elapsed)
    return best


def _timed(fn: Callable[[], Any], number: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def peak_memory(fn: Callable[[], T]) -> tuple[T, int, int]:
    """Run ``fn`` under ``tracemalloc``: its result, the peak and the retained bytes it allocated.

    Only allocations made during the call count; the result is kept alive until the
    retained size is read, so "retained" is what holding the result costs.
    """
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        result = fn()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, peak - base, current - base


# -- ratios and tables --------------------------------------------------------------------

def check_target(value: float, target: str | None) -> bool | None:
    """Whether ``value`` meets ``target`` (``">= 2"``, ``"<= 1.3"``); ``None`` without one."""
    if not target:
        return None
    op, _, number = target.partition(" ")
    bound = float(number)
    if op == ">=":
        return value >= bound
    if op == "<=":
        return value <= bound
    raise ValueError(f"unknown target {target!r}")


def ratio_row(
    suite: str, case: str, n: int, value: float, meaning: str, target: str | None = None,
    target_n: int | None = None,
) -> dict[str, Any]:
    """A ``ratio`` row; the target is judged only at ``target_n`` documents when given."""
    applies = target is not None and (target_n is None or n == target_n)
    return {
        "kind": "ratio",
        "suite": suite,
        "case": case,
        "n": n,
        "ratio": value,
        "meaning": meaning,
        "target": target if applies else None,
        "met": check_target(value, target) if applies else None,
    }


def _fmt_seconds(seconds: float) -> str:
    if seconds != seconds or seconds == math.inf:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _fmt_bytes(size: float) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MiB"
    return f"{size / 1024:.1f} KiB"


def _fmt_ratio(value: float) -> str:
    if value != value:
        return "-"
    return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"


def _table(headers: Sequence[str], body: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(out)


def _unique(values: Iterable[T]) -> list[T]:
    seen: list[T] = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def format_rows(rows: Sequence[dict[str, Any]], *, markdown: bool = False) -> str:
    """Render benchmark rows as text (or markdown) tables, one block per suite and kind."""
    blocks: list[str] = []
    for suite in _unique(str(r.get("suite", "")) for r in rows):
        mine = [r for r in rows if str(r.get("suite", "")) == suite]
        measured = [r for r in mine if r.get("kind") in ("time", "memory")]
        ratios = [r for r in mine if r.get("kind") == "ratio"]
        infos = [r for r in mine if r.get("kind") == "info"]
        other = [r for r in mine if r.get("kind") not in ("time", "memory", "ratio", "info")]
        heading = f"### {suite}" if markdown else f"== {suite} =="
        blocks.append(heading)
        if measured:
            sizes = sorted(_unique(int(r["n"]) for r in measured))
            body: list[list[str]] = []
            for case, system in _unique((r["case"], r["system"]) for r in measured):
                cells = [str(case), str(system)]
                for n in sizes:
                    hit = [r for r in measured if r["case"] == case and r["system"] == system and r["n"] == n]
                    if not hit:
                        cells.append("-")
                    elif hit[0]["kind"] == "memory":
                        cells.append(_fmt_bytes(float(hit[0]["bytes"])))
                    else:
                        cells.append(_fmt_seconds(float(hit[0]["seconds"])))
                body.append(cells)
            blocks.append(_table(["operation", "system", *[f"n={n:,}" for n in sizes]], body, markdown))
        if ratios:
            body = []
            for r in ratios:
                met = r.get("met")
                verdict = "" if met is None else ("met" if met else "MISSED")
                body.append([
                    str(r["case"]), f"{int(r['n']):,}", _fmt_ratio(float(r["ratio"])), str(r["meaning"]),
                    str(r.get("target") or ""), verdict,
                ])
            blocks.append(_table(["ratio", "n", "value", "meaning", "target", "verdict"], body, markdown))
        if infos:
            body = [[str(r.get("case", "")), f"{int(r.get('n', 0)):,}", str(r.get("note", ""))] for r in infos]
            blocks.append(_table(["note on", "n", "note"], body, markdown))
        if other:
            keys = _unique(k for r in other for k in r)
            body = [[_plain(r.get(k)) for k in keys] for r in other]
            blocks.append(_table([str(k) for k in keys], body, markdown))
    return "\n\n".join(blocks)


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Print :func:`format_rows` to standard output."""
    print(format_rows(rows), flush=True)
