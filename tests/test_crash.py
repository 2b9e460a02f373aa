"""Crashes with real processes: SIGKILL at random moments, and a disk that fills up.

A child process runs a random mix of writes and prints, for each call, what it is about to
do (``begin``) and that the call returned (``ack``). The parent kills it with SIGKILL at a
random moment, reopens the file in a fresh process state, and checks that the file opens,
that every acknowledged call is there, and that nothing else is, except possibly the one
call in flight. Trials run one after the other on the same file (recovery after recovery),
within a time budget.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from microdb import AutoSavingDict, MicroDB

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals"),
]

TRIALS = 30
BUDGET = 20.0  # seconds of trials per test at most

DB_CHILD = r"""
import json, random, sys
from microdb import MicroDB, where
path, seed, durable = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rng = random.Random(seed)
db = MicroDB(path, durable=durable, checkpoint_bytes=3000, checkpoint_ratio=0.5)
t2 = db.table("t2")
live = {"_default": [d.doc_id for d in db.all()], "t2": [d.doc_id for d in t2.all()]}
say = sys.stdout.write
say("ready\n"); sys.stdout.flush()
i = 0
while True:
    r = rng.random()
    if r < 0.35 or not live["_default"]:
        op = ["insert", {"k": rng.randint(0, 99), "i": i}]
    elif r < 0.45:
        op = ["insert_many", [{"k": rng.randint(0, 99), "i": i, "j": j} for j in range(rng.randint(1, 4))]]
    elif r < 0.6:
        op = ["update_id", rng.choice(live["_default"]), {"u": i}]
    elif r < 0.64:
        op = ["update_query", rng.randint(0, 99), {"q": i}]
    elif r < 0.68:
        op = ["operators_query", rng.randint(0, 99), i]
    elif r < 0.78:
        op = ["remove_id", rng.choice(live["_default"])]
    elif r < 0.83:
        op = ["remove_query", rng.randint(80, 99)]
    elif r < 0.93:
        op = ["transaction", {"t": i}, rng.choice(live["_default"])]
    elif r < 0.97:
        op = ["t2_remove_all"]
    else:
        op = ["compact"]
    say(json.dumps(["begin", i, op]) + "\n"); sys.stdout.flush()
    kind = op[0]
    if kind == "insert":
        live["_default"].append(db.insert(op[1]))
    elif kind == "insert_many":
        live["_default"].extend(db.insert_many(op[1]))
    elif kind == "update_id":
        db.update(op[2], doc_ids=[op[1]])
    elif kind == "update_query":
        db.update(op[2], where("k") < op[1])
    elif kind == "operators_query":
        db.update({"$inc": {"c": 1}, "$unset": {"q": ""}, "$push": {"l": op[2]}}, where("k") < op[1])
    elif kind == "remove_id":
        db.remove(doc_ids=[op[1]])
        live["_default"].remove(op[1])
    elif kind == "remove_query":
        gone = db.remove(where("k") >= op[1])
        live["_default"] = [x for x in live["_default"] if x not in gone]
    elif kind == "transaction":
        with db.transaction():
            live["t2"].append(t2.insert(op[1]))
            db.update({"in_tx": op[1]["t"]}, doc_ids=[op[2]])
    elif kind == "t2_remove_all":
        t2.truncate()
        live["t2"] = []
    else:
        db.compact()
    say(json.dumps(["ack", i]) + "\n"); sys.stdout.flush()
    i += 1
"""

DICT_CHILD = r"""
import json, random, sys
from microdb import AutoSavingDict
path, seed, durable = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
rng = random.Random(seed)
d = AutoSavingDict(path, durable=durable, checkpoint_bytes=2000, checkpoint_ratio=0.5)
say = sys.stdout.write
say("ready\n"); sys.stdout.flush()
i = 0
while True:
    r = rng.random()
    key = "k%d" % rng.randint(0, 30)
    if r < 0.5:
        op = ["set", key, {"i": i, "l": list(range(rng.randint(0, 5)))}]
    elif r < 0.7:
        op = ["update", {"k%d" % rng.randint(0, 30): i for _ in range(rng.randint(1, 5))}]
    elif r < 0.9:
        op = ["pop", key]
    elif r < 0.93:
        op = ["clear"]
    else:
        op = ["compact"]
    say(json.dumps(["begin", i, op]) + "\n"); sys.stdout.flush()
    if op[0] == "set":
        d[op[1]] = op[2]
    elif op[0] == "update":
        d.update(op[1])
    elif op[0] == "pop":
        d.pop(op[1], None)
    elif op[0] == "clear":
        d.clear()
    else:
        d.compact()
    say(json.dumps(["ack", i]) + "\n"); sys.stdout.flush()
    i += 1
