"""Live data: how fast a commit reaches another process's ``changes()``, and what it costs.

Three measures, each printed against its target from the issue:

- **Latency across processes**: this process inserts documents, one every 5 ms; a watcher
  in a second process iterates ``db.changes()`` and records, for each event, the delay
  from its commit (``Change.time``, stamped while the commit is made: after the journal
  record on the file, in the transaction on SQLite and PostgreSQL) to the moment it holds
  the event. p50 and p99, on the JSON file, SQLite and PostgreSQL (the test server of
  ``tests/pg_server.py``, when it can run). The delay from the ``insert()`` call (which
  includes the commit's own work, a few PostgreSQL round trips) is shown beside it.
- **Event-loop lag**: an ``AsyncMicroDB`` task runs a query selecting every document of a
  100,000-document table (``async for doc in table.query(...)``), again and again, while a
  second task sleeps 1 ms at a time and records how late it wakes. p99 of the lateness,
  and the same with no query running (what the machine itself adds). In memory (also
  with the data frozen, and with the query sorted), on the JSON file and on SQLite.
- **A watcher's cost to writers**: single non-durable inserts into the JSON file (the
  fastest writes, where a cost shows most), with the feed on, with and without a watcher
  process following it; the throughput ratio. The feed's own cost (feed on vs off, no
  watcher) is shown beside it. Runs alternate between the two setups, best of each.

Run alone with ``python benchmarks/bench_live.py [--quick] [--lag]`` (``--lag``: that measure only).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from common import make_docs, print_rows, ratio_row  # noqa: E402

from microdb import MicroDB, where  # noqa: E402
from microdb.aio import AsyncMicroDB  # noqa: E402

SUITE = "live"

WATCHER = r"""
import json, sys, time
from microdb import MicroDB
url, opts, since, count = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
db = MicroDB(url, **opts)
stream = db.changes(since=since, tables="live", timeout=30)
print("ready", flush=True)
delays = []
for change in stream:
    now = time.time()
    delays.append([now - change.time, now - change.doc["t"]])
    if len(delays) >= count:
        break
print(json.dumps(delays), flush=True)
db.close()
"""

FOLLOWER = r"""
import json, sys
from microdb import MicroDB
url = sys.argv[1]
db = MicroDB(url)
stream = db.changes(timeout=3)
print("ready", flush=True)
seen = sum(1 for _ in stream)
print(seen, flush=True)
db.close()
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _spawn(code: str, *args: object) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(HERE), "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _targets(folder: str) -> list[tuple[str, str, dict[str, Any], str, str]]:
    """(system, url, options, p50 target, p99 target) for each backend that can run."""
    out = [
        ("json file", os.path.join(folder, "live.json"), {}, "<= 10", "<= 50"),
        ("sqlite", f"sqlite:///{os.path.join(folder, 'live.sqlite')}", {}, "<= 10", "<= 50"),
    ]
    if TESTS not in sys.path:
        sys.path.insert(0, TESTS)
    import pg_server

    if pg_server.unavailable() is None:
        out.append(("postgresql", pg_server.server().url, {"schema": f"live_{os.getpid()}"}, "<= 10", "<= 10"))
    return out


def latency(system: str, url: str, opts: dict[str, Any], count: int) -> tuple[float, float, float, float]:
    """Delays (seconds) to ``changes()`` in another process: p50 and p99 from the commit
    (the event's ``time``, stamped as the commit is made), then from the ``insert()`` call."""
    db = MicroDB(url, changes=True, **opts)
    since = db.last_seq
    watcher = _spawn(WATCHER, url, json.dumps(opts), since, count)
    assert watcher.stdout is not None
    if watcher.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the {system} watcher did not start: {watcher.communicate()[1]}")
    table = db.table("live")
    for i in range(count):
        table.insert({"t": time.time(), "i": i})
        time.sleep(0.005)
    out, err = watcher.communicate(timeout=120)
    if watcher.returncode != 0:
        raise RuntimeError(f"the {system} watcher failed: {err}")
    delays = json.loads(out.strip().splitlines()[-1])
    db.close()
    commit, call = [d[0] for d in delays], [d[1] for d in delays]
    return _percentile(commit, 0.5), _percentile(commit, 0.99), _percentile(call, 0.5), _percentile(call, 0.99)


async def _loop_lag(db: AsyncMicroDB, seconds: float, sort: bool = False) -> tuple[list[float], int]:
    lags: list[float] = []
    queries = 0
    stop = False

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop:
            start = loop.time()
            await asyncio.sleep(0.001)
            lags.append(loop.time() - start - 0.001)

    async def reader() -> None:
        nonlocal queries
        while not stop:
            result = db.table("people").query(where("age") >= 0)
            async for _ in result.sort("city", "age") if sort else result:
                pass
            queries += 1

    tick, read = asyncio.create_task(ticker()), asyncio.create_task(reader())
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(tick, read)
    return lags, queries


