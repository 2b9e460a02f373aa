"""MongoDB-style update operators: ``{'$inc': {'visits': 1}, '$set': {'address.city': 'Oslo'}}``.

:func:`compile_operators` checks a whole update up front (every operator known, every
operand well formed, no two operators touching the same field or one inside another) and
returns a function that applies it to a private copy of a document, in place. A value it
cannot apply to (``$inc`` on a string, ``$push`` onto a number) raises
:class:`~microdb.errors.UpdateError`; ``Table.update`` changes documents all or nothing,
so such an error leaves every document as it was.

Fields are dot paths (:mod:`microdb.query.fields`). A missing intermediate document is created (``$set`` of
``'a.b.c'`` on ``{}`` gives ``{'a': {'b': {'c': ...}}}``); a numeric step indexes an array
(``'items.0.qty'``), and setting past the end pads the array with ``None``, as MongoDB does.

:func:`upsert_seed` gives the document an upsert starts from when nothing matched: the
equality fields of a dict filter.
"""

from __future__ import annotations

import copy
import datetime as _dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from microdb.compile.python import predicate
from microdb.errors import QueryError, UpdateError
from microdb.query.fields import dot_path
from microdb.query.mongo import condition_on_values
from microdb.query.values import MISSING, sort_key, values_equal

__all__ = ["compile_operator_paths", "compile_operators", "upsert_seed"]

Updater = Callable[[dict[str, Any]], None]
Steps = tuple[str, ...]


# ---------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------


def _steps(field: Any, op: str) -> Steps:
    return dot_path(field, context=op, error=UpdateError)


def _name(steps: Steps) -> str:
    return ".".join(steps)


def _index(step: str) -> int | None:
    return int(step) if step.isdigit() else None


def _get(doc: Any, steps: Steps) -> Any:
    """The value at ``steps``, or ``MISSING``."""
    value = doc
    for step in steps:
        if isinstance(value, dict):
            if step not in value:
                return MISSING
            value = value[step]
        elif isinstance(value, list):
            i = _index(step)
            if i is None or i >= len(value):
                return MISSING
            value = value[i]
        else:
            return MISSING
    return value


def _container(doc: dict[str, Any], steps: Steps, op: str, create: bool) -> Any:
    """The dict or list holding the last step, created on the way if ``create``.

    Without ``create``, ``None`` when the path does not lead anywhere.
    """
    value: Any = doc
    depth = 0
    for depth, step in enumerate(steps[:-1]):  # noqa: B007 - depth names the failing step below
        if isinstance(value, dict):
            nxt = value.get(step, MISSING)
            if nxt is MISSING:
                if not create:
                    return None
                nxt = value[step] = {}
        elif isinstance(value, list):
            i = _index(step)
            if i is None:
                if not create:
                    return None
                raise UpdateError(
                    f"{op}: cannot use field {_name(steps)!r}: {_name(steps[:depth])!r} is an array "
                    f"and {step!r} is not a position in it"
                )
            if i >= len(value):
                if not create:
                    return None
                value.extend([None] * (i - len(value)))
                value.append({})
            nxt = value[i]
        else:
            break
        value = nxt
    else:
        depth = len(steps) - 1
    if isinstance(value, (dict, list)):
        return value
    if not create:
        return None
    # MongoDB refuses too: a field cannot be created inside a number, a string or null.
    raise UpdateError(
        f"{op}: cannot use field {_name(steps)!r}: {_name(steps[:depth])!r} holds "
        f"{type(value).__name__} {value!r:.40}, not a document"
    )


def _put(holder: Any, step: str, value: Any, steps: Steps, op: str) -> None:
    if isinstance(holder, dict):
        holder[step] = value
        return
    i = _index(step)
    if i is None:
        raise UpdateError(f"{op}: cannot set {_name(steps)!r}: {step!r} is not a position in an array")
    if i >= len(holder):
        holder.extend([None] * (i - len(holder) + 1))
    holder[i] = value


def _peek(holder: Any, step: str) -> Any:
    if isinstance(holder, dict):
        return holder.get(step, MISSING)
    i = _index(step)
    if i is None or i >= len(holder):
        return MISSING
    return holder[i]


def _set(doc: dict[str, Any], steps: Steps, value: Any, op: str) -> None:
    _put(_container(doc, steps, op, create=True), steps[-1], value, steps, op)


def _current(doc: dict[str, Any], steps: Steps, op: str) -> tuple[Any, Any]:
    """``(holder, value)`` for a field about to change (the holder is created if missing)."""
    holder = _container(doc, steps, op, create=True)
    return holder, _peek(holder, steps[-1])


