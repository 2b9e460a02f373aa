"""Several processes and threads on one file: nothing lost, counters exact, ids unique."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from microdb import AutoSavingDict, LockTimeout, MicroDB

pytestmark = pytest.mark.slow

WORKER = r"""
import sys, threading
from microdb import MicroDB
from microdb.operations import increment
path, name, threads, rounds, durable = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
db = MicroDB(path, durable=durable, checkpoint_bytes=4000, checkpoint_ratio=0.3, lock_timeout=60)
events = db.table("events")
errors = []

def work(t):
    try:
        for i in range(rounds):
            events.insert({"who": name, "thread": t, "i": i})
            # a function and an operation: both are atomic read-modify-writes across processes
            db.update(lambda doc: doc.__setitem__("n", doc["n"] + 1), doc_ids=[1])
            db.update(increment("m"), doc_ids=[1])
    except BaseException as exc:
        errors.append(repr(exc))

workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
db.close()
if errors:
    sys.exit("errors: " + "; ".join(errors))
"""


def spawn(code: str, *args: object) -> subprocess.Popen[bytes]:
    """Start ``code`` in a new Python process."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stderr=subprocess.PIPE)


def finish(procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait for every process and fail on any error."""
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()


def test_processes_and_threads_lose_nothing(tmp_path: Path) -> None:
    """Four processes of three threads insert and increment one counter: every write counted once."""
    path = tmp_path / "db.json"
    with MicroDB(str(path)) as db:
        db.insert({"n": 0, "m": 0})
    procs, threads, rounds = 4, 3, 40
    finish([spawn(WORKER, path, f"p{p}", threads, rounds, p % 2) for p in range(procs)])
    with MicroDB(str(path)) as db:
        total = procs * threads * rounds
        assert db.get(doc_id=1) == {"n": total, "m": total}
        events = db.table("events").all()
        assert len(events) == total
        assert sorted(d.doc_id for d in events) == list(range(1, total + 1))
        seen = {(d["who"], d["thread"], d["i"]) for d in events}
        assert len(seen) == total


def test_transactions_are_seen_whole_by_other_processes(tmp_path: Path) -> None:
    """A reader process never sees half of another process's transaction, across checkpoints."""
    path = tmp_path / "db.json"
    writer = r"""
import sys
from microdb import MicroDB
db = MicroDB(sys.argv[1], durable=False, checkpoint_bytes=2000, checkpoint_ratio=0.2)
for i in range(300):
    with db.transaction():
        db.insert({"pair": i, "half": 1})
        db.table("other").insert({"pair": i})
        db.insert({"pair": i, "half": 2})
db.close()
"""
    reader = r"""
import sys, json, time
from microdb import MicroDB
db = MicroDB(sys.argv[1], read_only=True)
print("ready", flush=True)
counts = []
deadline = time.monotonic() + 100
while time.monotonic() < deadline:
    others = len(db.table("other"))  # read first: n, read after, can only be larger
    n = len(db)
    counts.append(n)
    if n % 2 or others > (n - 2) // 2:
        sys.exit("saw half a transaction: %d, %d" % (n, others))
    if n == int(sys.argv[2]):
        break
print(json.dumps([counts[0], counts[-1], len(counts)]))
"""
    with MicroDB(str(path)) as db:
        db.insert({"pair": -1, "half": 1})
        db.insert({"pair": -1, "half": 2})
    proc_r = subprocess.Popen([sys.executable, "-c", reader, str(path), "602"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc_r.stdout is not None
    assert proc_r.stdout.readline() == b"ready\n"  # the reader watches before the writer starts
    proc_w = spawn(writer, path)
    finish([proc_w])
    out = proc_r.stdout.read()  # the buffered reader: it may already hold part of the output
    proc_r.wait(timeout=120)
    assert proc_r.stderr is not None
    err = proc_r.stderr.read()
    proc_r.stdout.close()
    proc_r.stderr.close()
    assert proc_r.returncode == 0, err.decode()
    first, last, reads = json.loads(out)
    assert last == 602 and reads > 1


def test_lock_timeout_across_processes(tmp_path: Path) -> None:
    """While another process holds the write lock, a write raises LockTimeout; afterwards it succeeds."""
    path = tmp_path / "db.json"
    holder = r"""
import sys, time
from microdb import MicroDB
db = MicroDB(sys.argv[1])
with db.transaction():
    db.insert({"by": "holder"})
    print("holding", flush=True)
    sys.stdin.readline()
db.close()
"""
    db = MicroDB(str(path), lock_timeout=0.3)
    proc = subprocess.Popen([sys.executable, "-c", holder, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == b"holding\n"
    start = time.monotonic()
    with pytest.raises(LockTimeout):
        db.insert({"by": "parent"})
    assert time.monotonic() - start < 5  # bounded: the lock wait never hangs
    assert db.all() == []  # the holder's transaction is not visible before it commits
    out, err = proc.communicate(b"\n", timeout=60)
    assert proc.returncode == 0, err.decode()
    db.insert({"by": "parent"})
    assert [d["by"] for d in db.all()] == ["holder", "parent"]
    db.close()


def test_a_killed_lock_holder_releases_the_lock(tmp_path: Path) -> None:
    """A process killed inside a transaction frees the lock, and its uncommitted writes never appear."""
    path = tmp_path / "db.json"
    holder = r"""
import sys
from microdb import MicroDB
db = MicroDB(sys.argv[1])
with db.transaction():
    db.insert({"by": "doomed"})
    print("holding", flush=True)
    sys.stdin.readline()
"""
    proc = subprocess.Popen([sys.executable, "-c", holder, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"holding\n"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    with MicroDB(str(path), lock_timeout=5) as db:
        assert db.insert({"by": "survivor"}) == 1
        assert [d["by"] for d in db.all()] == ["survivor"]


def test_autosaving_dict_shared_by_processes(tmp_path: Path) -> None:
    """Processes writing their own keys of one AutoSavingDict all land; each change is atomic."""
    path = tmp_path / "d.json"
    worker = r"""
import sys
from microdb import AutoSavingDict
with AutoSavingDict(sys.argv[1], checkpoint_bytes=1000, checkpoint_ratio=0.3, lock_timeout=60) as d:
    for i in range(60):
        d[f"{sys.argv[2]}-{i}"] = i
        if i % 10 == 0:
            d.update({f"{sys.argv[2]}-batch-{i}-{j}": j for j in range(3)})
        d.pop(f"{sys.argv[2]}-{i - 1}", None)
"""
    finish([spawn(worker, path, f"w{p}") for p in range(4)])
    with AutoSavingDict(path) as d:
        content = d.to_dict()
    for p in range(4):
        assert content[f"w{p}-59"] == 59
        assert not any(f"w{p}-{i}" in content for i in range(59))
        assert all(content[f"w{p}-batch-{i}-{j}"] == j for i in range(0, 60, 10) for j in range(3))
    assert len(content) == 4 * (1 + 6 * 3)
