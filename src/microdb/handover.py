"""Handing the interpreter lock to other threads, a slice at a time, during one thread's long read.

The async API runs a large read (a selection over 100,000 documents takes tens of
milliseconds) in a worker thread. A thread running Python code keeps the interpreter lock
until the switch interval (``sys.getswitchinterval()``, 5 ms by default) has passed since
another thread asked for it, so the event loop, woken by a timer or a socket, waited up to
5 ms for each step it took. The interval is one setting for the whole process, which a
library has no business changing.

So a thread reading for the event loop marks itself with :func:`handing_over`, and the
engines' long loops (the selection, the decoding of SQL rows, the copy of a result) work
in slices of :data:`ROWS` rows, calling :meth:`Pacer.tick` between two of them. Once
:data:`SLICE` seconds have passed since the last hand-over, ``tick`` sleeps for 0 s,
which releases the lock: a thread waiting for it (the loop) takes it, and this thread
goes on when the loop lets go (at its next ``await`` of something not ready); with no one
waiting, the thread takes it back after the system call (microseconds on an idle machine).
Unmarked threads (every synchronous call) find no pacer and run their loops whole.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TypeVar

__all__ = ["ROWS", "SLICE", "Pacer", "handing_over", "joined", "paced", "pacer"]

T = TypeVar("T")

#: Seconds of work after which the next tick hands the lock over.
SLICE = 0.001
#: Sort keys per run that :meth:`Pacer.order` sorts in one call (about a millisecond).
RUN = 2048
#: Rows (documents checked, rows decoded, documents copied) between two ticks: a slice of
#: a fraction of a millisecond with cheap predicates, so the clock is read rarely.
ROWS = 256


class Pacer:
    """Hands the interpreter lock over at most every :data:`SLICE` seconds."""

    __slots__ = ("_due",)

    def __init__(self) -> None:
        self._due = time.perf_counter() + SLICE

    def tick(self) -> None:
        """Let other threads run if this one has worked :data:`SLICE` seconds since the last time."""
        if time.perf_counter() >= self._due:
            # sleep(0) releases the lock and enters the kernel, long enough for the waiting
            # loop thread to wake and take the lock (once the loop has waited a whole switch
            # interval, CPython even holds this thread back until it has). select() with no
            # wait releases it too, but returns before the loop thread is awake, which then
            # rarely got the lock: measured, the loop's median lateness was 1.1 ms, not 0.2.
            time.sleep(0)
            self._due = time.perf_counter() + SLICE

    def slices(self, rows: Sequence[T]) -> Iterator[Sequence[T]]:
        """``rows`` in slices of :data:`ROWS`, with a tick between two slices."""
        for start in range(0, len(rows), ROWS):
            if start:
                self.tick()
            yield rows[start:start + ROWS]

    def joined(self, step: Callable[[Iterable[T]], list[Any]], rows: Iterable[T], size: int) -> list[Any]:
        """``step`` applied to ``rows`` (``size`` of them) :data:`ROWS` at a time, the lists
        it returns joined, with a tick between two slices."""
        rest = iter(rows)
        out: list[Any] = []
        for start in range(0, size, ROWS):
            if start:
                self.tick()
            # islice hands each row through: a dict's items iterator still reuses its pair.
            out.extend(step(islice(rest, ROWS)))
        return out

    def sorted(self, items: list[T], key: Callable[[T], Any], reverse: bool = False) -> list[T]:
        """``sorted(items, key=key, reverse=reverse)`` in slices: the keys made, sorted
        (:meth:`order`) and applied a slice at a time."""
        keys = self.joined(lambda part: [key(item) for item in part], items, len(items))
        order = self.order(keys, reverse)
        return self.joined(lambda part: [items[i] for i in part], order, len(order))

    def order(self, keys: list[Any], reverse: bool = False) -> list[int]:
        """The positions of ``keys`` in sorted order: ``sorted(range(len(keys)),
        key=keys.__getitem__, reverse=reverse)``, as stable, in slices.

        One sort of 100,000 keys is one call of 60 ms in C, which never lets go of the
        lock; so runs of :data:`RUN` keys are sorted, then merged (``heapq.merge`` takes
        equal keys from the earlier run first, which keeps the order stable).
        """
        get = keys.__getitem__
        runs: list[list[int]] = []
        for start in range(0, len(keys), RUN):
            if start:
                self.tick()
            runs.append(sorted(range(start, min(start + RUN, len(keys))), key=get, reverse=reverse))
        if len(runs) < 2:
            return runs[0] if runs else []
        self.tick()
        return self.joined(list, heapq.merge(*runs, key=get, reverse=reverse), len(keys))

    def each(self, rows: Iterable[T]) -> Iterator[T]:
        """``rows`` one at a time, with a tick after each (for rows that take long, such as
        SQL rows decoded into documents: a look at the clock is nothing beside them)."""
        for row in rows:
            yield row
            self.tick()


class _Mark(threading.local):
    #: The thread's pacer while it reads for the loop. A class default, so that looking it
    #: up in an unmarked thread (every synchronous read) costs no ``AttributeError``.
    pacer: Pacer | None = None


_local = _Mark()


def pacer() -> Pacer | None:
    """The calling thread's pacer while it reads for an event loop, else ``None``."""
    return _local.pacer


def joined(step: Callable[[Iterable[T]], list[Any]], rows: Iterable[T], size: int) -> list[Any]:
    """``step(rows)``: in one call, or in slices (:meth:`Pacer.joined`) while the calling
    thread reads for an event loop."""
    pace = pacer()
    return step(rows) if pace is None else pace.joined(step, rows, size)


class handing_over:  # noqa: N801 - used like a function: ``with handing_over():``
    """A block in which the calling thread's long reads hand the lock over (see the module).

    Blocks nest; the outermost one's pacer serves them all.
    """

    __slots__ = ("_outer",)

    def __enter__(self) -> Pacer:
        self._outer: Pacer | None = pacer()
        if self._outer is not None:
            return self._outer
        _local.pacer = mine = Pacer()
        return mine

    def __exit__(self, *exc: Any) -> None:
        if self._outer is None:
            _local.pacer = None


def paced(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``func(*args, **kwargs)`` called in a :func:`handing_over` block."""
    with handing_over():
        return func(*args, **kwargs)
