"""A table's stored schema and the check every write makes against it.

What is stored with the table (its *options*, see
:meth:`~microdb.backend.Backend.table_options`) is a JSON object::

    {"schema": <the JSON Schema, tagged JSON>, "validation": "error" | "warn"}

Storing the schema, never a Python class, is what lets every process and every backend
enforce it. The table reads its options inside each write block (a dict lookup in
memory, part of the registry row it reads anyway on SQL) and checks the documents about
to be written; on failure it raises before anything is written, so the block rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from microdb.errors import SchemaError, ValidationError
from microdb.schema.jsonschema import Validator, compile_schema
from microdb.schema.models import schema_of
from microdb.serialization import decode, encode

__all__ = ["VALIDATION_LEVELS", "check_documents", "make_options", "stored_schema", "violations"]

#: ``error``: refuse the write; ``warn``: log it (logger ``microdb.schema``) and write.
VALIDATION_LEVELS = ("error", "warn")

log = logging.getLogger("microdb.schema")


def make_options(spec: Any, validation: str) -> tuple[dict[str, Any], type | None]:
    """The options to store for ``schema=spec`` and the model class, if ``spec`` is one.

    The schema is compiled first, so a malformed one raises ``SchemaError`` and is never
    stored.
    """
    if validation not in VALIDATION_LEVELS:
        raise SchemaError(f"validation must be 'error' or 'warn', got {validation!r}")
    schema, model = schema_of(spec)
    compile_schema(schema)
    return {"schema": encode(schema), "validation": validation}, model


#: id(options) -> (options, validator, level). The options dict is kept alive by the entry,
#: so its id cannot be reused while the entry exists; backends hand back the same dict for
#: as long as the stored options stay the same.
_compiled: dict[int, tuple[dict[str, Any], Validator, str]] = {}


def _validator(options: dict[str, Any]) -> tuple[Validator, str] | None:
    hit = _compiled.get(id(options))
    if hit is not None and hit[0] is options:
        return hit[1], hit[2]
    raw = options.get("schema")
    if raw is None:
        return None
    validator = compile_schema(decode(raw))
    level = options.get("validation", "error")
    if len(_compiled) > 256:
        _compiled.clear()
    _compiled[id(options)] = (options, validator, level)
    return validator, level


def stored_schema(options: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema kept in a table's options, or ``None``."""
    raw = options.get("schema")
    return None if raw is None else decode(raw)


def check_documents(table: str, options: dict[str, Any], docs: Iterable[tuple[int | None, dict[str, Any]]]) -> None:
    """Raise ``ValidationError`` for the first document that breaks the table's schema.

    With ``validation='warn'`` each broken document is logged instead.
    """
    found = _validator(options)
    if found is None:
        return
    validator, level = found
    first = validator.first
    for doc_id, doc in docs:
        broken = first(doc)
        if broken is None:
            continue
        who = "the new document" if doc_id is None else f"document {doc_id}"
        message = f"table {table!r}: {who} breaks the schema: {broken.message} (rule {broken.rule!r})"
        if level == "warn":
            log.warning("%s; written anyway (validation='warn')", message)
            continue
        raise ValidationError(message, path=broken.path, rule=broken.rule, doc_id=doc_id)


def violations(options: dict[str, Any], docs: Iterable[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every stored document that breaks the schema, as ``{doc_id, path, rule, message}``."""
    found = _validator(options)
    if found is None:
        return []
    first = found[0].first
    out = []
    for doc_id, doc in docs:
        broken = first(doc)
        if broken is not None:
            out.append({"doc_id": doc_id, "path": broken.path, "rule": broken.rule, "message": broken.message})
    return out