# ---------------------------------------------------------------------------------------
# Operands
# ---------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _arith(a: Any, b: Any, how: str) -> Any:
    # Python refuses Decimal with float; MongoDB would widen to decimal, so do that.
    if isinstance(a, Decimal) and isinstance(b, float):
        b = Decimal(repr(b))
    elif isinstance(b, Decimal) and isinstance(a, float):
        a = Decimal(repr(a))
    return a + b if how == "add" else a * b


def _copy(value: Any) -> Any:
    # Each document gets its own copy: one update may apply to many documents.
    return copy.deepcopy(value)


def _sort_elements(items: list[Any], how: Any) -> None:
    if isinstance(how, Mapping):
        for field, direction in reversed(list(how.items())):
            steps = _steps(field, "$push $sort")
            items.sort(key=lambda e: sort_key(_get(e, steps)), reverse=direction == -1)
    else:
        items.sort(key=sort_key, reverse=how == -1)


def _direction(value: Any, op: str, what: str) -> int:
    if value in (1, -1) and not isinstance(value, bool):
        return int(value)
    raise UpdateError(f"{op}: {what} must be 1 or -1, got {value!r:.60}")


# ---------------------------------------------------------------------------------------
# Operators: each validates its operand once and returns how to apply it to one field
# ---------------------------------------------------------------------------------------

Apply = Callable[[dict[str, Any], Steps], None]


def _op_set(value: Any, op: str, field: str) -> Apply:
    def apply(doc: dict[str, Any], steps: Steps) -> None:
        _set(doc, steps, _copy(value), op)

    return apply


def _op_unset(value: Any, op: str, field: str) -> Apply:
    def apply(doc: dict[str, Any], steps: Steps) -> None:
        holder = _container(doc, steps, op, create=False)
        if holder is None:
            return
        if isinstance(holder, dict):
            holder.pop(steps[-1], None)
        else:
            i = _index(steps[-1])
            if i is not None and i < len(holder):
                holder[i] = None  # MongoDB keeps array positions: $unset of a.1 sets it to null

    return apply


def _numeric(how: str) -> Callable[[Any, str, str], Apply]:
    def make(amount: Any, op: str, field: str) -> Apply:
        if not _is_number(amount):
            raise UpdateError(f"{op} of {field!r} needs a number, got {amount!r:.60}")

        def apply(doc: dict[str, Any], steps: Steps) -> None:
            holder, current = _current(doc, steps, op)
            if current is MISSING:
                # A missing field starts from 0: $inc sets the amount, $mul sets a zero.
                new = amount if how == "add" else type(amount)(0)
            elif not _is_number(current):
                raise UpdateError(
                    f"{op} of {_name(steps)!r} needs a number there, but it holds "
                    f"{type(current).__name__} {current!r:.40}"
                )
            else:
                new = _arith(current, amount, how)
            _put(holder, steps[-1], new, steps, op)

        return apply

    return make


def _extreme(keep_lower: bool) -> Callable[[Any, str, str], Apply]:
    def make(value: Any, op: str, field: str) -> Apply:
        key = sort_key(value)

        def apply(doc: dict[str, Any], steps: Steps) -> None:
            holder, current = _current(doc, steps, op)
            # MicroDB's kind order decides across kinds, as BSON order does in MongoDB.
            if current is MISSING or (key < sort_key(current) if keep_lower else key > sort_key(current)):
                _put(holder, steps[-1], _copy(value), steps, op)

        return apply

    return make


def _op_rename(target: Any, op: str, field: str) -> Apply:
    dest = _steps(target, op)

    def apply(doc: dict[str, Any], steps: Steps) -> None:
        holder = _container(doc, steps, op, create=False)
        if holder is None:
            return
        if not isinstance(holder, dict):
            raise UpdateError(f"$rename of {_name(steps)!r}: cannot rename a field inside an array")
        if steps[-1] not in holder:
            return
        value = holder.pop(steps[-1])
        target_holder = _container(doc, dest, op, create=True)
        if not isinstance(target_holder, dict):
            raise UpdateError(f"$rename to {_name(dest)!r}: cannot rename into an array")
        target_holder[dest[-1]] = value

    return apply


def _array_at(doc: dict[str, Any], steps: Steps, op: str, create: bool) -> tuple[Any, list[Any] | None]:
    holder = _container(doc, steps, op, create=create)
    if holder is None:
        return None, None
    current = _peek(holder, steps[-1])
    if current is MISSING:
        if not create:
            return holder, None
        current = []
        _put(holder, steps[-1], current, steps, op)
    if not isinstance(current, list):
        raise UpdateError(
            f"{op} of {_name(steps)!r} needs an array there, but it holds "
            f"{type(current).__name__} {current!r:.40}"
        )
    return holder, current


