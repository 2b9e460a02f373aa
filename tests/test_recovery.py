"""Recovery: torn journal tails, damage, crashes and faults at every step of a checkpoint."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microdb.storage.checkpoint as checkpoint
import microdb.storage.journal as journal
from microdb import AutoSavingDict, CorruptDatabaseError, MicroDB, StorageError, where
from microdb.storage.journal import JournaledFile

STEPS = ["begin", "snapshot-written", "journal-written", "snapshot-replaced", "journal-replaced", "done"]


def state_of(path: Path, **options: Any) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Every table of the database at ``path``, as (id, document) lists, opened afresh."""
    with MicroDB(str(path), **options) as db:
        return {name: [(d.doc_id, dict(d)) for d in db.table(name).all()] for name in sorted(db.tables())}


def files(folder: Path) -> dict[str, bytes]:
    """Every file of ``folder`` and its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def record_spans(journal: bytes) -> list[tuple[int, int]]:
    """(start, end) of every record of a journal, header included."""
    spans, pos = [], 0
    data = journal.rstrip(b"\0")
    while pos < len(data):
        end = data.index(b"\n", pos) + 1
        spans.append((pos, end))
        pos = end
    return spans


def image(src: Path, dst: Path) -> Path:
    """Copy a database's snapshot and journal, as a crash at this instant would leave them."""
    dst.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".journal"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(dst / src.name) + suffix)
    return dst / src.name


def build(path: Path) -> list[dict[str, list[tuple[int, dict[str, Any]]]]]:
    """Five commits of inserts, updates, removes and a new table; the state after each one."""
    states = []
    db = MicroDB(str(path))
    steps = [
        lambda: db.insert_many([{"n": i} for i in range(5)]),
        lambda: db.update({"even": True}, where("n").test(lambda n: n % 2 == 0)),
        lambda: db.remove(doc_ids=[2, 5]),
        lambda: db.table("t").insert({"x": "y"}),
        lambda: db.insert({"n": 99}),
    ]
    for step in steps:
        step()
        states.append({name: [(d.doc_id, dict(d)) for d in db.table(name).all()] for name in sorted(db.tables())})
    db.backend.store.file._close_fds()  # type: ignore[attr-defined]  # vanish without a checkpoint, as a crash would
    return states


# -- torn tails ---------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [1, 8, 17, 18, 19, 30, -2, -1])
@pytest.mark.parametrize("zeros", [True, False])
def test_torn_last_record_is_ignored(tmp_path: Path, keep: int, zeros: bool) -> None:
    """A last record cut anywhere (with or without the space after it) is ignored on open."""
    path = tmp_path / "a" / "db.json"
    states = build(path)
    journal = Path(str(path) + ".journal")
    data = journal.read_bytes()
    start, end = record_spans(data)[-1]
    cut = start + (keep if keep > 0 else end - start + keep)
    torn = data[:cut] + (bytes(len(data) - cut) if zeros else b"")
    journal.write_bytes(torn)
    assert state_of(path, read_only=True) == states[-2]
    assert journal.read_bytes() == torn  # a read-only open cleans nothing
    with MicroDB(str(path)) as db:  # a writable open zeroes the torn record...
        assert journal.read_bytes()[start:cut] == bytes(cut - start)
        db.insert({"after": True})  # ...and the next commit goes where it was
    final = state_of(path)
    assert final["_default"][:-1] == states[-2]["_default"] and final["_default"][-1][1] == {"after": True}


def test_garbage_after_the_last_record_is_ignored(tmp_path: Path) -> None:
    """Random bytes after the last good record (a torn write of any shape) are a torn tail."""
    path = tmp_path / "db.json"
    states = build(path)
    journal = Path(str(path) + ".journal")
    data = journal.read_bytes().rstrip(b"\0")
    journal.write_bytes(data + b"0000ffff 12345678 [[\"p\", \"t\"\n\x01\x02garbage")
    assert state_of(path) == states[-1]


