"""What open databases do when the process forks or exits normally.

- **fork.** A child made by ``os.fork()`` (multiprocessing's default start method on Linux,
  gunicorn ``--preload``, Celery's prefork pool) inherits every open descriptor, and with
  it the parent's file locks: an inherited ``flock`` would not exclude parent from child,
  and an inherited database connection would be one session used by two processes. Each
  registered object's ``after_fork()`` runs in the child, before any other code there, and
  gives the child its own lock file descriptor or connection.
- **exit.** At a normal interpreter exit, each registered object's ``at_exit()`` runs, so
  that a JSON file is left complete (a checkpoint) even when the program never called
  ``close()``.

Objects are held weakly: registering one never keeps it alive.
"""

from __future__ import annotations

import atexit
import os
import weakref
from typing import Any, Protocol

__all__ = ["after_fork", "at_exit"]


class _ForkAware(Protocol):
    def after_fork(self) -> None:
        """Make the object usable in a forked child (called in the child only)."""


class _ExitAware(Protocol):
    def at_exit(self) -> None:
        """Leave the object's files complete at a normal exit."""


class _Registry:
    """Objects held weakly by identity (a ``WeakSet`` needs them hashable; a dict-like is not)."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[Any]] = {}

    def add(self, obj: Any) -> None:
        key = id(obj)
        refs = self._refs

        def forget(_: weakref.ref[Any]) -> None:
            refs.pop(key, None)

        refs[key] = weakref.ref(obj, forget)

    def alive(self) -> list[Any]:
        return [obj for obj in (ref() for ref in list(self._refs.values())) if obj is not None]


_forked = _Registry()
_exiting = _Registry()


def after_fork(obj: _ForkAware) -> None:
    """Call ``obj.after_fork()`` in every child forked while ``obj`` is alive."""
    _forked.add(obj)


def at_exit(obj: _ExitAware) -> None:
    """Call ``obj.at_exit()`` at a normal interpreter exit if ``obj`` is still alive."""
    _exiting.add(obj)


def _in_child() -> None:
    for obj in _forked.alive():
        try:
            obj.after_fork()
        except Exception:  # noqa: BLE001 - the child must start; the object fails on use instead
            pass


def _at_exit() -> None:
    for obj in _exiting.alive():
        try:
            obj.at_exit()
        except Exception:  # noqa: BLE001 - exiting anyway: the journal still holds every commit
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
atexit.register(_at_exit)