def _each(spec: Any, op: str, field: str, allowed: tuple[str, ...]) -> tuple[list[Any], dict[str, Any]]:
    """The values a ``$push``/``$addToSet`` adds, and its modifiers."""
    if isinstance(spec, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in spec):
        if "$each" not in spec:
            raise UpdateError(f"{op} of {field!r}: modifiers need $each, got {sorted(map(str, spec))}")
        mods = dict(spec)
        for key in mods:
            if key not in allowed:
                raise UpdateError(f"{op} of {field!r}: unknown modifier {key!r} (use {', '.join(allowed)})")
        values = mods.pop("$each")
        if not isinstance(values, (list, tuple)):
            raise UpdateError(f"{op} of {field!r}: $each needs an array, got {values!r:.60}")
        return list(values), mods
    return [spec], {}


def _op_push(spec: Any, op: str, field: str) -> Apply:
    values, mods = _each(spec, op, field, ("$each", "$slice", "$position", "$sort"))
    for name in ("$slice", "$position"):
        if name in mods and (not isinstance(mods[name], int) or isinstance(mods[name], bool)):
            raise UpdateError(f"$push of {field!r}: {name} needs an integer, got {mods[name]!r:.60}")
    if "$sort" in mods:
        how = mods["$sort"]
        if isinstance(how, Mapping):
            if not how:
                raise UpdateError(f"$push of {field!r}: $sort needs at least one field")
            for key, direction in how.items():
                _steps(key, "$push $sort")
                _direction(direction, "$push", "a $sort direction")
        else:
            _direction(how, "$push", "$sort")

    def apply(doc: dict[str, Any], steps: Steps) -> None:
        _, items = _array_at(doc, steps, op, create=True)
        assert items is not None
        new = [_copy(v) for v in values]
        position = mods.get("$position")
        if position is None:
            items.extend(new)
        else:
            at = position if position >= 0 else max(len(items) + position, 0)
            items[at:at] = new
        if "$sort" in mods:
            _sort_elements(items, mods["$sort"])
        if "$slice" in mods:
            n = mods["$slice"]
            kept = items[:n] if n >= 0 else items[n:]
            items[:] = kept

    return apply


def _op_add_to_set(spec: Any, op: str, field: str) -> Apply:
    values, _ = _each(spec, op, field, ("$each",))

    def apply(doc: dict[str, Any], steps: Steps) -> None:
        _, items = _array_at(doc, steps, op, create=True)
        assert items is not None
        for value in values:
            if not any(values_equal(value, item) for item in items):
                items.append(_copy(value))

    return apply


def _op_pop(end: Any, op: str, field: str) -> Apply:
    direction = _direction(end, op, f"$pop of {field!r}")

    def apply(doc: dict[str, Any], steps: Steps) -> None:
        _, items = _array_at(doc, steps, op, create=False)
        if items:
            items.pop(0 if direction == -1 else -1)

    return apply


def _op_pull(cond: Any, op: str, field: str) -> Apply:
    test: Callable[[Any], bool]
    is_condition = isinstance(cond, re.Pattern) or (
        isinstance(cond, Mapping) and bool(cond)
    )
    if is_condition:
        try:
            node = condition_on_values(cond)
        except QueryError as exc:
            raise UpdateError(f"$pull of {field!r}: {exc}") from exc
        test = predicate(node, is_dict=False)
    else:
        def test(item: Any) -> bool:
            return values_equal(item, cond)

    def apply(doc: dict[str, Any], steps: Steps) -> None:
        _, items = _array_at(doc, steps, op, create=False)
        if items:
            items[:] = [item for item in items if not test(item)]

    return apply


def _op_pull_all(values: Any, op: str, field: str) -> Apply:
    if not isinstance(values, (list, tuple)):
        raise UpdateError(f"$pullAll of {field!r} needs an array of values, got {values!r:.60}")
    drop = list(values)

    def apply(doc: dict[str, Any], steps: Steps) -> None:
        _, items = _array_at(doc, steps, op, create=False)
        if items:
            items[:] = [item for item in items if not any(values_equal(item, v) for v in drop)]

    return apply


def _op_current_date(spec: Any, op: str, field: str) -> Apply:
    if isinstance(spec, Mapping):
        if list(spec) != ["$type"] or spec["$type"] not in ("date", "timestamp"):
            raise UpdateError(f"$currentDate of {field!r}: use true or {{'$type': 'date'}}, got {spec!r:.60}")
        if spec["$type"] == "timestamp":
            raise UpdateError(
                f"$currentDate of {field!r}: MicroDB has no BSON timestamps; use {{'$type': 'date'}}"
            )
    elif spec is not True:
        raise UpdateError(f"$currentDate of {field!r}: use true or {{'$type': 'date'}}, got {spec!r:.60}")

    def apply(doc: dict[str, Any], steps: Steps) -> None:
        # An aware UTC datetime, as MongoDB's dates are UTC instants.
        _set(doc, steps, _dt.datetime.now(_dt.timezone.utc), op)

    return apply


