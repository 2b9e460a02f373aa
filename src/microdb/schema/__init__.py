"""Schemas for tables: a JSON Schema validator and the Python types that turn into one.

:mod:`microdb.schema.jsonschema` checks documents against the subset of JSON Schema that
MongoDB's ``$jsonSchema`` offers (plus a few MicroDB type names for the rich types);
:mod:`microdb.schema.models` turns a dataclass, a ``TypedDict`` or a pydantic model into
such a schema, and stored documents back into instances of the model.
"""

from __future__ import annotations

from microdb.schema.jsonschema import Validator, Violation, compile_schema
from microdb.schema.models import model_instance, schema_of

__all__ = ["Validator", "Violation", "compile_schema", "model_instance", "schema_of"]