async def _idle_lag(seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    end = loop.time() + seconds
    while loop.time() < end:
        start = loop.time()
        await asyncio.sleep(0.001)
        lags.append(loop.time() - start - 0.001)
    return lags


def loop_lag(
    n: int, seconds: float, *, freeze: bool = False, url: str | None = None, sort: bool = False
) -> tuple[float, float, int, float]:
    """Event-loop lag while another task queries ``n`` documents: p99, worst, queries run,
    and the p99 with no query running (what the machine adds by itself).

    ``url``: a JSON file's path or a ``sqlite:///`` URL (default: memory, the engine of
    the JSON file). ``sort``: the query sorts by two fields. The data is loaded, then
    collected once (a program's steady state). ``freeze`` also moves it out of the cyclic
    collector's sight (``gc.freeze()``), which a program holding a large database in
    memory may choose to do.
    """
    sync = MicroDB(url) if url is not None else MicroDB()
    sync.table("people").insert_many(make_docs(n))
    gc.collect()
    if freeze:
        gc.freeze()

    async def main() -> tuple[list[float], int, list[float]]:
        db = AsyncMicroDB(sync)
        idle = await _idle_lag(min(seconds, 2.0))
        lags, queries = await _loop_lag(db, seconds, sort)
        return lags, queries, idle

    try:
        lags, queries, idle = asyncio.run(main())
    finally:
        if freeze:
            gc.unfreeze()
        sync.close()
    return _percentile(lags, 0.99), max(lags), queries, _percentile(idle, 0.99)


def lag_rows(n: int, seconds: float, folder: str, quick: bool) -> list[dict[str, Any]]:
    """The loop-lag measure on memory (plain, data frozen, sorted), the JSON file and SQLite."""
    rows: list[dict[str, Any]] = []
    cases: list[tuple[str, dict[str, Any]]] = [
        ("", {}),
        (", data frozen with gc.freeze()", {"freeze": True}),
        (", sorted by two fields", {"sort": True}),
        (", JSON file", {"url": os.path.join(folder, "lag.json")}),
        (", SQLite", {"url": "sqlite:///" + os.path.join(folder, "lag.sqlite")}),
    ]
    for how, options in cases:
        print(f"[live] event-loop lag during {n:,}-document queries{how}...", file=sys.stderr, flush=True)
        p99, worst, queries, idle = loop_lag(n, seconds, **options)
        rows.append(ratio_row(
            SUITE, f"event-loop lag p99, async for over {n:,} documents{how}", n, p99 * 1000,
            f"ms late (1 ms sleeps; {queries} queries; worst {worst * 1000:.1f} ms; "
            f"p99 with no query {idle * 1000:.1f} ms)", "<= 5", None if quick else 100_000,
        ))
    return rows


def _insert_rate(path: str, count: int) -> float:
    db = MicroDB(path, durable=False)
    table = db.table("w")
    start = time.perf_counter()
    for i in range(count):
        table.insert({"i": i, "name": "writer", "tags": ["a", "b"]})
    elapsed = time.perf_counter() - start
    db.close()
    return count / elapsed


def watcher_cost(folder: str, count: int, rounds: int) -> tuple[float, float]:
    """Writer throughput with a watcher / without (feed on in both), and feed on / feed off."""
    with_feed = os.path.join(folder, "cost.json")
    no_feed = os.path.join(folder, "nofeed.json")
    MicroDB(with_feed, changes=True).close()
    best = {"off": 0.0, "on": 0.0, "watched": 0.0}
    for _ in range(rounds):
        best["off"] = max(best["off"], _insert_rate(no_feed, count))
        best["on"] = max(best["on"], _insert_rate(with_feed, count))
        follower = _spawn(FOLLOWER, with_feed)
        assert follower.stdout is not None
        follower.stdout.readline()
        best["watched"] = max(best["watched"], _insert_rate(with_feed, count))
        follower.communicate(timeout=60)
    return best["watched"] / best["on"], best["on"] / best["off"]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Every live-data measure; ``quick`` uses small sizes (targets are judged on the full run)."""
    count, n, seconds, writes, rounds = (20, 2_000, 0.5, 500, 1) if quick else (300, 100_000, 5.0, 5_000, 3)
    judged = None if quick else count
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="microdb-bench-live-") as folder:
        for system, url, opts, t50, t99 in _targets(folder):
            print(f"[live] latency across processes, {system}...", file=sys.stderr, flush=True)
            p50, p99, c50, c99 = latency(system, url, opts, count)
            meaning = "ms from a commit in process A to changes() in process B"
            rows.append(ratio_row(SUITE, f"{system}: p50 latency", count, p50 * 1000, meaning, t50, judged))
            rows.append(ratio_row(SUITE, f"{system}: p99 latency", count, p99 * 1000, meaning, t99, judged))
            rows.append({"kind": "info", "suite": SUITE, "case": f"{system}: from the insert() call", "n": count,
                         "note": f"p50 {c50 * 1000:.1f} ms, p99 {c99 * 1000:.1f} ms (the commit's own time included)"})
        rows.extend(lag_rows(n, seconds, folder, quick))
        print("[live] a watcher's cost to writers...", file=sys.stderr, flush=True)
        watched, feed = watcher_cost(folder, writes, rounds)
        rows.append(ratio_row(SUITE, "writer throughput with a watcher / without (feed on)", writes, watched,
                              "times the throughput without a watcher", ">= 0.9", None if quick else writes))
        rows.append(ratio_row(SUITE, "writer throughput, feed on / feed off (no watcher)", writes, feed,
                              "times the throughput without the feed"))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, a quick look")
    parser.add_argument("--lag", action="store_true", help="only the event-loop lag measure")
    args = parser.parse_args(argv)
    if args.lag:
        n, seconds = (2_000, 0.5) if args.quick else (100_000, 5.0)
        with tempfile.TemporaryDirectory(prefix="microdb-bench-live-") as folder:
            rows = lag_rows(n, seconds, folder, args.quick)
    else:
        rows = run(quick=args.quick)
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