_OPERATORS: dict[str, Callable[[Any, str, str], Apply]] = {
    "$set": _op_set,
    "$unset": _op_unset,
    "$inc": _numeric("add"),
    "$mul": _numeric("mul"),
    "$min": _extreme(keep_lower=True),
    "$max": _extreme(keep_lower=False),
    "$rename": _op_rename,
    "$push": _op_push,
    "$pull": _op_pull,
    "$pullAll": _op_pull_all,
    "$addToSet": _op_add_to_set,
    "$pop": _op_pop,
    "$currentDate": _op_current_date,
}


@dataclass(frozen=True)
class _Step:
    op: str
    steps: Steps
    apply: Apply


def _overlap(a: Steps, b: Steps) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def compile_operators(spec: Mapping[str, Any]) -> Updater:
    """A function applying MongoDB-style update operators to a document in place.

    Raises ``UpdateError`` at once for an unknown operator, a malformed operand, or two
    operators (or fields) that touch the same path or one inside the other.
    """
    return compile_operator_paths(spec)[0]


def compile_operator_paths(spec: Mapping[str, Any]) -> tuple[Updater, tuple[Steps, ...]]:
    """:func:`compile_operators`, and every path the update may change (``$rename``: both).

    The operators change a document only at those paths: inside the containers along each
    path and inside the value at its end, never elsewhere (what a copy-on-write update
    copies, :mod:`microdb.compile.updates`).
    """
    if not isinstance(spec, Mapping) or not spec:
        raise UpdateError(f"an operator update must be a non-empty mapping, got {spec!r:.60}")
    plan: list[_Step] = []
    touched: list[tuple[Steps, str]] = []

    def claim(steps: Steps, label: str) -> None:
        for other, other_label in touched:
            if _overlap(steps, other):
                raise UpdateError(
                    f"conflicting update: {label} and {other_label} both change {_name(min(steps, other, key=len))!r}"
                )
        touched.append((steps, label))

    for op, fields in spec.items():
        make = _OPERATORS.get(op) if isinstance(op, str) else None
        if make is None:
            raise UpdateError(f"unknown update operator {op!r} (use one of {', '.join(sorted(_OPERATORS))})")
        if not isinstance(fields, Mapping):
            raise UpdateError(f"{op} needs a mapping of fields, got {fields!r:.60}")
        for field, operand in fields.items():
            steps = _steps(field, op)
            claim(steps, f"{op} {field!r}")
            if op == "$rename":
                claim(_steps(operand, op), f"$rename target {operand!r}")
            plan.append(_Step(op, steps, make(operand, op, field)))

    def apply(doc: dict[str, Any]) -> None:
        for step in plan:
            step.apply(doc, step.steps)

    return apply, tuple(steps for steps, _ in touched)


# ---------------------------------------------------------------------------------------
# Upserts
# ---------------------------------------------------------------------------------------


def _seed_put(seed: dict[str, Any], field: str, value: Any) -> None:
    steps = _steps(field, "upsert")
    target = seed
    for step in steps[:-1]:
        nxt = target.setdefault(step, {})
        if not isinstance(nxt, dict):
            raise UpdateError(f"upsert: the filter sets {field!r} inside a value it also sets")
        target = nxt
    if steps[-1] in target:
        raise UpdateError(f"upsert: the filter sets {field!r} twice")
    target[steps[-1]] = copy.deepcopy(value)


def _collect(filter: Mapping[str, Any], seed: dict[str, Any]) -> None:
    for key, value in filter.items():
        if not isinstance(key, str):
            continue
        if key == "$and" and isinstance(value, (list, tuple)):
            for clause in value:
                if isinstance(clause, Mapping):
                    _collect(clause, seed)
            continue
        if key.startswith("$") or isinstance(value, re.Pattern):
            continue  # $or, $nor...: no single value to take
        if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
            if "$eq" in value and not isinstance(value["$eq"], re.Pattern):
                _seed_put(seed, key, value["$eq"])
            continue
        _seed_put(seed, key, value)


def upsert_seed(cond: Any) -> dict[str, Any]:
    """The document an upsert inserts before applying its update operators.

    For a dict filter: its equality fields (``{'name': 'x'}``, ``{'n': {'$eq': 1}}``,
    those inside a top-level ``$and``), nested along dot paths; ``{}`` for other queries.
    """
    seed: dict[str, Any] = {}
    if isinstance(cond, Mapping):
        _collect(cond, seed)
    return seed