@settings(max_examples=40, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10_000), seed=st.integers(0, 3))
def test_any_cut_of_the_journal_opens_at_a_commit_boundary(cut: int, seed: int) -> None:
    """Cutting the journal at any byte opens the state of the last whole commit before the cut."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "db.json"
        states = build(path)
        journal = Path(str(path) + ".journal")
        data = journal.read_bytes()
        spans = record_spans(data)
        cut = spans[0][1] + cut % (len(data.rstrip(b"\0")) - spans[0][1] + 1)
        journal.write_bytes(data[:cut] + bytes(seed * 100))
        whole = sum(1 for _, end in spans[1:] if end <= cut)
        expected = states[whole - 1] if whole else {}
        assert state_of(path, read_only=True) == expected


# -- damage --------------------------------------------------------------------------------------

@pytest.mark.parametrize("record", [1, 2, 3])
@pytest.mark.parametrize("where_in", ["length", "checksum", "payload", "newline"])
def test_damaged_record_before_the_tail_is_refused(tmp_path: Path, record: int, where_in: str) -> None:
    """A bad record with good ones after it raises CorruptDatabaseError at its offset, files untouched."""
    path = tmp_path / "db.json"
    build(path)
    journal = Path(str(path) + ".journal")
    data = bytearray(journal.read_bytes())
    start, end = record_spans(bytes(data))[record]
    pos = {"length": start + 3, "checksum": start + 12, "payload": start + 25, "newline": end - 1}[where_in]
    data[pos] = ord("X") if data[pos] != ord("X") else ord("Y")
    journal.write_bytes(bytes(data))
    before = files(tmp_path)
    for read_only in (True, False):
        with pytest.raises(CorruptDatabaseError) as info:
            MicroDB(str(path), read_only=read_only)
        assert info.value.offset == start
        assert info.value.path == str(journal)
        assert f"byte {start}" in str(info.value)
    assert files(tmp_path) == before


def test_zeroed_block_before_good_records_is_refused(tmp_path: Path) -> None:
    """Zeros in the middle of the journal (lost writes) followed by good records are damage, not a tail."""
    path = tmp_path / "db.json"
    build(path)
    journal = Path(str(path) + ".journal")
    data = bytearray(journal.read_bytes())
    start, end = record_spans(bytes(data))[2]
    data[start:end] = bytes(end - start)
    journal.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError) as info:
        MicroDB(str(path))
    assert info.value.offset == start


def test_damaged_snapshot_is_refused_untouched(tmp_path: Path) -> None:
    """A snapshot cut short raises CorruptDatabaseError with the offset; no file changes."""
    path = tmp_path / "db.json"
    with MicroDB(str(path)) as db:
        db.insert_many([{"n": i} for i in range(20)])
    data = path.read_bytes()
    path.write_bytes(data[:100])
    before = files(tmp_path)
    with pytest.raises(CorruptDatabaseError) as info:
        MicroDB(str(path))
    assert info.value.offset == 100 and info.value.path == str(path)
    assert files(tmp_path) == before


def test_journal_without_snapshot_is_stale(tmp_path: Path) -> None:
    """Removing the snapshot by hand resets the database; its old journal is discarded."""
    path = tmp_path / "db.json"
    build(path)
    os.remove(path)
    assert state_of(path, read_only=True) == {}
    with MicroDB(str(path)) as db:
        assert db.all() == []
        db.insert({"fresh": 1})
    assert state_of(path) == {"_default": [(1, {"fresh": 1})]}


def test_record_finished_while_opening_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record half-written when an open reads the file, finished before it gets the lock, is kept."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path))
    db.insert({"n": 1})
    offset = db.backend.store.file._offset  # type: ignore[attr-defined]
    record = journal.frame_record(json.dumps([["p", "_default", 2, {"n": 2}]]).encode())
    journal_path = str(path) + ".journal"
    with open(journal_path, "r+b") as f:  # another writer, half-way through its record
        f.seek(offset)
        f.write(record[:20])
    real_acquire = journal.FileLock.acquire

    def finish_then_acquire(self: journal.FileLock, timeout: float | None = None) -> None:
        with open(journal_path, "r+b") as f:  # ...finishes it and lets go of the lock
            f.seek(offset)
            f.write(record)
        real_acquire(self, timeout)

    monkeypatch.setattr(journal.FileLock, "acquire", finish_then_acquire)
    other = MicroDB(str(path))
    monkeypatch.undo()
    assert [d["n"] for d in other.all()] == [1, 2]
    assert [d["n"] for d in db.all()] == [1, 2]
    assert other.insert({"n": 3}) == 3
    other.close()
    db.close()
    assert [d for _, d in state_of(path)["_default"]] == [{"n": 1}, {"n": 2}, {"n": 3}]


# -- checkpoints: crashes and faults at each step ------------------------------------------------------

CRASH_CHILD = """
import os, sys
from microdb import MicroDB, where
from microdb.storage.journal import JournaledFile
path, step = sys.argv[1], sys.argv[2]
db = MicroDB(path)
db.insert_many([{"n": i} for i in range(30)])
db.compact()
db.update({"big": True}, where("n") > 20)
db.remove(where("n") < 5)
db.table("t").insert({"x": 1})
db.drop_table("t")
db.insert({"n": 100})

