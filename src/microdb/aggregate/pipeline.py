"""Aggregation pipelines: checking the stages, and the expressions inside them.

A pipeline is a list of one-key dicts (``{"$match": {...}}``); :func:`parse_pipeline`
checks each stage and returns :class:`Stage` objects, raising
:class:`~microdb.errors.QueryError` (naming the stage and its position) for anything it
does not know, before any document is read. Expressions (in ``$group``, ``$project``)
are field paths (``"$address.city"``), literals, objects and lists of expressions, and
``{"$literal": value}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from microdb.errors import QueryError
from microdb.query.ast import Node
from microdb.query.builders import to_node
from microdb.query.values import MISSING

#: A field path in a pipeline: names only (``"$a.b"`` is ``("a", "b")``).
FieldPath = tuple[str, ...]

__all__ = ["ACCUMULATORS", "STAGES", "Field", "FieldPath", "Stage", "evaluate", "get_path", "parse_expression", "parse_pipeline"]

#: Every stage, in the order docs/aggregation.md lists them.
STAGES = ("$match", "$sort", "$project", "$limit", "$skip", "$unwind", "$count", "$group", "$lookup")
#: Every ``$group`` accumulator.
ACCUMULATORS = ("$sum", "$avg", "$min", "$max", "$count", "$push", "$addToSet", "$first", "$last")


@dataclass(frozen=True)
class Field:
    """An expression reading the value at a path (``"$a.b"``)."""

    path: FieldPath


@dataclass(frozen=True)
class Literal:
    """An expression that is a constant."""

    value: Any


@dataclass(frozen=True)
class Stage:
    """One checked stage: its operator and its parsed argument."""

    op: str
    arg: Any


def _fail(where: str, message: str) -> QueryError:
    return QueryError(f"aggregate: {where}: {message}")


def _path(text: str, where: str) -> FieldPath:
    if not text or any(not part for part in text.split(".")):
        raise _fail(where, f"bad field path {text!r}")
    return tuple(text.split("."))


def parse_expression(value: Any, where: str) -> Any:
    """An expression as :class:`Field`, :class:`Literal`, or a dict/list of expressions."""
    if isinstance(value, str):
        if value.startswith("$$"):
            raise _fail(where, f"variables such as {value!r} are not supported")
        if value.startswith("$"):
            return Field(_path(value[1:], where))
        return Literal(value)
    if isinstance(value, Mapping):
        keys = list(value)
        if len(keys) == 1 and isinstance(keys[0], str) and keys[0].startswith("$"):
            if keys[0] == "$literal":
                return Literal(value[keys[0]])
            raise _fail(where, f"unknown expression operator {keys[0]!r} (field paths, literals and $literal are supported)")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise _fail(where, f"bad field name {key!r} in an object expression")
            out[key] = parse_expression(item, f"{where}.{key}")
        return out
    if isinstance(value, list):
        return [parse_expression(item, f"{where}.{i}") for i, item in enumerate(value)]
    return Literal(value)


def get_path(doc: Any, path: FieldPath) -> Any:
    """The value at ``path``, MongoDB-style: through arrays, a list of what each element holds."""
    value = doc
    for i, step in enumerate(path):
        if isinstance(value, Mapping):
            if step not in value:
                return MISSING
            value = value[step]
        elif isinstance(value, list):
            rest = path[i:]
            found = [get_path(item, rest) for item in value if isinstance(item, (Mapping, list))]
            return [v for v in found if v is not MISSING]
        else:
            return MISSING
    return value


def evaluate(expr: Any, doc: Any) -> Any:
    """The value of a parsed expression for ``doc`` (``MISSING`` for a missing field)."""
    if isinstance(expr, Field):
        return get_path(doc, expr.path)
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, dict):
        out = {}
        for key, item in expr.items():
            value = evaluate(item, doc)
            if value is not MISSING:
                out[key] = value
        return out
    if isinstance(expr, list):
        return [None if v is MISSING else v for v in (evaluate(item, doc) for item in expr)]
    raise AssertionError(f"not an expression: {expr!r}")


# -- stages ---------------------------------------------------------------------------------
def _match(arg: Any, where: str) -> Node:
    if not isinstance(arg, Mapping):
        raise _fail(where, "$match needs a filter document (a dict)")
    return to_node(dict(arg))


def _sort(arg: Any, where: str) -> tuple[tuple[FieldPath, bool], ...]:
    if not isinstance(arg, Mapping) or not arg:
        raise _fail(where, "$sort needs a non-empty dict of field: 1 or -1")
    keys = []
    for key, direction in arg.items():
        if direction not in (1, -1) or isinstance(direction, bool):
            raise _fail(where, f"$sort direction of {key!r} must be 1 or -1, got {direction!r}")
        keys.append((_path(str(key), where), direction == -1))
    return tuple(keys)


def _count_arg(arg: Any, where: str, stage: str, positive: bool) -> int:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < (1 if positive else 0):
        raise _fail(where, f"{stage} needs a {'positive' if positive else 'non-negative'} integer, got {arg!r}")
    return arg


def _project(arg: Any, where: str) -> tuple[str, dict[FieldPath, Any], bool]:
    """(mode, path -> True or an expression, keep ``_id``)."""
    if not isinstance(arg, Mapping) or not arg:
        raise _fail(where, "$project needs a non-empty dict")
    include: dict[FieldPath, Any] = {}
    exclude: dict[FieldPath, Any] = {}
    keep_id = True
    for key, value in arg.items():
        path = _path(str(key), where)
        flag = value if isinstance(value, bool) else (bool(value) if isinstance(value, (int, float)) else None)
        if key == "_id" and flag is False:
            keep_id = False
        elif flag is True:
            include[path] = True
        elif flag is False:
            exclude[path] = True
        else:
            include[path] = parse_expression(value, f"{where}.{key}")
    if include and exclude:
        raise _fail(where, "$project cannot both include and exclude fields (other than _id)")
    if exclude:
        return "exclude", exclude, keep_id
    if not include:
        return "exclude", {("_id",): True}, False
    return "include", include, keep_id


def _unwind(arg: Any, where: str) -> tuple[FieldPath, str | None, bool]:
    if isinstance(arg, str):
        arg = {"path": arg}
    if not isinstance(arg, Mapping) or not isinstance(arg.get("path"), str) or not arg["path"].startswith("$"):
        raise _fail(where, "$unwind needs a field path such as '$tags' (or {'path': '$tags', ...})")
    unknown = set(arg) - {"path", "includeArrayIndex", "preserveNullAndEmptyArrays"}
    if unknown:
        raise _fail(where, f"unknown $unwind option {sorted(unknown)[0]!r}")
    index = arg.get("includeArrayIndex")
    if index is not None and (not isinstance(index, str) or not index or index.startswith("$")):
        raise _fail(where, f"includeArrayIndex needs a field name, got {index!r}")
    preserve = arg.get("preserveNullAndEmptyArrays", False)
    if not isinstance(preserve, bool):
        raise _fail(where, "preserveNullAndEmptyArrays needs true or false")
    return _path(arg["path"][1:], where), index, preserve


def _count(arg: Any, where: str) -> str:
    if not isinstance(arg, str) or not arg or arg.startswith("$") or "." in arg:
        raise _fail(where, f"$count needs a field name (no '$' or '.'), got {arg!r}")
    return arg


def _group(arg: Any, where: str) -> tuple[Any, tuple[tuple[str, str, Any], ...]]:
    if not isinstance(arg, Mapping) or "_id" not in arg:
        raise _fail(where, "$group needs a dict with an _id (use None to group everything)")
    key = parse_expression(arg["_id"], f"{where}._id")
    out = []
    for name, spec in arg.items():
        if name == "_id":
            continue
        if not isinstance(name, str) or name.startswith("$") or "." in name:
            raise _fail(where, f"bad output field name {name!r}")
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise _fail(where, f"{name!r} needs one accumulator, such as {{'$sum': '$qty'}}")
        (op, value), = spec.items()
        if op not in ACCUMULATORS:
            raise _fail(where, f"unknown accumulator {op!r} for {name!r} (known: {', '.join(ACCUMULATORS)})")
        if op == "$count":
            if value != {}:
                raise _fail(where, "$count takes no argument: {'$count': {}}")
            out.append((name, op, None))
        else:
            out.append((name, op, parse_expression(value, f"{where}.{name}")))
    return key, tuple(out)


def _lookup(arg: Any, where: str) -> tuple[str, FieldPath, FieldPath, str]:
    if not isinstance(arg, Mapping):
        raise _fail(where, "$lookup needs a dict")
    unknown = set(arg) - {"from", "localField", "foreignField", "as"}
    if unknown:
        raise _fail(where, f"$lookup option {sorted(unknown)[0]!r} is not supported (from, localField, foreignField, as)")
    for key in ("from", "localField", "foreignField", "as"):
        if not isinstance(arg.get(key), str) or not arg[key]:
            raise _fail(where, f"$lookup needs {key!r} (a string)")
    return arg["from"], _path(arg["localField"], where), _path(arg["foreignField"], where), arg["as"]


_PARSERS = {
    "$match": _match,
    "$sort": _sort,
    "$project": _project,
    "$limit": lambda a, w: _count_arg(a, w, "$limit", True),
    "$skip": lambda a, w: _count_arg(a, w, "$skip", False),
    "$unwind": _unwind,
    "$count": _count,
    "$group": _group,
    "$lookup": _lookup,
}


def parse_pipeline(pipeline: Any) -> list[Stage]:
    """Check a pipeline and parse its stages (raises ``QueryError`` naming the bad stage)."""
    if isinstance(pipeline, (str, bytes, Mapping)) or not isinstance(pipeline, (list, tuple)):
        raise QueryError(f"aggregate() needs a list of stages, got {type(pipeline).__name__}")
    stages = []
    for i, stage in enumerate(pipeline):
        where = f"stage {i}"
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise _fail(where, f"a stage is a dict with one key, such as {{'$match': {{...}}}}, got {stage!r:.60}")
        (op, arg), = stage.items()
        parser = _PARSERS.get(op)
        if parser is None:
            raise _fail(where, f"unknown stage {op!r} (known: {', '.join(STAGES)})")
        stages.append(Stage(op, parser(arg, f"{where} ({op})")))
    return stages
