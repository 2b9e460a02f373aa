"""The SQL engine's work as data: statements asked for, written once, run by two drivers.

A read or a write of the SQL engine is a generator ("steps"): it builds each statement
(with :mod:`microdb.compile.sql` and the engine's modules), *yields* it as a step, and is
sent back the step's answer (the rows). It never touches a connection itself. So the
same generator runs under the blocking driver (:func:`drive`, which the backends use
through ``SQLSessions._answer``: a DB-API connection in the calling thread) and under an
asyncio driver (:mod:`microdb.sql.pgasync`: psycopg's async connections on the event
loop). Only execution differs; the SQL text, the compiler and the decoding of rows are
shared.

A driver that fails a step throws the error into the generator at its ``yield``, which may
answer with more steps (``ROLLBACK TO SAVEPOINT``) before the error goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Copy", "Many", "Run", "Step", "Steps", "Stream", "Work", "drive", "savepoint_sql"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Run:
    """Run one statement; the answer is its rows (an empty list for a statement without)."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class Many:
    """Run one statement once per parameter row; no answer."""

    sql: str
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Stream:
    """Run a query whose rows the caller may stop reading early; the answer is an iterable
    of rows (fetched lazily by the blocking driver, in batches where the driver can)."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class Copy:
    """Load rows with ``COPY ... FROM STDIN`` (PostgreSQL); no answer."""

    sql: str
    rows: Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Work:
    """Pure Python work on ``size`` rows (decoding, checking, sorting): the answer is
    ``func(*args)``. The blocking driver calls it; the asyncio driver calls it on the
    loop when it is small and in a worker thread when it is large, so that decoding a
    large result never stalls the loop."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    size: int


Step = Run | Many | Stream | Copy | Work
#: A generator of steps returning ``T``.
Steps = Generator[Step, Any, T]


def drive(steps: Steps[T], answer: Callable[[Step], Any]) -> T:
    """Run ``steps`` to the end, answering each step with ``answer(step)`` (blocking)."""
    try:
        step = next(steps)
        while True:
            try:
                result = answer(step)
            except BaseException as exc:  # noqa: BLE001 - handed to the steps, which re-raise
                step = steps.throw(exc)
            else:
                step = steps.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def savepoint_sql(depth: int) -> tuple[str, str, str]:
    """A savepoint's statements: open it, roll back to it, release it (``depth`` numbers it
    among those open)."""
    name = f"microdb_sp{depth}"
    return f"SAVEPOINT {name}", f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}"