def crash(name):
    if name == step:
        os._exit(17)

JournaledFile.fault_hook = staticmethod(crash)
db.compact()
os._exit(0)
"""


def expected_after_crash_child() -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """What CRASH_CHILD has committed before its checkpoint."""
    docs = [(i + 1, {"n": i, **({"big": True} if i > 20 else {})}) for i in range(5, 30)]
    return {"_default": [*docs, (31, {"n": 100})]}


@pytest.mark.parametrize("step", STEPS)
def test_crash_at_each_checkpoint_step(tmp_path: Path, step: str) -> None:
    """A process killed at any step of a checkpoint leaves a database with every commit."""
    path = tmp_path / "db.json"
    proc = subprocess.run([sys.executable, "-c", CRASH_CHILD, str(path), step], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 17, proc.stderr
    json.loads(path.read_text())  # the snapshot is always whole JSON (TinyDB can read it)
    assert state_of(path, read_only=True) == expected_after_crash_child()
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with MicroDB(str(path)) as db:  # a writable open removes leftover temporary files
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        db.insert({"n": 101})
        db.remove(doc_ids=[31])
    assert temps or step in ("begin", "done", "journal-replaced")
    expected = expected_after_crash_child()
    expected["_default"] = [*expected["_default"][:-1], (32, {"n": 101})]
    assert state_of(path) == expected


COMMIT_AS_CHECKPOINT_CHILD = """
import os, sys
from microdb import MicroDB, where
from microdb.storage.journal import JournaledFile
path, step = sys.argv[1], sys.argv[2]
db = MicroDB(path, checkpoint_interval=None)
db.insert_many([{"n": i} for i in range(4)])
db.compact()
db.insert_many([{"n": i} for i in range(4, 8)])
db.update({"n": -1}, doc_ids=[6])

def crash(name):
    if name == step:
        os._exit(17)

