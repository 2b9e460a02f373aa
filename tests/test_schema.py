"""Schemas: the JSON Schema validator, Python types as schemas, and every write checked on every backend."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypedDict

import pydantic
import pytest

from microdb import DocumentError, MicroDB, SchemaError, ValidationError, where
from microdb.schema import compile_schema, schema_of

USER = {
    "bsonType": "object",
    "required": ["name", "age"],
    "properties": {
        "name": {"bsonType": "string", "minLength": 1},
        "age": {"bsonType": "int", "minimum": 0, "maximum": 150},
        "email": {"bsonType": "string", "pattern": "^[^@]+@[^@]+$"},
        "tags": {"bsonType": "array", "items": {"bsonType": "string"}, "uniqueItems": True, "maxItems": 3},
    },
}


# -- the validator ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "schema, doc, path, rule",
    [
        ({"required": ["a"]}, {}, "a", "required"),
        ({"properties": {"a": {"type": "string"}}}, {"a": 1}, "a", "type"),
        ({"properties": {"a": {"type": "integer"}}}, {"a": True}, "a", "type"),
        ({"properties": {"a": {"type": "number"}}}, {"a": False}, "a", "type"),
        ({"properties": {"a": {"bsonType": "int"}}}, {"a": 2**40}, "a", "bsonType"),
        ({"properties": {"a": {"bsonType": "double"}}}, {"a": 1}, "a", "bsonType"),
        ({"properties": {"a": {"bsonType": "date"}}}, {"a": dt.date(2024, 1, 1)}, "a", "bsonType"),
        ({"properties": {"a": {"bsonType": "calendarDate"}}}, {"a": dt.datetime(2024, 1, 1)}, "a", "bsonType"),
        ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}, "b", "additionalProperties"),
        ({"additionalProperties": {"type": "string"}}, {"b": 2}, "b", "type"),
        ({"properties": {"a": {"enum": [1, "x"]}}}, {"a": True}, "a", "enum"),
        ({"properties": {"a": {"minimum": 5}}}, {"a": 4.5}, "a", "minimum"),
        ({"properties": {"a": {"maximum": 5, "exclusiveMaximum": True}}}, {"a": 5}, "a", "maximum"),
        ({"properties": {"a": {"exclusiveMinimum": 0}}}, {"a": 0}, "a", "exclusiveMinimum"),
        ({"properties": {"a": {"minLength": 2}}}, {"a": "x"}, "a", "minLength"),
        ({"properties": {"a": {"maxLength": 2}}}, {"a": "xyz"}, "a", "maxLength"),
        ({"properties": {"a": {"pattern": "^b"}}}, {"a": "abc"}, "a", "pattern"),
        ({"properties": {"a": {"items": {"type": "integer"}}}}, {"a": [1, "2"]}, "a.1", "type"),
        ({"properties": {"a": {"minItems": 2}}}, {"a": [1]}, "a", "minItems"),
        ({"properties": {"a": {"maxItems": 1}}}, {"a": [1, 2]}, "a", "maxItems"),
        ({"properties": {"a": {"uniqueItems": True}}}, {"a": [{"x": 1}, {"x": 1}]}, "a.1", "uniqueItems"),
        ({"properties": {"a": {"properties": {"b": {"required": ["c"]}}}}}, {"a": {"b": {}}}, "a.b.c", "required"),
        ({"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"c": 1}, "a", "anyOf"),
        ({"not": {"required": ["a"]}}, {"a": 1}, "", "not"),
        ({"properties": {"a": {"multipleOf": 3}}}, {"a": 7}, "a", "multipleOf"),
        ({"minProperties": 1}, {}, "", "minProperties"),
        ({"properties": {"a": {"const": 1}}}, {"a": 2}, "a", "const"),
    ],
)
def test_validator_names_path_and_rule(schema: dict[str, Any], doc: dict[str, Any], path: str, rule: str) -> None:
    """Each keyword rejects a document that breaks it, naming the path and the keyword."""
    broken = compile_schema(schema).first(doc)
    assert broken is not None
    assert (broken.path, broken.rule) == (path, rule)


@pytest.mark.parametrize(
    "schema, doc",
    [
        (USER, {"name": "Al", "age": 30, "tags": ["a", "b"], "email": "a@b"}),
        ({"properties": {"a": {"type": "integer"}}}, {"a": 2.0}),
        ({"properties": {"a": {"type": ["string", "null"]}}}, {"a": None}),
        ({"properties": {"a": {"enum": [1, "x"]}}}, {"a": 1.0}),
        ({"properties": {"a": {"uniqueItems": True}}}, {"a": [1, True, "1"]}),
        ({"properties": {"a": {"minimum": 5}}}, {"a": "not a number: minimum ignores it"}),
        ({"properties": {"a": {"bsonType": "decimal", "minimum": 1}}}, {"a": Decimal("1.5")}),
        ({"properties": {"a": {"bsonType": "uuid"}}}, {"a": uuid.uuid4()}),
        ({"properties": {"a": {"items": [{"type": "string"}, {"type": "integer"}]}}}, {"a": ["x", 1, None]}),
        ({"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, {"a": 1}),
        ({"description": "annotations never fail", "title": "T", "$comment": "c"}, {}),
    ],
)
def test_validator_accepts_valid_documents(schema: dict[str, Any], doc: dict[str, Any]) -> None:
    """Documents that keep every rule pass."""
    assert compile_schema(schema).first(doc) is None


@pytest.mark.parametrize(
    "schema, words",
    [
        ({"requried": ["a"]}, "unknown keyword 'requried'"),
        ({"type": "strnig"}, "unknown type 'strnig'"),
        ({"required": "a"}, "'required' needs a list"),
        ({"minimum": "3"}, "'minimum' needs a number"),
        ({"minLength": -1}, "'minLength' needs a non-negative integer"),
        ({"pattern": "("}, "bad pattern"),
        ({"properties": {"a": {"maxItems": "x"}}}, "schema.properties.a"),
        ({"type": "string", "bsonType": "string"}, "not both"),
        ([1], "a schema is an object"),
    ],
)
def test_malformed_schema_is_refused(schema: Any, words: str) -> None:
    """A malformed schema raises SchemaError saying what is wrong, where."""
    with pytest.raises(SchemaError) as info:
        compile_schema(schema)
    assert words in str(info.value)


# -- Python types as schemas ---------------------------------------------------------------------
@dataclass
class Address:
    city: str
    zip: str | None = None


@dataclass
class Person:
    name: str
    age: int
    address: Address
    tags: list[str] = field(default_factory=list)
    born: dt.datetime | None = None
    role: Literal["admin", "user"] = "user"


class Point(TypedDict, total=False):
    x: float
    y: float


class Named(TypedDict):
    name: str
    at: Point


class Item(pydantic.BaseModel):
    sku: str = pydantic.Field(min_length=3)
    qty: int = pydantic.Field(ge=0)
    price: float | None = None


def test_dataclass_becomes_a_closed_object_schema() -> None:
    """A dataclass: fields without defaults are required, nothing else is allowed, types nest."""
    schema, model = schema_of(Person)
    assert model is Person
    v = compile_schema(schema)
    good = {"name": "A", "age": 3, "address": {"city": "Oslo"}, "role": "admin"}
    assert v.first(good) is None
    assert v.first({**good, "extra": 1}).rule == "additionalProperties"  # type: ignore[union-attr]
    assert v.first({**good, "address": {}}).path == "address.city"  # type: ignore[union-attr]
    assert v.first({**good, "role": "root"}).rule == "enum"  # type: ignore[union-attr]
    assert v.first({**good, "born": "2024"}).rule == "bsonType"  # type: ignore[union-attr]
    assert v.first({**good, "age": True}).rule == "bsonType"  # type: ignore[union-attr]


def test_typeddict_requires_its_required_keys_and_allows_others() -> None:
    """A TypedDict: total=False keys are optional, extra keys are allowed."""
    schema, _ = schema_of(Named)
    v = compile_schema(schema)
    assert v.first({"name": "a", "at": {"x": 1}, "other": True}) is None
    assert v.first({"name": "a"}).path == "at"  # type: ignore[union-attr]
    assert v.first({"name": "a", "at": {"x": "1"}}).path == "at.x"  # type: ignore[union-attr]


def test_pydantic_model_and_its_constraints() -> None:
    """A pydantic model: its field constraints become schema keywords."""
    schema, model = schema_of(Item)
    assert model is Item
    v = compile_schema(schema)
    assert v.first({"sku": "abc", "qty": 0}) is None
    assert v.first({"sku": "ab", "qty": 0}).rule == "minLength"  # type: ignore[union-attr]
    assert v.first({"sku": "abc", "qty": -1}).rule == "minimum"  # type: ignore[union-attr]


def test_unsupported_annotation_is_refused() -> None:
    """An annotation with no schema raises SchemaError naming it."""

    @dataclass
    class Odd:
        handler: Callable[[], None]

    with pytest.raises(SchemaError, match="no schema for the annotation"):
        schema_of(Odd)
    with pytest.raises(SchemaError, match="a JSON Schema dict, a dataclass"):
        schema_of(42)


# -- every write is checked, on every backend ------------------------------------------------------
def test_insert_checked_and_nothing_written(db: MicroDB) -> None:
    """A bad insert raises ValidationError naming path and rule, and stores nothing."""
    users = db.table("users", schema=USER)
    users.insert({"name": "Al", "age": 30})
    with pytest.raises(ValidationError) as info:
        users.insert({"name": "Bo", "age": -1})
    assert (info.value.path, info.value.rule) == ("age", "minimum")
    assert isinstance(info.value, DocumentError)
    with pytest.raises(ValidationError, match="field 'tags.1'"):
        users.insert_many([{"name": "Cy", "age": 1}, {"name": "Di", "age": 2, "tags": ["a", 5]}])
    assert [d["name"] for d in users.all()] == ["Al"]


def test_updates_checked_all_or_nothing(db: MicroDB) -> None:
    """update, operators, update_multiple and upsert are checked; a failure changes nothing."""
    users = db.table("users", schema=USER)
    users.insert_many([{"name": "Al", "age": 30}, {"name": "Bo", "age": 150}])
    with pytest.raises(ValidationError) as info:
        users.update({"$inc": {"age": 1}}, {})
    assert info.value.rule == "maximum" and info.value.doc_id == 2
    with pytest.raises(ValidationError, match="rule 'required'"):
        users.update({"$unset": {"name": ""}}, where("name") == "Al")
    with pytest.raises(ValidationError):
        users.update({"age": "old"}, doc_ids=[1])
    with pytest.raises(ValidationError):
        users.update_multiple([({"age": 31}, where("name") == "Al"), ({"age": 200}, where("name") == "Bo")])
    with pytest.raises(ValidationError):
        users.upsert({"$set": {"age": 5}}, {"name": ""})
    with pytest.raises(ValidationError):
        users.upsert({"age": -5}, where("name") == "Al")
    assert sorted((d["name"], d["age"]) for d in users.all()) == [("Al", 30), ("Bo", 150)]
    users.upsert({"$set": {"age": 7}}, {"name": "Cy"})
    assert users.get(where("name") == "Cy")["age"] == 7


def test_transaction_rolls_back_on_validation_error(db: MicroDB) -> None:
    """A ValidationError inside a transaction rolls back the whole transaction."""
    users = db.table("users", schema=USER)
    with pytest.raises(ValidationError):
        with db.transaction():
            db.table("other").insert({"x": 1})
            users.insert({"name": "Al", "age": 30})
            users.insert({"name": "Al"})
    assert len(users) == 0 and len(db.table("other")) == 0


def test_schema_is_stored_with_the_table(opener: Callable[[], MicroDB]) -> None:
    """Reopened without schema=, the table still enforces it; set_schema(None) removes it."""
    db = opener()
    db.table("users", schema=USER)
    db.table("users").insert({"name": "Al", "age": 1})
    db.close()
    db = opener()
    users = db.table("users")
    assert users.schema() == USER
    with pytest.raises(ValidationError):
        users.insert({"name": "Bo"})
    users.truncate()
    assert users.schema() == USER
    users.create_index("name")
    assert users.schema() == USER
    users.set_schema(None)
    users.insert({"name": "Bo"})
    assert users.schema() is None
    db.close()


def test_warn_logs_and_writes(db: MicroDB, caplog: pytest.LogCaptureFixture) -> None:
    """validation='warn' writes the document and logs what it breaks."""
    users = db.table("users", schema=USER, validation="warn")
    with caplog.at_level(logging.WARNING, logger="microdb.schema"):
        users.insert({"name": "Al"})
    assert len(users) == 1
    assert "field 'age' is required" in caplog.text


def test_validate_reports_existing_violations(db: MicroDB) -> None:
    """Documents stored before the schema are reported by validate(), not changed."""
    users = db.table("users")
    users.insert_many([{"name": "Al", "age": 3}, {"name": "Bo", "age": -3}, {"age": 1}])
    users.set_schema(USER)
    report = users.validate()
    assert [(r["doc_id"], r["path"], r["rule"]) for r in report] == [(2, "age", "minimum"), (3, "name", "required")]
    assert len(users) == 3


def test_models_back(db: MicroDB) -> None:
    """models=True returns instances of the model; Result.models() does it per query."""
    people = db.table("people", schema=Person, models=True)
    people.insert({"name": "A", "age": 3, "address": {"city": "Oslo"}, "born": dt.datetime(2000, 1, 1)})
    got = people.all()
    assert got == [Person("A", 3, Address("Oslo"), born=dt.datetime(2000, 1, 1))]
    assert people.get(where("name") == "A") == got[0]
    plain = db.table("items", schema=Item)
    plain.insert({"sku": "abc", "qty": 2})
    assert plain.query().models() == [Item(sku="abc", qty=2)]
    assert plain.all()[0] == {"sku": "abc", "qty": 2}
    db.table("raw").insert({"sku": "abcd", "qty": 1})
    assert db.table("raw").query().models(Item) == [Item(sku="abcd", qty=1)]


def test_bad_options_refused(db: MicroDB) -> None:
    """A bad validation level or models=True without a model class is refused up front."""
    with pytest.raises(SchemaError, match="'error' or 'warn'"):
        db.table("users", schema=USER, validation="strict")
    with pytest.raises(SchemaError, match="models=True needs a model class"):
        db.table("users", schema=USER, models=True)
    assert db.table("users").schema() is None


def test_tinydb_layer_writes_are_checked(tmp_path: Path) -> None:
    """The TinyDB layer's writes go through the same check."""
    from microdb.tinydb import TinyDB

    with MicroDB(str(tmp_path / "db.json")) as db:
        db.table("users", schema=USER)
    tdb = TinyDB(str(tmp_path / "db.json"))
    users = tdb.table("users")
    with pytest.raises(ValidationError):
        users.insert({"name": "x"})
    users.insert({"name": "x", "age": 2})
    with pytest.raises(ValidationError):
        users.update({"age": -1}, {})
    assert users.all() == [{"name": "x", "age": 2}]
    tdb.close()


def test_other_process_enforces_the_schema(tmp_path: Path) -> None:
    """A schema set in one process is enforced by another process on the same file."""
    path = tmp_path / "db.json"
    db = MicroDB(str(path))
    db.table("users", schema=USER)
    code = (
        "import sys; from microdb import MicroDB, ValidationError\n"
        f"db = MicroDB({str(path)!r})\n"
        "try:\n    db.table('users').insert({'name': 'x'})\nexcept ValidationError as e:\n    print(e.rule, e.path)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["required", "age"]
    db.close()


def test_copy_to_keeps_schema_and_ttl(tmp_path: Path) -> None:
    """copy_to carries the schema and the TTL rule to another backend, where they apply."""
    source = MicroDB()
    users = source.table("users", schema=USER)
    users.insert({"name": "Al", "age": 1})
    users.create_index("seen", expire_after=60)
    target = MicroDB(f"sqlite:///{tmp_path / 'copy.db'}")
    source.copy_to(target)
    copied = target.table("users")
    assert copied.schema() == USER
    assert copied.indexes()[0]["expire_after"] == dt.timedelta(seconds=60)
    with pytest.raises(ValidationError):
        copied.insert({"name": "Bo"})
    target.close()
