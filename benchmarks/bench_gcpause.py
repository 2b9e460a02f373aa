"""What pausing the cyclic garbage collector saves bulk work, and what a threaded program pays.

Run ``python benchmarks/bench_gcpause.py [--quick]``. MicroDB pauses the collector while
one thread inserts or copies 1,000 documents or more, but only when that thread is the
process's only one (``src/microdb/gcpause.py``): the collector is one switch for the whole
process. So a program with other threads running does the same work with the collector
on. Each case is timed both ways, in interleaved rounds, on the same in-memory table of
100,000 documents (quick: 10,000; :func:`common.make_docs`):

- ``insert_many`` of every document into a fresh table with indexes on ``city`` and ``age``;
- ``all()``: every document, copied;
- ``query(where('age') < 20)`` through the index: about 1 document in 30, copied.

The systems are "alone" (the pause is taken) and "beside a thread" (a second thread
waits on an event while the case runs, so the collector stays on). The ratio is the cost
of running the collector during the work; the collections each way are counted too.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from common import compare_with_setup, make_docs, measure, print_rows, ratio_row  # noqa: E402

from microdb import MicroDB, where  # noqa: E402
from microdb.storage import InMemoryStorage  # noqa: E402

__all__ = ["bench_case", "run"]

SUITE = "gcpause"
ALONE = "alone (collector paused)"
BESIDE = "beside a thread (collector on)"


@contextlib.contextmanager
def _mode(name: str) -> Iterator[None]:
    """Run the block alone, or with a second thread alive that does nothing."""
    if name == ALONE:
        if threading.active_count() > 1:
            raise RuntimeError("the 'alone' case needs a process with one thread")
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _collections() -> int:
    return sum(int(s["collections"]) for s in gc.get_stats())


def _table(docs: list[dict[str, Any]] | None) -> MicroDB:
    db = MicroDB(InMemoryStorage())
    db.create_index("city")
    db.create_index("age")
    if docs:
        db.insert_many(docs)
    return db


def bench_case(
    case: str, n: int, rounds: int, fn: Callable[[Any], Any], setup: Callable[[], Any], *, single: bool,
) -> list[dict[str, Any]]:
    """Time ``fn(setup())`` in both modes, ``rounds`` interleaved rounds, best of each.

    ``single``: one timed call per run (work that changes its input, such as an insert);
    otherwise calls are grouped as :func:`common.measure` does.
    """
    best = {ALONE: float("inf"), BESIDE: float("inf")}
    counted: dict[str, int] = {}
    for _ in range(rounds):
        for mode in best:
            with _mode(mode):
                if single:
                    seconds = compare_with_setup({mode: (fn, setup)}, repeat=1, warmup=0)[mode]
                else:
                    arg = setup()
                    seconds = measure(lambda a=arg: fn(a), repeat=2, min_time=0.1)
                if mode not in counted:
                    arg = setup()
                    gc.collect()
                    before = _collections()
                    fn(arg)
                    counted[mode] = _collections() - before
            best[mode] = min(best[mode], seconds)
    rows: list[dict[str, Any]] = [
        {"kind": "time", "suite": SUITE, "case": case, "system": mode, "n": n, "seconds": seconds}
        for mode, seconds in best.items()
    ]
    rows.append(ratio_row(SUITE, f"{case}: collector on / paused", n, best[BESIDE] / best[ALONE],
                          "x the time with the collector paused"))
    rows.append({"kind": "info", "suite": SUITE, "case": case, "n": n,
                 "note": f"cyclic collections during one run: {counted[ALONE]} alone, {counted[BESIDE]} beside a thread"})
    return rows


def run(quick: bool = False, n: int | None = None, rounds: int | None = None) -> list[dict[str, Any]]:
    """Every case at ``n`` documents (default 100,000; quick: 10,000)."""
    n = n if n is not None else (10_000 if quick else 100_000)
    rounds = rounds if rounds is not None else (2 if quick else 3)
    docs = make_docs(n)
    print(f"[gcpause] {n:,} documents...", file=sys.stderr, flush=True)
    if threading.active_count() > 1:
        note = f"skipped: {threading.active_count() - 1} other threads run in this process, so no case runs alone"
        return [{"kind": "info", "suite": SUITE, "case": "collector pause", "n": n, "note": note}]
    rows = bench_case("insert_many of n docs", n, rounds, lambda db: db.insert_many(docs), lambda: _table(None),
                      single=True)
    loaded = _table(docs)
    rows += bench_case("all() -> docs", n, rounds, lambda db: db.all(), lambda: loaded, single=True)
    expected = sum(1 for d in docs if d["age"] < 20)

    def young(db: MicroDB) -> None:
        if len(db.query(where("age") < 20).all()) != expected:
            raise RuntimeError("the indexed query disagrees with the documents")

    rows += bench_case("query age < 20 (indexed) -> docs", n, rounds, young, lambda: loaded, single=False)
    loaded.close()
    rank = {"time": 0, "ratio": 1, "info": 2}
    return sorted(rows, key=lambda r: rank.get(str(r.get("kind")), 3))


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/bench_gcpause.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 documents, fewer rounds")
    parser.add_argument("--n", type=int, default=None, help="how many documents")
    args = parser.parse_args(argv)
    print_rows(run(quick=args.quick, n=args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
