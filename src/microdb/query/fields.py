"""Field paths: what a path is, how a field name becomes one, and how one is printed.

A *path* is a tuple of steps: a ``str`` (a mapping key, or a list position when it is all
digits), an ``int`` (a list position, or a key in a mapping) or a :class:`MapStep` (a
function applied to the value so far, TinyDB's ``Query().f.map(fn)``).

Every place that takes a field from the user parses it here, with one meaning:

- ``'address.city'`` is a dot path: it splits on ``.``, and no step may be empty. Digit
  steps stay strings, which address list positions as well as keys. In a dict filter or
  an update, a step starting with ``$`` is refused: there it would name an operator;
- ``['address', 'city']`` (a list or tuple) is the steps as they are, for a key that itself
  holds a dot or starts with ``$``;
- ``Query().address.city`` (any :class:`FieldPath`) is its own path;
- an ``int`` is one step.

``where('a.b')`` is TinyDB's: it names the single top-level key ``'a.b'``, as in TinyDB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from microdb.errors import MicroDBError, QueryError

__all__ = ["FieldPath", "MapStep", "Path", "Step", "dot_path", "parse_field", "path_repr"]


class MapStep:
    """A path step that transforms the value found so far (TinyDB's ``Query().f.map(fn)``)."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]):
        self.func = func

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MapStep) and other.func is self.func

    def __hash__(self) -> int:
        return hash(("map", id(self.func)))

    def __repr__(self) -> str:
        return f"map({getattr(self.func, '__name__', repr(self.func))})"


Step = str | int | MapStep
Path = tuple[Step, ...]


def path_repr(path: Path) -> str:
    """Render a path the way a user would write it with ``Query()``."""
    out = "Query()"
    for step in path:
        if isinstance(step, MapStep):
            out += f".{step!r}"
        elif isinstance(step, str) and step.isidentifier():
            out += f".{step}"
        else:
            out += f"[{step!r}]"
    return out


class FieldPath:
    """Base class of objects that stand for a path into documents (``Query().a.b``)."""

    __slots__ = ("_path",)

    def __init__(self) -> None:
        self._path: Path = ()


def dot_path(
    name: Any, *, context: str = "", error: type[MicroDBError] = QueryError, operators: bool = True
) -> tuple[str, ...]:
    """The steps of a dot path (``'a.b.0'`` -> ``('a', 'b', '0')``).

    ``context`` names where the field was found, for messages (``"$set"``); ``error`` is
    the exception raised for a malformed name (``UpdateError`` for updates); ``operators``
    says that ``$`` names operators where the name was found, so no step may start with it.
    """
    where = f" in {context}" if context else ""
    if not isinstance(name, str) or not name:
        raise error(f"a field name must be a non-empty string, got {name!r:.60}{where}")
    steps = tuple(name.split("."))
    for step in steps:
        if not step:
            raise error(f"field {name!r}{where} has an empty step")
        if operators and step.startswith("$"):
            raise error(
                f"field {name!r}{where}: {step!r} is an operator, not a field step "
                "($ steps, positional ones included, are not supported)"
            )
    return steps


def parse_field(field: Any, *, context: str = "") -> Path:
    """A path from a dot path, a list of steps, an int, or a ``Query()`` path (see the module doc)."""
    if isinstance(field, FieldPath):
        if not field._path:
            raise QueryError("an empty Query() is not a field")
        return field._path
    if isinstance(field, str):
        return dot_path(field, context=context, operators=False)
    if isinstance(field, int) and not isinstance(field, bool):
        return (field,)
    if isinstance(field, (list, tuple)) and field:
        for step in field:
            if not isinstance(step, (str, int)) or isinstance(step, bool):
                raise QueryError(f"a path step must be a str or int, got {step!r}")
        return tuple(field)
    raise QueryError(
        f"a field must be a name, a dot path, a list of steps or a Query path, got {field!r:.60}"
    )
