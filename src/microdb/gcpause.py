"""Pausing Python's cyclic garbage collector during one thread's bulk work.

Building many thousands of small containers makes the collector run over and over on a
heap that only grows, though documents hold no reference cycles: collecting once
afterwards loses nothing. ``benchmarks/bench_gcpause.py`` measures what the pause saves
(docs/benchmarks.md has the figures): with 100,000 documents, ``insert_many`` and a read
of every document take two to four times as long with the collector running.

The collector is one switch for the whole process, so switching it off would stop it for
every other thread too, during work that is not theirs. The pause is therefore taken only
when the calling thread is the only thread of the process: then it pauses nothing but
that thread's own work. While other threads run, the collector is left on and the bulk
work pays the cost above.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from typing import Any

__all__ = ["THRESHOLD", "paused_gc"]

#: Below this many documents the collector is left alone.
THRESHOLD = 1000


class _Pause:
    """Disables the collector for the block and enables it again after."""

    __slots__ = ()

    def __enter__(self) -> None:
        gc.disable()

    def __exit__(self, *exc: Any) -> None:
        gc.enable()


_PAUSE = _Pause()
_LEAVE = contextlib.nullcontext()


def paused_gc(size: int = THRESHOLD) -> contextlib.AbstractContextManager[None]:
    """A block that pauses the cyclic collector for ``size`` documents of this thread's work.

    It pauses only when ``size`` reaches :data:`THRESHOLD`, the collector is on, and the
    calling thread is the process's only thread (see the module docstring). Otherwise, and
    inside a pause already, it is a shared no-op block: every query's read passes here.
    """
    if size < THRESHOLD or not gc.isenabled() or threading.active_count() > 1:
        return _LEAVE
    return _PAUSE