"""


# -- models: what the file must hold after the acknowledged calls -----------------------------------

class DBModel:
    """The expected content of the database the DB child writes."""

    def __init__(self, db: MicroDB):
        self.tables: dict[str, dict[int, dict[str, Any]]] = {
            name: {d.doc_id: dict(d) for d in db.table(name).all()} for name in ("_default", "t2")
        }
        self.next_id = {name: db.backend.next_id(name) for name in ("_default", "t2")}  # type: ignore[attr-defined]

    def copy(self) -> DBModel:
        """An independent copy."""
        other = DBModel.__new__(DBModel)
        other.tables = {name: {i: dict(d) for i, d in docs.items()} for name, docs in self.tables.items()}
        other.next_id = dict(self.next_id)
        return other

    def _insert(self, table: str, doc: dict[str, Any]) -> None:
        self.tables[table][self.next_id[table]] = dict(doc)
        self.next_id[table] += 1

    def apply(self, op: list[Any]) -> None:
        """Apply one call, as the database does."""
        docs = self.tables["_default"]
        kind = op[0]
        if kind == "insert":
            self._insert("_default", op[1])
        elif kind == "insert_many":
            for doc in op[1]:
                self._insert("_default", doc)
        elif kind == "update_id":
            docs[op[1]].update(op[2])
        elif kind == "update_query":
            for doc in docs.values():
                if doc["k"] < op[1]:
                    doc.update(op[2])
        elif kind == "operators_query":
            for doc in docs.values():
                if doc["k"] < op[1]:
                    doc["c"] = doc.get("c", 0) + 1
                    doc.pop("q", None)
                    doc["l"] = [*doc.get("l", []), op[2]]
        elif kind == "remove_id":
            del docs[op[1]]
        elif kind == "remove_query":
            for doc_id in [i for i, d in docs.items() if d["k"] >= op[1]]:
                del docs[doc_id]
        elif kind == "transaction":
            self._insert("t2", op[1])
            docs[op[2]]["in_tx"] = op[1]["t"]
        elif kind == "t2_remove_all":
            self.tables["t2"].clear()


def read_db(path: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """The database's content, read by a fresh handle."""
    with MicroDB(str(path), read_only=True) as db:
        return {name: {d.doc_id: dict(d) for d in db.table(name).all()} for name in ("_default", "t2")}


