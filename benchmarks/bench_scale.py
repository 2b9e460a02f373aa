"""Speed at scale: indexes at a million keys, compound indexes, counts, ranges, updates, arrays.

Run ``python benchmarks/bench_scale.py [--quick]``. Each question puts MicroDB beside the
reference a user would compare it with, in the same run, and reports the ratio:

1. **Indexes that scale.** Random keys (integers, floats, strings) inserted one call at a
   time into a table with a unique index, and into one without: the total against the
   unindexed total (target at most 2x at 1,000,000 keys), and the time per insert of the
   last 10,000 inserts at 1,000,000 keys against the same at 10,000 keys (flat: at most
   1.3x). Quick: 2,000 and 20,000 keys.

The other questions are added by the functions below; ``run`` lists them all.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from common import print_rows, ratio_row  # noqa: E402

from microdb import MicroDB  # noqa: E402
from microdb.storage.mapping import InMemoryStorage  # noqa: E402

__all__ = ["bench_index_scaling", "run"]

SUITE = "scale"

#: The last inserts of a fill, timed on their own: the cost of one insert at that size.
WINDOW = 10_000


def _row(case: str, system: str, n: int, seconds: float) -> dict[str, Any]:
    return {"kind": "time", "suite": SUITE, "case": case, "system": system, "n": n, "seconds": seconds}


def _info(case: str, n: int, note: str) -> dict[str, Any]:
    return {"kind": "info", "suite": SUITE, "case": case, "n": n, "note": note}


# -- 1. indexes that scale ----------------------------------------------------------------------

def _keys(kind: str, n: int) -> list[Any]:
    rng = random.Random(7)
    if kind == "int":
        return rng.sample(range(10**12), n)
    if kind == "float":
        return [rng.random() for _ in range(n)]
    return [f"user-{rng.getrandbits(64):016x}" for _ in range(n)]


def _fill(docs: list[dict[str, Any]], indexed: bool, window: int) -> tuple[float, float]:
    """Insert ``docs`` one call at a time: (seconds per insert overall, in the last ``window``)."""
    db = MicroDB(InMemoryStorage())
    table = db.table("t")
    if indexed:
        table.create_index("k", unique=True)
    insert = table.insert
    gc.collect()
    split = len(docs) - window
    start = time.perf_counter()
    for doc in docs[:split]:
        insert(doc)
    middle = time.perf_counter()
    for doc in docs[split:]:
        insert(doc)
    end = time.perf_counter()
    db.close()
    return (end - start) / len(docs), (end - middle) / window


def bench_index_scaling(sizes: tuple[int, int], kinds: tuple[str, ...] = ("int", "float", "str"),
                        rounds: int = 1) -> list[dict[str, Any]]:
    """Unique-indexed single inserts against unindexed ones, and per-insert time at two sizes."""
    small, big = sizes
    window = max(1, min(WINDOW, small // 2))
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        case = f"insert one by one, random {kind} keys"
        per_size: dict[int, float] = {}
        for n in (small, big):
            docs = [{"k": k, "i": i} for i, k in enumerate(_keys(kind, n))]
            best = {"indexed": (float("inf"), float("inf")), "plain": (float("inf"), float("inf"))}
            for _ in range(rounds):
                # Take turns, so a busy spell of the machine hits both alike.
                for system in ("plain", "indexed"):
                    got = _fill(docs, system == "indexed", window)
                    best[system] = min(best[system], got)
            rows.append(_row(case + " (per insert, whole fill)", "microdb unique index", n, best["indexed"][0]))
            rows.append(_row(case + " (per insert, whole fill)", "microdb no index", n, best["plain"][0]))
            rows.append(_row(case + f" (per insert, last {window:,})", "microdb unique index", n, best["indexed"][1]))
            rows.append(_row(case + f" (per insert, last {window:,})", "microdb no index", n, best["plain"][1]))
            rows.append(ratio_row(SUITE, f"{kind} keys: indexed / unindexed inserts", n,
                                  best["indexed"][0] / best["plain"][0], "times the unindexed time",
                                  "<= 2", big))
            per_size[n] = best["indexed"][1]
        rows.append(ratio_row(SUITE, f"{kind} keys: one indexed insert at {big:,} / at {small:,} keys", big,
                              per_size[big] / per_size[small], "times (flat is 1)", "<= 1.3", big))
    return rows


# -- the runner ---------------------------------------------------------------------------------

def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every question of this suite (quick: small sizes, one round)."""
    rows: list[dict[str, Any]] = []
    rows += bench_index_scaling((2_000, 20_000) if quick else (10_000, 1_000_000))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python benchmarks/bench_scale.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    args = parser.parse_args(argv)
    print_rows(run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
