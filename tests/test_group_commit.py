"""Group commit: durable writers share fsyncs, and no acknowledged write is lost."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from microdb import MicroDB, StorageError
from microdb.storage import journal
from microdb.storage.groupsync import GroupSync


class _CountingSync:
    """An fsync that counts its calls (and really syncs)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        os.fsync(fd)


def _journal(tmp_path: Path) -> tuple[int, tuple[int, int]]:
    fd = os.open(tmp_path / "x.journal", os.O_RDWR | os.O_CREAT)
    st = os.fstat(fd)
    return fd, (st.st_dev, st.st_ino)


def test_one_fsync_covers_every_record_written_before_it(tmp_path: Path) -> None:
    """A follower whose record was written before the leader's fsync needs no fsync of its own."""
    fd, jid = _journal(tmp_path)
    sync = _CountingSync()
    group = GroupSync(str(tmp_path / "x.lock"), sync)
    os.write(fd, b"a" * 30)
    group.written(fd, jid, 10)
    group.written(fd, jid, 30)  # a second writer appended before the first waits
    group.wait(jid, 10)
    group.wait(jid, 30)
    assert sync.calls == 1
    group.written(fd, jid, 40)  # written after that fsync: needs another
    group.wait(jid, 40)
    assert sync.calls == 2
    group.close()
    os.close(fd)


def test_processes_share_fsyncs_through_the_lock_file(tmp_path: Path) -> None:
    """Two writers on one lock file (two processes' view): the leader's fsync serves the other."""
    fd, jid = _journal(tmp_path)
    a_sync, b_sync = _CountingSync(), _CountingSync()
    a = GroupSync(str(tmp_path / "x.lock"), a_sync)
    b = GroupSync(str(tmp_path / "x.lock"), b_sync)
    a.written(fd, jid, 10)
    b.written(fd, jid, 25)
    a.wait(jid, 10)  # syncs up to 25: what was written when it started
    b.wait(jid, 25)
    assert (a_sync.calls, b_sync.calls) == (1, 0)
    # Torn or foreign bytes in the lock file are never taken as "synced".
    with open(tmp_path / "x.lock", "r+b") as f:
        f.seek(96)
        f.write(b"\xff" * 32)
    b.written(fd, jid, 30)
    b.wait(jid, 30)
    assert b_sync.calls == 1
    a.close()
    b.close()
    os.close(fd)


def test_threads_group_their_fsyncs_and_lose_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight threads of durable inserts all reach the file, with fewer fsyncs than commits."""
    calls: list[int] = []
    real = journal.fsync_fd

    def counting(fd: int, full: bool = False) -> None:
        calls.append(fd)
        time.sleep(0.002)  # a slow disk: writers pile up behind each fsync
        real(fd)

    monkeypatch.setattr(journal, "fsync_fd", counting)
    path = str(tmp_path / "db.json")
    db = MicroDB(path, group_commit=True)
    db.insert({"first": True})
    calls.clear()
    per, threads = 25, 8

    def work(k: int) -> None:
        for i in range(per):
            db.insert({"t": k, "i": i})

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(calls) < per * threads
    db.close()
    with MicroDB(path) as again:
        got = {(d["t"], d["i"]) for d in again.all() if "t" in d}
    assert got == {(k, i) for k in range(threads) for i in range(per)}


def test_grouped_writers_of_two_processes_add_no_sync_under_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A grouped commit after another process's grouped records (flagged unsynced) is synced
    once, after the lock: no extra fsync of those records before its own is written."""
    calls: list[int] = []
    real = journal.fsync_fd

    def counting(fd: int, full: bool = False) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(journal, "fsync_fd", counting)
    path = str(tmp_path / "db.json")
    # Two objects on one file lock and catch up as two processes do.
    a = MicroDB(path, group_commit=True, checkpoint_interval=None)
    b = MicroDB(path, group_commit=True, checkpoint_interval=None)
    a.insert({"w": "a", "i": -1})
    b.insert({"w": "b", "i": -1})
    for i in range(5):
        calls.clear()
        a.insert({"w": "a", "i": i})  # catches up on b's grouped record first
        assert len(calls) == 1
        calls.clear()
        b.insert({"w": "b", "i": i})
        assert len(calls) == 1
    a.close()
    b.close()
    with MicroDB(path) as again:
        assert sorted((d["w"], d["i"]) for d in again.all()) == sorted(
            (w, i) for w in "ab" for i in range(-1, 5))


def test_failed_group_fsync_raises_and_keeps_nothing_unacknowledged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the shared fsync fails, the writers waiting on it get StorageError."""
    path = str(tmp_path / "db.json")
    db = MicroDB(path, group_commit=True)
    db.insert({"n": 0})
    failing = threading.Event()
    real = journal.fsync_fd

    def maybe_failing(fd: int, full: bool = False) -> None:
        if failing.is_set():
            raise OSError(5, "I/O error")
        real(fd)

    monkeypatch.setattr(journal, "fsync_fd", maybe_failing)
    failing.set()
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            db.insert({"n": k})
        except StorageError as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(errors) == 4  # nobody was told a write succeeded
    failing.clear()
    db.close()


def _writer(path: str, threads: int, conn: Any) -> None:
    db = MicroDB(path, group_commit=True)
    lock = threading.Lock()

    def work(k: int) -> None:
        i = 0
        while True:
            doc_id = db.insert({"t": k, "i": i})
            with lock:
                conn.send(doc_id)  # sent only once the insert returned: acknowledged
            i += 1

    for k in range(threads):
        threading.Thread(target=work, args=(k,), daemon=True).start()
    time.sleep(60)


@pytest.mark.slow
def test_killed_group_committers_keep_every_acknowledged_insert(tmp_path: Path) -> None:
    """Two processes of four threads each, killed with SIGKILL: every acknowledged id survives."""
    path = str(tmp_path / "db.json")
    MicroDB(path).close()
    ctx = multiprocessing.get_context("fork")
    procs, pipes = [], []
    for _ in range(2):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_writer, args=(path, 4, send))
        p.start()
        send.close()
        procs.append(p)
        pipes.append(recv)
    acked: set[int] = set()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        for recv in pipes:
            while recv.poll(0.01):
                acked.add(recv.recv())
    for p in procs:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
        p.join()
    for recv in pipes:
        try:
            while recv.poll(0):
                acked.add(recv.recv())
        except EOFError:
            pass  # the writer died mid-message: that id was never acknowledged
    assert len(acked) >= 50
    with MicroDB(path) as db:
        stored = {d.doc_id for d in db.all()}
    assert acked <= stored


def test_a_new_journal_never_inherits_an_old_synced_mark(tmp_path: Path) -> None:
    """A journal reusing an old one's identity (inode reuse) starts with nothing synced."""
    fd, jid = _journal(tmp_path)
    sync_a, sync_b = _CountingSync(), _CountingSync()
    a = GroupSync(str(tmp_path / "x.lock"), sync_a)
    a.written(fd, jid, 5000)
    a.wait(jid, 5000)
    other = os.open(tmp_path / "y.journal", os.O_RDWR | os.O_CREAT)
    a.written(other, (jid[0], jid[1] + 1), 10)  # a checkpoint moved to another journal
    a.close()
    b = GroupSync(str(tmp_path / "x.lock"), sync_b)
    b.written(fd, jid, 300)  # the old identity again, as a new journal
    b.wait(jid, 300)
    assert sync_b.calls == 1
    b.close()
    os.close(fd)
    os.close(other)
