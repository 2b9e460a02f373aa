"""Python types as schemas: a dataclass, a ``TypedDict`` or a pydantic model becomes a JSON Schema.

The table stores the JSON Schema, so every process (and every backend) checks the same
rules, whether or not it can import the class. The class itself stays in the process that
passed it, and turns stored documents back into instances (:func:`model_instance`).

Annotations map as follows: ``str``, ``int``, ``float`` (an ``int`` is accepted too, as
Python's typing does), ``bool``, ``None``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]``,
``X | None``, ``Union``, ``Literal[...]`` (an ``enum``), ``Any``, nested dataclasses and
``TypedDict``\\ s, and the rich types (``datetime``, ``date``, ``time``, ``timedelta``,
``UUID``, ``Decimal``, ``bytes``). A dataclass's or a pydantic model's fields without a
default are required and no other field is allowed (the instance could not be built);
a ``TypedDict`` requires its required keys and allows others. pydantic's constraints
(``Field(ge=0, max_length=10)``, ``pattern``) become the matching keywords.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import sys
import types
import typing
import uuid
from decimal import Decimal
from typing import Any

from microdb.errors import SchemaError

__all__ = ["is_model", "model_instance", "schema_of"]

_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"bsonType": "string"},
    int: {"bsonType": "long"},
    float: {"bsonType": "number"},
    bool: {"bsonType": "bool"},
    type(None): {"bsonType": "null"},
    _dt.datetime: {"bsonType": "date"},
    _dt.date: {"bsonType": "calendarDate"},
    _dt.time: {"bsonType": "time"},
    _dt.timedelta: {"bsonType": "timedelta"},
    uuid.UUID: {"bsonType": "uuid"},
    Decimal: {"bsonType": "decimal"},
    bytes: {"bsonType": "binData"},
}


def _is_typeddict(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, dict) and hasattr(obj, "__required_keys__")


def _is_pydantic(obj: Any) -> bool:
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(obj, type) and issubclass(obj, pydantic.BaseModel)


def is_model(obj: Any) -> bool:
    """Whether ``obj`` is a class :func:`schema_of` turns into a schema."""
    return (isinstance(obj, type) and dataclasses.is_dataclass(obj)) or _is_typeddict(obj) or _is_pydantic(obj)


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as exc:  # a forward reference that cannot be resolved, for one
        raise SchemaError(f"cannot read the annotations of {cls.__name__}: {exc}") from exc


def _constraints(metadata: list[Any], base: dict[str, Any]) -> dict[str, Any]:
    """pydantic's (annotated-types') constraints as JSON Schema keywords."""
    out = dict(base)
    is_text = base.get("bsonType") == "string"
    for item in metadata:
        for attr, key in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"),
                          ("lt", "exclusiveMaximum"), ("multiple_of", "multipleOf"), ("pattern", "pattern")):
            value = getattr(item, attr, None)
            if value is not None:
                out[key] = value
        for attr, text_key, list_key in (("min_length", "minLength", "minItems"), ("max_length", "maxLength", "maxItems")):
            value = getattr(item, attr, None)
            if value is not None:
                out[text_key if is_text else list_key] = value
    return out


def _schema(tp: Any, seen: tuple[type, ...]) -> dict[str, Any]:
    if tp is Any or tp is object:
        return {}
    if tp in _SIMPLE:
        return dict(_SIMPLE[tp])
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _constraints(list(args[1:]), _schema(args[0], seen))
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        options = [_schema(a, seen) for a in args]
        names = [o["bsonType"] for o in options if set(o) == {"bsonType"}]
        if len(names) == len(options):
            return {"bsonType": names}
        return {"anyOf": options}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, set, frozenset) or tp in (list,):
        out: dict[str, Any] = {"bsonType": "array"}
        if args:
            out["items"] = _schema(args[0], seen)
        return out
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"bsonType": "array", "items": _schema(args[0], seen)}
        return {"bsonType": "array", "items": [_schema(a, seen) for a in args], "additionalItems": False,
                "minItems": len(args)}
    if origin is dict or tp is dict:
        out = {"bsonType": "object"}
        if len(args) == 2:
            if args[0] is not str:
                raise SchemaError(f"document keys are strings: {tp!r} cannot be stored")
            out["additionalProperties"] = _schema(args[1], seen)
        return out
    if isinstance(tp, type) and is_model(tp):
        if tp in seen:
            raise SchemaError(f"{tp.__name__} refers to itself; recursive schemas are not supported")
        return _class_schema(tp, (*seen, tp))
    raise SchemaError(f"no schema for the annotation {tp!r} (see the supported types in docs/schemas.md)")


def _class_schema(cls: type, seen: tuple[type, ...]) -> dict[str, Any]:
    hints = _hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    closed = True
    if _is_pydantic(cls):
        for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
            key = info.alias or name
            props[key] = _constraints(list(info.metadata), _schema(info.annotation, seen))
            if info.is_required():
                required.append(key)
        closed = cls.model_config.get("extra") != "allow"  # type: ignore[attr-defined]
    elif dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            props[f.name] = _schema(hints.get(f.name, Any), seen)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
    else:
        for name, tp in hints.items():
            props[name] = _schema(tp, seen)
        required = [k for k in hints if k in cls.__required_keys__]  # type: ignore[attr-defined]
        closed = False
    out: dict[str, Any] = {"bsonType": "object", "title": cls.__name__, "properties": props}
    if required:
        out["required"] = required
    if closed:
        out["additionalProperties"] = False
    return out


def schema_of(spec: Any) -> tuple[dict[str, Any], type | None]:
    """The JSON Schema of ``spec`` and the model class (``None`` for a plain schema dict).

    Raises :class:`~microdb.errors.SchemaError` for anything else.
    """
    if isinstance(spec, dict):
        return spec, None
    if is_model(spec):
        return _class_schema(spec, (spec,)), spec
    hint = ""
    if isinstance(spec, type) and spec.__name__ == "BaseModel" or "pydantic" in getattr(spec, "__module__", ""):
        hint = " (pydantic models need pydantic installed: pip install 'microdb[pydantic]')"
    raise SchemaError(
        f"a schema is a JSON Schema dict, a dataclass, a TypedDict or a pydantic model, got {spec!r:.60}{hint}"
    )


def model_instance(model: type, doc: dict[str, Any]) -> Any:
    """``doc`` (a stored document) as an instance of ``model``; nested models are built too."""
    if _is_pydantic(model):
        return model.model_validate(doc)  # type: ignore[attr-defined]
    if _is_typeddict(model):
        return dict(doc)
    if dataclasses.is_dataclass(model):
        hints = _hints(model)
        kwargs = {}
        for f in dataclasses.fields(model):
            if f.name in doc and f.init:
                kwargs[f.name] = _value(hints.get(f.name, Any), doc[f.name])
        return model(**kwargs)
    raise SchemaError(f"{model!r:.60} is not a model class")


def _value(tp: Any, value: Any) -> Any:
    """A stored value as the annotation wants it: nested dataclasses are built."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, dict):
        return model_instance(tp, value)
    if origin in (list, set, frozenset) and args and isinstance(value, list):
        items = [_value(args[0], v) for v in value]
        return items if origin is list else origin(items)
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v) for v in value)
        return tuple(_value(a, v) for a, v in zip(args, value))
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {k: _value(args[1], v) for k, v in value.items()}
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is types.UnionType):
        for a in args:
            if isinstance(a, type) and dataclasses.is_dataclass(a) and isinstance(value, dict):
                return model_instance(a, value)
    if origin is typing.Annotated:
        return _value(args[0], value)
    return value
