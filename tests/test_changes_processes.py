"""The change feed with real processes: killed writers, restarted watchers, checkpoints, crowds."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from microdb import ChangesExpiredError, MicroDB
from sql_backends import new_schema, require_postgres

pytestmark = pytest.mark.slow

WRITER = r"""
import sys, json
from microdb import MicroDB
url, opts, who, count, pair = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
db = MicroDB(url, **opts)
t = db.table("t")
i = 0
while i < count:
    if pair and i + 1 < count:
        with db.transaction():  # two documents, one commit
            t.insert({"who": who, "i": i})
            t.insert({"who": who, "i": i + 1})
        i += 2
    else:
        t.insert({"who": who, "i": i})
        i += 1
    if len(sys.argv) > 6:
        print(i, flush=True)
db.close()
"""

WATCHER = r"""
import sys, json
from microdb import MicroDB
url, opts, since, expected, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
db = MicroDB(url, **opts)
seen = 0
with open(out, "a") as f:
    for c in db.changes(since=since, tables="t", timeout=30):
        f.write(json.dumps([c.seq, c.op, c.doc["who"], c.doc["i"]]) + "\n")
        f.flush()
        seen += 1
        if seen >= expected:
            break
print("ready", flush=True)
db.close()
"""


def _json(tmp: Path) -> tuple[str, dict[str, object]]:
    return str(tmp / "db.json"), {}


def _sqlite(tmp: Path) -> tuple[str, dict[str, object]]:
    return f"sqlite:///{tmp / 'db.sqlite'}", {}


def _postgres(tmp: Path) -> tuple[str, dict[str, object]]:
    return require_postgres(), {"schema": new_schema(), "pool_size": 2}


TARGETS: dict[str, Callable[[Path], tuple[str, dict[str, object]]]] = {
    "json": _json, "sqlite": _sqlite, "postgres": _postgres,
}


def spawn(code: str, *args: object, out: bool = False) -> subprocess.Popen[bytes]:
    """Start ``code`` in a new Python process."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stderr=subprocess.PIPE,
        stdout=subprocess.PIPE if out else subprocess.DEVNULL,
    )


def finish(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a process and fail on its error."""
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()


def read_lines(path: Path) -> list[list[object]]:
    """The events a watcher wrote, one JSON list per line."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(params=sorted(TARGETS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, object]]:
    """A database URL (or path) and its options, fresh for the test, with the feed on."""
    url, opts = TARGETS[request.param](tmp_path)
    MicroDB(url, changes=True, **opts).close()
    return url, opts


def test_a_watcher_survives_a_writer_killed_mid_stream(target: tuple[str, dict[str, object]]) -> None:
    """Killing a writer with SIGKILL loses no committed event and duplicates none."""
    url, opts = target
    db = MicroDB(url, **opts)
    stream = db.changes(tables="t", timeout=3)
    victim = spawn(WRITER, url, json.dumps(opts), "victim", 100_000, 0, "progress", out=True)
    assert victim.stdout is not None
    for _ in range(30):
        victim.stdout.readline()  # let it commit some
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    finish(spawn(WRITER, url, json.dumps(opts), "after", 20, 0))
    events: list[tuple[int, str, int]] = []
    gaps: list[int] = []
    while True:
        try:
            for c in stream:
                events.append((c.seq, c.doc["who"], c.doc["i"]))  # type: ignore[index]
        except ChangesExpiredError as exc:  # a commit the victim made but could not announce
            assert exc.seq is not None
            gaps.append(exc.seq)
            stream = db.changes(since=exc.seq, tables="t", timeout=3)
            continue
        break
    stored = {(d["who"], d["i"]) for d in db.table("t").all()}
    announced = [(who, i) for _, who, i in events]
    assert len(announced) == len(set(announced))  # nothing twice
    assert len(stored) - len(announced) == len(gaps)  # every commit: an event, or a reported gap
    assert [who for who, i in announced if who == "after"] == ["after"] * 20
    assert [s for s, _, _ in events] == sorted(s for s, _, _ in events)
    db.close()


def test_a_watcher_resumes_after_its_own_restart(tmp_path: Path, target: tuple[str, dict[str, object]]) -> None:
    """A watcher killed mid-stream picks up after the last commit it recorded."""
    url, opts = target
    out = tmp_path / "seen.jsonl"
    finish(spawn(WRITER, url, json.dumps(opts), "w", 40, 1))
    first = spawn(WATCHER, url, json.dumps(opts), 0, 15, out)
    finish(first)
    done = read_lines(out)
    last = int(done[-1][0])  # type: ignore[call-overload]
    # Resume after the last *whole* commit recorded (a commit's second event may be missing).
    if len([e for e in done if e[0] == last]) < 2:
        last -= 1
        done = [e for e in done if int(e[0]) <= last]  # type: ignore[call-overload]
        out.write_text("".join(json.dumps(e) + "\n" for e in done))
    writer = spawn(WRITER, url, json.dumps(opts), "x", 10, 0)
    second = spawn(WATCHER, url, json.dumps(opts), last, 40 + 10 - len(done), out)
    finish(writer)
    finish(second)
    events = read_lines(out)
    keys = [(e[2], e[3]) for e in events]
    assert len(keys) == len(set(keys)) == 50
    assert [e[0] for e in events] == sorted(e[0] for e in events)  # type: ignore[type-var]


def test_checkpoints_during_a_watch_lose_nothing(tmp_path: Path) -> None:
    """A writer that checkpoints every few commits (and compacts) keeps the feed whole."""
    path = tmp_path / "db.json"
    MicroDB(path, changes=True).close()
    opts = {"checkpoint_bytes": 0, "checkpoint_ratio": 0.05}
    out = tmp_path / "seen.jsonl"
    watcher = spawn(WATCHER, path, "{}", 0, 60, out)
    writer = spawn(WRITER, path, json.dumps(opts), "w", 60, 1)
    finish(writer)
    with MicroDB(path) as db:
        db.compact()
    finish(watcher)
    events = read_lines(out)
    assert [e[3] for e in events] == list(range(60))
    assert len({e[0] for e in events}) == 30  # pairs share a commit


def test_four_writers_and_two_watchers(tmp_path: Path, target: tuple[str, dict[str, object]]) -> None:
    """4 writer processes and 2 watcher processes: each watcher sees every event exactly once."""
    url, opts = target
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    per_writer = 40
    watchers = [spawn(WATCHER, url, json.dumps(opts), 0, 4 * per_writer, out) for out in outs]
    time.sleep(0.2)
    writers = [spawn(WRITER, url, json.dumps(opts), f"w{n}", per_writer, n % 2) for n in range(4)]
    for proc in writers + watchers:
        finish(proc)
    expected = {(f"w{n}", i) for n in range(4) for i in range(per_writer)}
    orders = []
    for out in outs:
        events = read_lines(out)
        keys = [(e[2], e[3]) for e in events]
        assert len(keys) == len(set(keys)) and set(keys) == expected
        seqs = [int(e[0]) for e in events]  # type: ignore[call-overload]
        assert seqs == sorted(seqs)
        # each writer's own documents arrive in the order it wrote them
        for n in range(4):
            assert [i for who, i in keys if who == f"w{n}"] == list(range(per_writer))
        orders.append(events)
    assert orders[0] == orders[1]  # both watchers saw the same history
