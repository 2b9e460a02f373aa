"""Running pipeline stages in Python, over documents that come from a table (or a SQL prefix).

Stages never change the documents they receive (those may be a backend's own objects):
a stage that changes a document builds a new one; :func:`run_stages` copies what it
returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from microdb.aggregate.pipeline import FieldPath, Stage, evaluate, get_path
from microdb.compile.python import compile_query
from microdb.query.values import MISSING, index_key, sort_key, values_equal
from microdb.serialization import copy_value

__all__ = ["Lookup", "group", "run_stages"]

#: ``lookup(table)`` -> the live documents of another table of the same database.
Lookup = Callable[[str], list[dict[str, Any]]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _key(value: Any) -> Any:
    return index_key(None if value is MISSING else value)


class _Acc:
    """One accumulator of one group."""

    __slots__ = ("op", "value", "n", "keys")

    def __init__(self, op: str):
        self.op = op
        self.value: Any = MISSING
        self.n = 0
        self.keys: set[Any] | None = None

    def add(self, value: Any) -> None:
        op = self.op
        if op == "$count":
            self.n += 1
        elif op in ("$sum", "$avg"):
            if _is_number(value):
                self.value = value if self.value is MISSING else self.value + value
                self.n += 1
        elif op in ("$min", "$max"):
            if value is MISSING or value is None:
                return
            if self.value is MISSING:
                self.value = value
            elif (sort_key(value) < sort_key(self.value)) == (op == "$min") and not values_equal(value, self.value):
                self.value = value
        elif op == "$push":
            if value is not MISSING:
                if self.value is MISSING:
                    self.value = []
                self.value.append(value)
        elif op == "$addToSet":
            if value is not MISSING:
                if self.value is MISSING:
                    self.value, self.keys = [], set()
                key = _key(value)
                assert self.keys is not None
                if key not in self.keys:
                    self.keys.add(key)
                    self.value.append(value)
        elif op == "$first":
            if self.n == 0:
                self.value = value
            self.n = 1
        elif op == "$last":
            self.value = value

    def result(self) -> Any:
        op = self.op
        if op == "$count":
            return self.n
        if op == "$sum":
            return 0 if self.value is MISSING else self.value
        if op == "$avg":
            return None if self.n == 0 else (float(self.value) / self.n if not isinstance(self.value, Decimal) else self.value / self.n)
        if op in ("$push", "$addToSet"):
            return [] if self.value is MISSING else self.value
        return None if self.value is MISSING else self.value


def group(docs: Iterable[Mapping[str, Any]], arg: tuple[Any, tuple[tuple[str, str, Any], ...]]) -> list[dict[str, Any]]:
    """``$group``: one document per distinct key, in the order keys first appear."""
    key_expr, accs = arg
    groups: dict[Any, tuple[Any, list[_Acc]]] = {}
    for doc in docs:
        value = evaluate(key_expr, doc)
        if value is MISSING:
            value = None
        k = _key(value)
        found = groups.get(k)
        if found is None:
            found = groups[k] = (value, [_Acc(op) for _, op, _ in accs])
        for acc, (_, _, expr) in zip(found[1], accs):
            acc.add(None if expr is None else evaluate(expr, doc))
    out = []
    for value, state in groups.values():
        doc = {"_id": value}
        for acc, (name, _, _) in zip(state, accs):
            doc[name] = acc.result()
        out.append(doc)
    return out


def _sort(docs: list[Any], keys: tuple[tuple[FieldPath, bool], ...]) -> list[Any]:
    out = list(docs)
    for path, reverse in reversed(keys):
        out.sort(key=lambda d: sort_key(get_path(d, path)), reverse=reverse)
    return out


def _set_path(doc: dict[str, Any], path: FieldPath, value: Any) -> None:
    for step in path[:-1]:
        sub = doc.get(step)
        if not isinstance(sub, dict):
            sub = doc[step] = {}
        doc = sub
    doc[path[-1]] = value


def _include(value: Any, tree: dict[str, Any], root: Any) -> Any:
    if isinstance(value, list):
        return [_include(v, tree, root) for v in value if isinstance(v, (dict, list))]
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if isinstance(sub, dict) and "\x00expr" not in sub:
            if key in value and isinstance(value[key], (dict, list)):
                out[key] = _include(value[key], sub, root)
        elif sub is True:
            if key in value:
                out[key] = value[key]
        else:
            got = evaluate(sub["\x00expr"], root)
            if got is not MISSING:
                out[key] = got
    return out


def _exclude(value: Any, tree: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_exclude(v, tree) if isinstance(v, dict) else v for v in value]
    out = {}
    for key, item in value.items():
        sub = tree.get(key)
        if sub is True:
            continue
        out[key] = item if sub is None or not isinstance(item, (dict, list)) else _exclude(item, sub)
    return out


def _project(docs: Iterable[Mapping[str, Any]], arg: tuple[str, dict[FieldPath, Any], bool]) -> Iterator[dict[str, Any]]:
    mode, paths, keep_id = arg
    tree: dict[str, Any] = {}
    for path, spec in paths.items():
        node = tree
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = True if spec is True else {"\x00expr": spec}
    if mode == "exclude":
        if not keep_id:
            tree["_id"] = True
        for doc in docs:
            yield _exclude(doc, tree)
        return
    for doc in docs:
        out = _include(doc, tree, doc)
        if keep_id and "_id" in doc and "_id" not in tree:
            out = {"_id": doc["_id"], **out}
        yield out


def _unwind(docs: Iterable[Mapping[str, Any]], arg: tuple[FieldPath, str | None, bool]) -> Iterator[dict[str, Any]]:
    path, index, preserve = arg
    for doc in docs:
        value: Any = doc
        for step in path:  # through sub-documents only, as MongoDB's $unwind
            value = value.get(step, MISSING) if isinstance(value, Mapping) else MISSING
        if isinstance(value, list) and value:
            for i, item in enumerate(value):
                if len(path) == 1:
                    out = dict(doc)
                    out[path[0]] = item
                else:
                    out = copy_value(dict(doc))
                    _set_path(out, path, item)
                if index is not None:
                    out[index] = i
                yield out
        elif isinstance(value, list) or value is MISSING or value is None:
            if preserve:
                out = dict(doc)
                if index is not None:
                    out[index] = None
                yield out
        else:
            out = dict(doc)
            if index is not None:
                out[index] = None
            yield out


def _values(doc: Any, path: FieldPath) -> list[Any]:
    value = get_path(doc, path)
    if value is MISSING or value is None:
        return [None]
    if isinstance(value, list):
        flat: list[Any] = []
        for item in value:
            flat.extend(item if isinstance(item, list) else [item])
        return flat
    return [value]


def _lookup(docs: Iterable[Mapping[str, Any]], arg: tuple[str, FieldPath, FieldPath, str], lookup: Lookup) -> Iterator[dict[str, Any]]:
    source, local, foreign, name = arg
    others = lookup(source)
    by_key: dict[Any, list[int]] = {}
    for i, other in enumerate(others):
        for value in dict.fromkeys(_key(v) for v in _values(other, foreign)):
            by_key.setdefault(value, []).append(i)
    for doc in docs:
        hits: set[int] = set()
        for value in _values(doc, local):
            hits.update(by_key.get(_key(value), ()))
        out = dict(doc)
        out[name] = [others[i] for i in sorted(hits)]
        yield out


def run_stages(docs: Iterable[Mapping[str, Any]], stages: list[Stage], lookup: Lookup) -> list[dict[str, Any]]:
    """Run ``stages`` over ``docs`` in Python; fresh copies of the output documents."""
    current: Iterable[Any] = docs
    for stage in stages:
        op, arg = stage.op, stage.arg
        if op == "$match":
            check = compile_query(arg).predicate
            current = [d for d in current if check(d)]
        elif op == "$sort":
            current = _sort(list(current), arg)
        elif op == "$skip":
            current = list(current)[arg:]
        elif op == "$limit":
            current = list(current)[:arg]
        elif op == "$project":
            current = list(_project(current, arg))
        elif op == "$unwind":
            current = list(_unwind(current, arg))
        elif op == "$count":
            n = sum(1 for _ in current)
            current = [{arg: n}] if n else []
        elif op == "$group":
            current = group(current, arg)
        elif op == "$lookup":
            current = list(_lookup(current, arg, lookup))
        else:  # pragma: no cover - parse_pipeline knows every stage
            raise AssertionError(op)
    return [copy_value(dict(d)) for d in current]
