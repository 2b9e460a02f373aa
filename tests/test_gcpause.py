"""The cyclic collector is paused for one thread's bulk work only when no other thread runs.

Each case runs in a fresh interpreter, so the threads the test session keeps (database
pools, servers) cannot decide the outcome.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import gc, sys, threading
    from microdb import MicroDB
    from microdb.gcpause import paused_gc

    other = sys.argv[1] == "thread"
    stop = threading.Event()
    if other:
        threading.Thread(target=stop.wait, daemon=True).start()
    seen = set()

    def documents():
        for i in range(2000):
            seen.add(gc.isenabled())  # runs inside insert_many, while it builds its copies
            yield {"n": i, "tags": [i]}

    db = MicroDB()
    db.insert_many(documents())
    with paused_gc(5000):
        inside = gc.isenabled()
        with paused_gc(5000):
            nested = gc.isenabled()
        after_nested = gc.isenabled()
    with paused_gc(10):
        small = gc.isenabled()
    stop.set()
    print(sorted(seen), inside, nested, after_nested, small, gc.isenabled())
    """
)


def _run(mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # Alone: bulk work runs with the collector off (nested blocks keep it off), small
        # work leaves it on, and it is on again afterwards.
        ("alone", "[False] False False False True True"),
        # Another thread is running: the collector is never switched off under it.
        ("thread", "[True] True True True True True"),
    ],
)
def test_collector_is_paused_only_for_a_lone_thread(mode: str, expected: str) -> None:
    """Bulk work pauses the collector when its thread is alone, and never under another thread."""
    assert _run(mode) == expected
