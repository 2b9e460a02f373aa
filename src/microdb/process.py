"""What open databases do when the process forks or exits normally.

- **fork.** A child made by ``os.fork()`` (multiprocessing's default start method on Linux,
  gunicorn ``--preload``, Celery's prefork pool) inherits every open descriptor, and with
  it the parent's file locks: an inherited ``flock`` would not exclude parent from child,
  and an inherited database connection would be one session used by two processes. Each
  registered object's ``after_fork()`` runs in the child, before any other code there, and
  gives the child its own lock file descriptor or connection.
- **exit.** At a normal interpreter exit, each registered method runs (a database's
  ``compact``, which then folds the journal only if it holds anything), so that a JSON
  file is left complete even when the program never called ``close()``.

Objects are held weakly: registering one never keeps it alive.
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["after_fork", "at_exit", "exiting"]


class _ForkAware(Protocol):
    def after_fork(self) -> None:
        """Make the object usable in a forked child (called in the child only)."""


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
_exit_methods: dict[int, weakref.WeakMethod[Callable[[], Any]]] = {}
_exiting = False


def after_fork(obj: _ForkAware) -> None:
    """Call ``obj.after_fork()`` in every child forked while ``obj`` is alive."""
    _forked.add(obj)


def at_exit(method: Callable[[], Any]) -> None:
    """Call the bound ``method`` at a normal interpreter exit if its object is still alive."""
    key = id(method.__self__)  # type: ignore[attr-defined]

    def forget(_: Any) -> None:
        _exit_methods.pop(key, None)

    _exit_methods[key] = weakref.WeakMethod(method, forget)


def exiting() -> bool:
    """Whether the interpreter is running the exit hooks of :func:`at_exit`."""
    return _exiting


def _in_child() -> None:
    for obj in _forked.alive():
        try:
            obj.after_fork()
        except Exception:  # noqa: BLE001 - the child must start; the object fails on use instead
            pass


def _at_exit() -> None:
    global _exiting
    _exiting = True
    for ref in list(_exit_methods.values()):
        method = ref()
        if method is None:
            continue
        try:
            method()
        except Exception:  # noqa: BLE001 - exiting anyway: the journal still holds every commit
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
atexit.register(_at_exit)