JournaledFile.fault_hook = staticmethod(crash)
JournaledFile.checkpoint_follows = lambda self, least: True  # the next commit is written as a checkpoint
db.update({"$inc": {"n": 10}}, where("n") >= -1)
os._exit(0)
"""


@pytest.mark.parametrize("step", STEPS)
def test_crash_in_a_commit_written_as_a_checkpoint(tmp_path: Path, step: str) -> None:
    """Killed at any step of a commit written as a checkpoint (no journal record), the
    database holds the commit whole or not at all: between the renames, the old journal's
    records are not replayed onto the new snapshot (they would take documents 5 to 8 back)."""
    path = tmp_path / "db.json"
    proc = subprocess.run([sys.executable, "-c", COMMIT_AS_CHECKPOINT_CHILD, str(path), step],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 17, proc.stderr
    before = [(i + 1, {"n": -1 if i == 5 else i}) for i in range(8)]
    after = [(i, {"n": doc["n"] + 10}) for i, doc in before]
    assert state_of(path, read_only=True)["_default"] in (before, after)
    assert state_of(path)["_default"] == (after if step in ("snapshot-replaced", "journal-replaced", "done") else before)


@pytest.mark.parametrize("step", STEPS[:-1])
def test_fault_at_each_checkpoint_step(tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error at any step of compact() raises StorageError; the data and the database stay whole."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path))
    db.insert_many([{"n": i} for i in range(10)])
    db.remove(doc_ids=[3])

    def fail(name: str) -> None:
        if name == step:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JournaledFile, "fault_hook", staticmethod(fail))
    with pytest.raises(StorageError, match="disk is full"):
        db.compact()
    monkeypatch.setattr(JournaledFile, "fault_hook", None)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    db.insert({"n": 10})
    expected = [(i + 1, {"n": i}) for i in range(11) if i != 2]
    assert [(d.doc_id, dict(d)) for d in db.all()] == expected
    other = MicroDB(str(path), read_only=True)
    assert [(d.doc_id, dict(d)) for d in other.all()] == expected
    other.close()
    db.close()
    assert state_of(path) == {"_default": expected}


def test_failed_automatic_checkpoint_does_not_fail_the_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint due after a commit that fails leaves the commit done; a later one succeeds."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path), checkpoint_bytes=500, checkpoint_ratio=0.1)

    def fail(name: str) -> None:
        if name == "snapshot-written":
            raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(JournaledFile, "fault_hook", staticmethod(fail))
    for i in range(40):
        db.insert({"n": i, "pad": "x" * 30})
    assert json.loads(path.read_text()) == {}  # every checkpoint failed
    monkeypatch.setattr(JournaledFile, "fault_hook", None)
    for i in range(40, 80):
        db.insert({"n": i, "pad": "x" * 30})
    assert len(json.loads(path.read_text())["_default"]) > 40
    db.close()
    assert [d for _, d in state_of(path)["_default"]] == [{"n": i, "pad": "x" * 30} for i in range(80)]


def test_new_snapshot_with_old_journal_is_consistent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the two renames a live process keeps working: replaying the old journal changes nothing."""
    path = tmp_path / "db.json"
    a, b = MicroDB(str(path)), MicroDB(str(path))
    a.insert_many([{"n": i} for i in range(5)])
    a.update({"n": -1}, doc_ids=[1])
    a.remove(doc_ids=[2])
    b.all()

    real_replace = checkpoint.replace
    renamed: list[str] = []

    def replace_once(src: str, dst: str) -> None:
        renamed.append(dst)
        if dst.endswith(".journal"):
            raise OSError(errno.EIO, "crash between the renames")
        real_replace(src, dst)

    monkeypatch.setattr(checkpoint, "replace", replace_once)
    with pytest.raises(StorageError):
        a.compact()
    monkeypatch.undo()
    assert renamed == [str(path), str(path) + ".journal"]
    assert json.loads(path.read_text())["_default"]["1"] == {"n": -1}  # the new snapshot is in place
    b.insert({"n": 5})
    a.update({"n": 50}, doc_ids=[6])
    expected = [(1, {"n": -1}), (3, {"n": 2}), (4, {"n": 3}), (5, {"n": 4}), (6, {"n": 50})]
    assert [(d.doc_id, dict(d)) for d in b.all()] == expected
    a.close()
    b.close()
    assert state_of(path) == {"_default": expected}


# -- AutoSavingDict ---------------------------------------------------------------------------------

