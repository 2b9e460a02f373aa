"""Where a grouped durable insert's time goes, and the most group commit can gain from it.

Used by ``bench_scale.bench_group_commit``. A grouped insert costs ``w`` (Python and system
calls, serialised by the interpreter lock and the write lock) plus its share of one sync
``f``; a process also applies every other process's insert, at ``c`` each. ``w`` and ``c``
are timed with the sync made a no-op (so they hold no disk time), in the thread's CPU time
(so the other programs of a busy machine do not count; on a quiet one it is the elapsed
time), ``f`` is the sync of a small write on the same disk. From them:

- 8 threads share the sync, not ``w``: at most ``(w + f) / (w + f / 8)`` times one thread;
- 4 processes each apply every insert, so they need ``w + 3c`` of CPU per insert, spread
  over at most ``min(4, cores)`` cores; and each waits for a whole sync after its own
  write, so no more than 4 inserts share one: at most
  ``(w + f) / max((w + 3c) / min(4, cores), (w + f) / 4)``.

Both ignore the cost of threads and processes taking turns, so the measured ratios stay
below them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from common import ratio_row

import microdb.durability as durability
from microdb import MicroDB

__all__ = ["model_rows"]

clock = getattr(time, "thread_time", time.perf_counter)


@contextmanager
def _no_sync() -> Iterator[None]:
    """Every journal sync of MicroDB does nothing (timing only the work around it)."""
    real = durability._fdatasync
    durability._fdatasync = lambda fd: None
    try:
        yield
    finally:
        durability._fdatasync = real


def _work_and_catch_up(folder: str, count: int) -> tuple[float, float]:
    """Seconds of one grouped insert without its sync (``w``), and of applying one record
    another handle on the file wrote (``c``): best of 3."""
    path = os.path.join(folder, "model.json")
    doc = {"name": "x" * 80}
    w = c = float("inf")
    with _no_sync():
        writer = MicroDB(path, group_commit=True, checkpoint_interval=None)
        reader = MicroDB(path, group_commit=True, checkpoint_interval=None)
        writer.insert({"warm": True})
        reader.get(doc_id=1)
        try:
            for _ in range(3):
                start = clock()
                for i in range(count):
                    writer.insert({"i": i, **doc})
                w = min(w, (clock() - start) / count)
                reader.get(doc_id=1)  # caught up: the next loop times one record at a time
                spent = 0.0
                for i in range(count):
                    writer.insert({"i": i, **doc})
                    start = clock()
                    reader.get(doc_id=1)
                    spent += clock() - start
                idle = clock()
                for _ in range(count):
                    reader.get(doc_id=1)  # nothing new: what a read costs anyway
                nothing = clock() - idle
                c = min(c, max(spent - nothing, 0.0) / count)
        finally:
            writer.close()
            reader.close()
    return w, c


def model_rows(suite: str, case: str, folder: str, total: int, sync: float) -> list[dict[str, Any]]:
    """Rows for ``w``, ``c`` and the ceilings they set, given the disk's sync time ``sync``."""
    w, c = _work_and_catch_up(folder, max(total // 4, 20))
    cores = min(4, os.cpu_count() or 1)
    rows: list[dict[str, Any]] = [
        {"kind": "time", "suite": suite, "case": case + " (model)", "system": system, "n": total, "seconds": s}
        for system, s in (("w: one grouped insert, sync a no-op", w),
                          ("c: applying another process's insert", c),
                          ("f: one sync of 200 bytes", sync))
    ]
    rows.append(ratio_row(suite, "group commit ceiling: 8 threads / 1 thread, (w + f) / (w + f/8)", total,
                          (w + sync) / (w + sync / 8), "times the inserts per second"))
    rows.append(ratio_row(suite, f"group commit ceiling: 4 processes / 1 thread on {cores} cores", total,
                          (w + sync) / max((w + 3 * c) / cores, (w + sync) / 4), "times the inserts per second"))
    return rows
