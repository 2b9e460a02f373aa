"""Power cuts at every point of real workloads: the file always opens, holding a prefix of
the acknowledged commits that contains every synced one and every durable one acknowledged
(see tests/powerloss.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from microdb import MicroDB, where
from microdb.operations import increment
from powerloss import Recorder, crash_states

State = dict[str, dict[int, dict[str, Any]]]


class Commit(Protocol):
    """Runs one commit of a workload and notes what a power cut must keep after it
    (``durable_commit``: whether it is durable when it returns; default, the database's)."""

    def __call__(self, action: Callable[[], Any], durable_commit: bool | None = None) -> None: ...
TOTAL: dict[str, int] = {}


def contents(db: MicroDB) -> State:
    return {name: {d.doc_id: dict(d) for d in db.table(name).all()} for name in db.tables() if len(db.table(name))}


def single(db: MicroDB, commit: Commit) -> None:
    users = db.table("users")
    for i in range(8):
        commit(lambda i=i: users.insert({"n": i, "pad": "x" * (40 * i)}))
    commit(lambda: users.update(increment("n"), doc_ids=[2, 3]))
    commit(lambda: users.remove(doc_ids=[1]))
    commit(lambda: users.insert_many([{"n": 100 + j} for j in range(5)]))
    commit(lambda: users.update({"pad": ""}, {}))
    commit(lambda: users.update({"$inc": {"n": 10}, "$unset": {"pad": ""}, "$push": {"l": 1}}, where("n") >= 4))


def transactions(db: MicroDB, commit: Commit) -> None:
    def move(k: int) -> None:
        with db.transaction():
            db.table("a").insert({"k": k})
            db.table("b").insert({"k": -k})
            if k > 1:
                db.table("a").remove(doc_ids=[k - 1])

    for k in range(1, 7):
        commit(lambda k=k: move(k))


def indexes(db: MicroDB, commit: Commit) -> None:
    t = db.table("t")
    commit(lambda: t.insert_many([{"k": i, "u": i} for i in range(6)]))
    commit(lambda: t.create_index("k"))
    commit(lambda: t.create_index("u", unique=True))
    commit(lambda: t.insert({"k": 1, "u": 99}))
    commit(lambda: t.drop_index("k"))
    commit(lambda: db.compact())
    commit(lambda: t.insert({"k": 7, "u": 7}))


def mixed(db: MicroDB, commit: Commit) -> None:
    """Two handles on the file, one durable and one not, taking turns (as two processes would)."""
    store = db.backend.store
    other = MicroDB(store.path, durable=not store.file.durable,  # type: ignore[attr-defined]
                    checkpoint_bytes=700, checkpoint_ratio=0.5, checkpoint_interval=None)
    for i in range(10):
        handle = other if i % 2 else db
        commit(lambda handle=handle, i=i: handle.insert({"i": i, "pad": "y" * (30 * i)}),
               durable_commit=store.file.durable != bool(i % 2))  # type: ignore[attr-defined]
    commit(lambda: other.update({"pad": ""}, {}), durable_commit=not store.file.durable)  # type: ignore[attr-defined]
    other.close()


def twins(db: MicroDB, commit: Commit) -> None:
    """Two handles on the file with the same options, taking turns (as two processes would):
    grouped, each commit follows the other's record, flagged unsynced, with no sync between."""
    store = db.backend.store
    file = store.file  # type: ignore[attr-defined]
    other = MicroDB(store.path, durable=file.durable, group_commit=file._group is not None,
                    checkpoint_bytes=700, checkpoint_ratio=0.5, checkpoint_interval=None)
    for i in range(10):
        handle = other if i % 2 else db
        commit(lambda handle=handle, i=i: handle.insert({"i": i, "pad": "z" * (200 + 60 * i)}))
    commit(lambda: other.update({"pad": ""}, {}))
    other.close()


WORKLOADS = {"single": single, "transactions": transactions, "indexes": indexes, "mixed": mixed, "twins": twins}


def barriers(events: list[tuple[Any, ...]], journal: str) -> list[int]:
    """Indices of the events after which every earlier commit is durable."""
    names: dict[str, Any] = {}
    out = []
    for i, e in enumerate(events):
        if e[0] == "create":
            names[e[1]] = e[2]
        elif e[0] == "rename" and e[1] in names:
            names[e[2]] = names.pop(e[1])
        elif e[0] == "remove":
            names.pop(e[1], None)
        elif e[0] == "dirsync" or (e[0] == "sync" and names.get(journal) == e[1]):
            out.append(i)
    return out


@pytest.mark.parametrize(("durable", "group"), [(True, False), (False, False), (True, True)],
                         ids=["durable", "fast", "grouped"])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_power_cut_at_every_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workload: str, durable: bool, group: bool,
) -> None:
    """Every disk state a power cut could leave opens, with a prefix of the commits holding every
    synced one and every durable one that had returned."""
    folder = tmp_path / "live"
    folder.mkdir()
    recorder = Recorder(str(folder))
    expected: list[State] = [{}]
    begun: list[int] = []
    #: (commits held once it returned, trace length then) of each durable commit: a power
    #: cut after it returned keeps it, whether or not the trace shows the sync that did it
    acknowledged: list[tuple[int, int]] = []
    with monkeypatch.context() as patch:
        recorder.install(patch.setattr)
        db = MicroDB(str(folder / "db.json"), durable=durable, checkpoint_bytes=700, checkpoint_ratio=0.5,
                     checkpoint_interval=None, group_commit=group)

        def commit(action: Callable[[], Any], durable_commit: bool | None = None) -> None:
            begun.append(recorder.mark())
            action()
            if durable if durable_commit is None else durable_commit:
                acknowledged.append((len(expected), recorder.mark()))
            expected.append(contents(db))

        WORKLOADS[workload](db, commit)
        db.close()
    events = recorder.events
    sync_points = barriers(events, "db.json.journal")

    def rule(prefix: int) -> tuple[int, int]:
        last = max((b for b in sync_points if b < prefix), default=-1)
        must = sum(1 for start in begun if start < last)
        must = max([must] + [held for held, at in acknowledged if at <= prefix])
        may = sum(1 for start in begun if start < prefix)
        return must, may

    explored = 0
    crash = tmp_path / "crash"
    crash.mkdir()
    for prefix, files in crash_states(events, rule):
        explored += 1
        must, may = rule(prefix)
        for name in os.listdir(crash):  # one folder for every state: folders are slow to remove
            if name not in files:
                os.remove(crash / name)
        for name, data in files.items():
            (crash / name).write_bytes(data)
        # Read-only opens are cheap (no lock, no write); every few states, the writable
        # open's recovery (zeroing a torn tail, the format upgrade) runs too.
        writable = explored % 5 == 0
        try:
            with MicroDB(str(crash / "db.json"), read_only=not writable, durable=False) as reopened:
                found = contents(reopened)
        except Exception as exc:
            raise AssertionError(f"after event {prefix} of {len(events)}: {sorted(files)} does not open: {exc!r}") from exc
        allowed = expected[must:may + 1]
        assert found in allowed, (
            f"after event {prefix} of {len(events)} ({events[prefix - 1][:2] if prefix else None}): "
            f"holds {found}, expected one of the states after commits {must}..{may}"
        )
    assert explored > 20
    TOTAL[f"{workload}-{'grouped' if group else 'durable' if durable else 'fast'}"] = explored
    print(f"\npower-loss simulator: {explored} crash states explored ({workload}, durable={durable}, group_commit={group})")


def test_zz_report_the_number_of_crash_states() -> None:
    """Print the total number of crash states the simulator explored (documented in docs/storage.md)."""
    if len(TOTAL) == 3 * len(WORKLOADS):
        print(f"\npower-loss simulator: {sum(TOTAL.values())} crash states explored in all: {TOTAL}")