def run_child(code: str, path: Path, seed: int, durable: bool, rng: random.Random) -> tuple[list[list[Any]], int | None]:
    """Start a writer, kill it with SIGKILL at a random moment; its calls and the one in flight."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path), str(seed), "1" if durable else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[bytes] = []
    ready = threading.Event()

    def drain() -> None:
        # Read as the child writes, so it never blocks on a full pipe.
        assert proc.stdout is not None
        for raw in proc.stdout:
            if raw == b"ready\n":
                ready.set()
            else:
                lines.append(raw)
        ready.set()

    reader = threading.Thread(target=drain)
    reader.start()
    ready.wait(timeout=60)
    time.sleep(rng.uniform(0.0, 0.25))
    proc.send_signal(signal.SIGKILL)
    reader.join(timeout=60)
    err = proc.stderr.read()
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, err.decode()
    begun: list[list[Any]] = []
    acked = 0
    for raw in lines:
        try:
            entry = json.loads(raw)
        except ValueError:
            break  # the last line, cut by the kill
        if entry[0] == "begin":
            begun.append(entry[2])
        else:
            acked = entry[1] + 1
    assert len(begun) - acked in (0, 1)
    in_flight = len(begun) - 1 if len(begun) > acked else None
    return begun, in_flight


def test_sigkill_at_random_moments_database(tmp_path: Path) -> None:
    """Killed at random moments, the database keeps every acknowledged call and nothing else."""
    path = tmp_path / "db.json"
    rng = random.Random(1234)
    start, trials, calls = time.monotonic(), 0, 0
    while trials < TRIALS and time.monotonic() - start < BUDGET:
        with MicroDB(str(path)) as db:  # recovery by a writer, as the next run of a program does
            model = DBModel(db)
        begun, in_flight = run_child(DB_CHILD, path, trials, durable=trials % 2 == 0, rng=rng)
        done = len(begun) if in_flight is None else in_flight
        for op in begun[:done]:
            model.apply(op)
        json.loads(path.read_text())  # the snapshot is always whole JSON
        found = read_db(path)
        allowed = [model.tables]
        if in_flight is not None:
            after = model.copy()
            after.apply(begun[in_flight])
            allowed.append(after.tables)
        assert found in allowed, f"trial {trials}: {done} acked calls, in flight: {begun[in_flight] if in_flight is not None else None}"
        trials += 1
        calls += done
    assert trials >= 5 and calls > 100


def test_sigkill_at_random_moments_autosaving_dict(tmp_path: Path) -> None:
    """Killed at random moments, an AutoSavingDict keeps every acknowledged change and nothing else."""
    path = tmp_path / "d.json"
    rng = random.Random(99)
    start, trials, calls = time.monotonic(), 0, 0
    while trials < TRIALS and time.monotonic() - start < BUDGET / 2:
        with AutoSavingDict(path) as d:
            model = d.to_dict()
        begun, in_flight = run_child(DICT_CHILD, path, trials, durable=trials % 2 == 1, rng=rng)
        done = len(begun) if in_flight is None else in_flight

        def apply(state: dict[str, Any], op: list[Any]) -> None:
            if op[0] == "set":
                state[op[1]] = op[2]
            elif op[0] == "update":
                state.update(op[1])
            elif op[0] == "pop":
                state.pop(op[1], None)
            elif op[0] == "clear":
                state.clear()

        for op in begun[:done]:
            apply(model, op)
        with AutoSavingDict(path, read_only=True) as d:
            found = d.to_dict()
        allowed = [model]
        if in_flight is not None:
            after = json.loads(json.dumps(model))
            apply(after, begun[in_flight])
            allowed.append(after)
        assert found in allowed, f"trial {trials}: {done} acked calls"
        assert isinstance(json.loads(path.read_text()), dict)
        trials += 1
        calls += done
    assert trials >= 5 and calls > 100


# -- a full disk ------------------------------------------------------------------------------------

DISK_FULL_CHILD = r"""
import json, resource, signal, sys
from microdb import MicroDB, AutoSavingDict, StorageError
path, limit, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
acked, errors = [], []
if kind == "db":
    db = MicroDB(path, durable=False, checkpoint_bytes=2000, checkpoint_ratio=0.5)
    for i in range(5000):
        try:
            db.insert({"i": i, "pad": "x" * 50})
            acked.append(i)
        except StorageError as exc:
            errors.append(str(exc))
            if len(errors) == 3:
                break
    assert [d["i"] for d in db.all()] == acked, "memory holds only what was stored"
    db.close()
else:
    d = AutoSavingDict(path, durable=False, checkpoint_bytes=2000, checkpoint_ratio=0.5)
    for i in range(5000):
        try:
            d["k%d" % i] = "x" * 50
            acked.append(i)
        except StorageError as exc:
            errors.append(str(exc))
            if len(errors) == 3:
                break
    assert len(d) == len(acked)
    d.close()
print(json.dumps({"acked": acked, "errors": errors}))
"""


@pytest.mark.skipif(sys.platform == "win32" or not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("kind", ["db", "dict"])
@pytest.mark.parametrize("limit", [30_000, 120_000])
def test_disk_full(tmp_path: Path, kind: str, limit: int) -> None:
    """With file sizes capped, writes fail with a clear StorageError; every earlier write survives."""
    path = tmp_path / "full.json"
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(path), str(limit), kind], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    acked = report["acked"]
    assert acked == list(range(len(acked))) and len(acked) > 10
    assert len(report["errors"]) == 3 and all("disk is full" in e for e in report["errors"])
    if kind == "db":
        with MicroDB(str(path)) as db:
            assert [d["i"] for d in db.all()] == acked
            db.insert({"after": True})  # without the cap, the file takes writes again
    else:
        with AutoSavingDict(path) as d:
            assert sorted(d) == sorted(f"k{i}" for i in acked)
