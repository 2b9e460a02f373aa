"""Turning what ``update`` accepts into a function that changes documents.

``update`` takes a mapping of fields to set (TinyDB), a function of the document (TinyDB's
operations among them), or MongoDB-style update operators (``{'$inc': {'n': 1}}``).

:func:`compile_update` gives a function changing a private document in place (an upsert's
new document). :func:`compile_change` gives a :class:`Change`, which builds the changed
versions of stored documents without touching them: a mapping of fields or operators
copies only the containers along the paths it changes (the rest of the new document is
shared with the stored one, which the engine never mutates) and checks only the values it
changes; a function, which may change anything, gets a deep copy checked whole. The
paths a change may touch (:attr:`Change.touched`) let the engine leave the indexes on
other paths alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from microdb.compile.update_ops import compile_operator_paths, compile_operators
from microdb.errors import DocumentError, UpdateError
from microdb.serialization import (
    IMMUTABLE_TYPES,
    MAX_DEPTH,
    check_document,
    check_private,
    copy_value,
    is_checked,
)

__all__ = ["Change", "Updater", "compile_change", "compile_update", "is_operator_update"]

Updater = Callable[[dict[str, Any]], None]
#: A path as update operators name it: the steps of a dotted field.
Steps = tuple[str, ...]
Rows = Iterable[tuple[int, dict[str, Any]]]


def is_operator_update(spec: Any) -> bool:
    """True when ``spec`` is a mapping of MongoDB-style update operators."""
    return isinstance(spec, Mapping) and bool(spec) and all(isinstance(k, str) and k.startswith("$") for k in spec)


def _kind(spec: Any) -> str:
    """``"function"``, ``"operators"`` or ``"fields"``; ``UpdateError`` for anything else."""
    if callable(spec) and not isinstance(spec, Mapping):
        return "function"
    if isinstance(spec, Mapping):
        keys = list(spec)
        if any(isinstance(k, str) and k.startswith("$") for k in keys):
            if not is_operator_update(spec):
                raise UpdateError(f"an update mixes operators and plain fields: {sorted(map(str, keys))}")
            return "operators"
        return "fields"
    raise UpdateError(
        f"an update must be a mapping of fields, update operators, or a function, got {spec!r:.60}"
    )


def compile_update(spec: Any) -> Updater:
    """A function applying ``spec`` to a document in place; raises ``UpdateError`` if malformed."""
    kind = _kind(spec)
    if kind == "function":
        def call(doc: dict[str, Any]) -> None:
            spec(doc)

        return call
    if kind == "operators":
        return compile_operators(spec)
    fields = dict(spec)

    def merge(doc: dict[str, Any]) -> None:
        doc.update(fields)

    return merge


def _failed(doc_id: int, exc: Exception) -> UpdateError:
    return UpdateError(f"the update failed on document {doc_id}: {exc!r}")


class Change:
    """An update compiled for stored documents (see the module's docstring)."""

    #: The paths (top-level fields for a mapping of fields) the change may alter;
    #: ``None``: any (a function).
    touched: tuple[Steps, ...] | None = None

    def documents(self, rows: Rows, shared: bool) -> dict[int, dict[str, Any]]:
        """The changed, checked documents of ``rows`` (``(id, stored document)``), by id.

        ``shared``: the rows are the engine's own documents (else private copies, as SQL
        engines return). The stored documents are never changed. Raises ``UpdateError`` or
        ``DocumentError`` when the update cannot apply to one of them.
        """
        raise NotImplementedError


class _Fields(Change):
    """A mapping of fields to set: the stored document's top level, copied, and the fields."""

    def __init__(self, fields: dict[str, Any]):
        self._fields = fields
        self.touched = tuple((key,) for key in fields)

    def documents(self, rows: Rows, shared: bool) -> dict[int, dict[str, Any]]:
        pairs = rows if isinstance(rows, list) else list(rows)
        if not pairs:
            # Checked only when a document matched (an update matching nothing raises
            # nothing, as when each document was checked whole).
            return {}
        fields = check_document(self._fields)
        mutable = [(k, v) for k, v in fields.items() if type(v) not in IMMUTABLE_TYPES]
        news = [stored.copy() for _, stored in pairs]
        for new in news:
            new.update(fields)
            for key, value in mutable:
                new[key] = copy_value(value)  # each document its own containers
        return dict(zip([doc_id for doc_id, _ in pairs], news))


def _private_along(stored: dict[str, Any], paths: tuple[Steps, ...]) -> dict[str, Any]:
    """A shallow copy of ``stored`` in which every container along each of ``paths``, and
    the one at its end, is a copy too: what update operators may change in place."""
    new = stored.copy()
    for steps in paths:
        holder: Any = new
        for step in steps:
            if type(holder) is dict:
                child = holder.get(step)
                key: Any = step
            elif step.isdigit() and step.isascii() and int(step) < len(holder):
                key = int(step)
                child = holder[key]
            else:
                break
            if type(child) is dict or type(child) is list:
                child = child.copy()
                holder[key] = child
                holder = child
            else:
                break
    return new


def _value_at(doc: Any, steps: Steps) -> tuple[bool, Any]:
    """``(True, value)`` for the value at ``steps``, ``(False, None)`` when there is none."""
    for step in steps:
        if type(doc) is dict:
            if step not in doc:
                return False, None
            doc = doc[step]
        elif type(doc) is list and step.isdigit() and step.isascii() and int(step) < len(doc):
            doc = doc[int(step)]
        else:
            return False, None
    return True, doc


#: What check_document accepts of an integer (JSON engines hold 64 bits exactly).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_NONE: Any = object()
#: One operator on one top-level field, applied to every document of a batch (shallow
#: copies, changed in place); it returns the positions of those it could not decide alone
#: (a value of another type, a result out of range), which the general path then takes.
FastStep = Callable[[list[dict[str, Any]]], list[int]]


def _fast_set(key: str, operand: Any) -> FastStep:
    mutable = type(operand) not in IMMUTABLE_TYPES

    def step(docs: list[dict[str, Any]]) -> list[int]:
        for new in docs:
            new[key] = copy_value(operand) if mutable else operand
        return []

    return step


def _fast_unset(key: str) -> FastStep:
    def step(docs: list[dict[str, Any]]) -> list[int]:
        for new in docs:
            new.pop(key, None)
        return []

    return step


def _fast_inc(key: str, amount: float) -> FastStep:
    def step(docs: list[dict[str, Any]]) -> list[int]:
        undecided: list[int] = []
        for i, new in enumerate(docs):
            current = new.get(key, _NONE)
            kind = type(current)
            if kind is int or kind is float:
                result = current + amount
                if type(result) is int:
                    if _INT_MIN <= result <= _INT_MAX:
                        new[key] = result
                        continue
                elif result - result == 0:  # not an infinity
                    new[key] = result
                    continue
            elif current is _NONE:
                new[key] = amount  # a missing field starts from 0
                continue
            undecided.append(i)
        return undecided

    return step


def _fast_push(key: str, operand: Any) -> FastStep:
    mutable = type(operand) not in IMMUTABLE_TYPES

    def step(docs: list[dict[str, Any]]) -> list[int]:
        undecided: list[int] = []
        for i, new in enumerate(docs):
            current = new.get(key, _NONE)
            if type(current) is list:
                # A new list: the stored one is left as it is; the items are shared.
                new[key] = [*current, copy_value(operand) if mutable else operand]
            elif current is _NONE:
                new[key] = [copy_value(operand) if mutable else operand]
            else:
                undecided.append(i)
        return undecided

    return step


def _fast_step(op: str, key: str, operand: Any) -> FastStep | None:
    """The fast form of ``op`` on the top-level field ``key``, or ``None`` when it has none.

    Each does what the operator does there (see :mod:`microdb.compile.update_ops`) on the
    common kinds of values, and checks what it stores, so the document needs no other check.
    """
    if op == "$set" and is_checked(operand, 2):
        return _fast_set(key, operand)
    if op == "$unset":
        return _fast_unset(key)
    if op == "$inc" and (type(operand) is int or type(operand) is float) and is_checked(operand, 2):
        return _fast_inc(key, operand)
    modifiers = isinstance(operand, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in operand)
    if op == "$push" and not modifiers and is_checked(operand, 3):
        return _fast_push(key, operand)
    return None


def _fast_plan(spec: Mapping[str, Any]) -> list[FastStep] | None:
    """Fast steps for an update made only of fast operators on top-level fields, else ``None``."""
    steps: list[FastStep] = []
    for op, fields in spec.items():
        for field, operand in fields.items():
            step = _fast_step(op, field, operand) if type(field) is str and "." not in field else None
            if step is None:
                return None
            steps.append(step)
    return steps


class _Operators(Change):
    """MongoDB-style operators, applied to a copy made private along the paths they change.

    Updates of top-level fields by ``$set``, ``$unset``, ``$inc`` and ``$push`` (the
    common ones) take a fast path instead: shallow copies of the batch, and one loop over
    them per field, as cheap as setting the fields. The steps touch distinct fields, so
    applying them field by field over the batch gives what applying them document by
    document does.
    """

    def __init__(self, spec: Mapping[str, Any]):
        self._apply, self._paths = compile_operator_paths(spec)  # checks the whole update
        self.touched = self._paths
        self._fast = _fast_plan(spec)
        # A path this deep may nest containers past the limit: check such documents whole.
        self._whole = any(len(steps) >= MAX_DEPTH for steps in self._paths)

    def documents(self, rows: Rows, shared: bool) -> dict[int, dict[str, Any]]:
        if self._fast is None:
            return {doc_id: self._one(doc_id, stored) for doc_id, stored in rows}
        pairs = rows if isinstance(rows, list) else list(rows)
        news = [stored.copy() for _, stored in pairs]
        undecided: set[int] = set()
        for step in self._fast:
            undecided.update(step(news))
        for i in sorted(undecided):
            # From the stored document again, in the order of the batch (the first error wins).
            news[i] = self._one(*pairs[i])
        return dict(zip([doc_id for doc_id, _ in pairs], news))

    def _one(self, doc_id: int, stored: dict[str, Any]) -> dict[str, Any]:
        """The general path: any operators, any values (and the errors they raise)."""
        paths = self._paths
        new = _private_along(stored, paths)
        try:
            self._apply(new)
        except (UpdateError, DocumentError):
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _failed(doc_id, exc) from exc
        if self._whole:
            return check_document(new)
        for steps in paths:
            found, value = _value_at(new, steps)
            if found and not is_checked(value, len(steps) + 1):
                # A rich or bad value: the full check converts it, or says what is wrong.
                return check_document(new)
        return new


class _Function(Change):
    """A function of the document: it may change anything, so it gets a deep copy."""

    def __init__(self, func: Callable[[dict[str, Any]], Any]):
        self._func = func

    def documents(self, rows: Rows, shared: bool) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        func = self._func
        for doc_id, stored in rows:
            doc = copy_value(stored) if shared else stored
            try:
                func(doc)
            except (UpdateError, DocumentError):
                raise
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _failed(doc_id, exc) from exc
            # Our copy when shared: checked where it is, not copied a second time.
            out[doc_id] = check_private(doc) if shared else check_document(doc)
        return out


def compile_change(spec: Any) -> Change:
    """``spec`` (what ``update`` accepts) as a :class:`Change`; ``UpdateError`` if malformed."""
    kind = _kind(spec)
    if kind == "function":
        return _Function(spec)
    if kind == "operators":
        return _Operators(spec)
    return _Fields(dict(spec))