def test_autosaving_dict_torn_tail_and_damage(tmp_path: Path) -> None:
    """AutoSavingDict recovers from a torn tail and refuses a damaged record the same way."""
    f = tmp_path / "d.json"
    d = AutoSavingDict(f)
    d["a"] = 1
    d["b"] = 2
    d["c"] = 3
    d._file._close_fds()  # vanish without a checkpoint
    journal = Path(str(f) + ".journal")
    data = journal.read_bytes()
    spans = record_spans(data)
    journal.write_bytes(data[: spans[-1][0] + 10])
    with AutoSavingDict(f) as again:
        assert again.to_dict() == {"a": 1, "b": 2}
    journal.write_bytes(data[: spans[1][0] + 20] + b"X" + data[spans[1][0] + 21:])
    with pytest.raises(CorruptDatabaseError) as info:
        AutoSavingDict(f)
    assert info.value.offset == spans[1][0]


# -- checkpoint markers: how other processes learn of a checkpoint without a stat -----------------------

def test_other_handles_follow_a_checkpoint_without_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint marker in the old journal sends readers to the new files, no stat needed."""
    monkeypatch.setattr(journal, "_RESTAT_EVERY", 3600.0)
    path = tmp_path / "db.json"
    writer, reader = MicroDB(str(path)), MicroDB(str(path), read_only=True)
    writer.insert_many([{"n": i} for i in range(5)])
    assert reader.count() == 5
    old_fd = reader.backend.store.file._fd  # type: ignore[attr-defined]
    writer.compact()
    writer.insert({"n": 5})
    assert [d["n"] for d in reader.all()] == list(range(6))
    assert reader.backend.store.file._fd != old_fd  # type: ignore[attr-defined]
    writer.insert({"n": 6})
    assert reader.count() == 7
    writer.close()
    reader.close()


def test_a_marker_without_its_checkpoint_is_harmless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint that announced itself and then failed leaves a journal others keep following."""
    monkeypatch.setattr(journal, "_RESTAT_EVERY", 3600.0)
    path = tmp_path / "db.json"
    writer, reader = MicroDB(str(path)), MicroDB(str(path))
    writer.insert({"n": 0})
    assert reader.count() == 1

    def fail(name: str) -> None:
        if name == "snapshot-replaced":
            raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(JournaledFile, "fault_hook", staticmethod(fail))
    with pytest.raises(StorageError):
        writer.compact()  # the marker is written and the snapshot renamed; the journal is not
    monkeypatch.setattr(JournaledFile, "fault_hook", None)
    assert reader.count() == 1  # reader reloads on the marker and watches the path
    assert reader.backend.store.file._marker_pending  # type: ignore[attr-defined]
    writer.insert({"n": 1})  # a commit after the marker: the journal lives on
    assert [d["n"] for d in reader.all()] == [0, 1]
    assert not reader.backend.store.file._marker_pending  # type: ignore[attr-defined]
    reader.insert({"n": 2})
    assert [d["n"] for d in writer.all()] == [0, 1, 2]
    writer.compact()
    reader.insert({"n": 3})
    assert [d["n"] for d in writer.all()] == [0, 1, 2, 3]
    writer.close()
    reader.close()
    assert [d for _, d in state_of(path)["_default"]] == [{"n": i} for i in range(4)]


def test_a_pending_marker_is_resolved_by_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that saw a marker before the rename finds the new journal once it is in place."""
    monkeypatch.setattr(journal, "_RESTAT_EVERY", 3600.0)
    path = tmp_path / "db.json"
    writer, reader = MicroDB(str(path)), MicroDB(str(path), read_only=True)
    writer.insert({"n": 0})
    assert reader.count() == 1
    seen: list[int] = []

    def peek(name: str) -> None:
        if name == "snapshot-replaced":
            seen.append(reader.count())  # between the renames: marker written, journal not replaced

    monkeypatch.setattr(JournaledFile, "fault_hook", staticmethod(peek))
    writer.compact()
    monkeypatch.setattr(JournaledFile, "fault_hook", None)
    assert seen == [1]
    writer.insert({"n": 1})
    assert reader.count() == 2
    assert not reader.backend.store.file._marker_pending  # type: ignore[attr-defined]
    writer.close()
    reader.close()
