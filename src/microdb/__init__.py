"""MicroDB: an embedded document database for Python.

``MicroDB('mydb.json')`` opens a crash-safe JSON file; tables hold JSON documents; queries
read like Python (``where('age') < 30``), like the seed's fluent form
(``Query().exists('age').value('name', 'Alice')``) or like MongoDB (``{'age': {'$lt': 30}}``).
"""

from __future__ import annotations

from microdb.autosave import AutoSavingDict
from microdb.database import MicroDB
from microdb.document import Document
from microdb.errors import (
    ChangesExpiredError,
    CorruptDatabaseError,
    DatabaseClosedError,
    DocumentError,
    DocumentNotFound,
    DuplicateKeyError,
    FormatVersionError,
    LockTimeout,
    MicroDBError,
    QueryError,
    ReadOnlyError,
    SchemaError,
    StorageError,
    TransactionError,
    UnsupportedFeature,
    UpdateError,
    ValidationError,
)
from microdb.feed import Change
from microdb.query.builders import Query, where
from microdb.query.untrusted import FilterLimits, untrusted_filter
from microdb.results import Result
from microdb.serialization import register_type
from microdb.storage.jsonfile import FileCheck, check_file
from microdb.table import Table
from microdb.tagged import decode, dumps, encode, loads

__version__ = "0.1.0"

__all__ = [
    "AutoSavingDict",
    "Change",
    "ChangesExpiredError",
    "CorruptDatabaseError",
    "DatabaseClosedError",
    "Document",
    "DocumentError",
    "DocumentNotFound",
    "DuplicateKeyError",
    "FileCheck",
    "FilterLimits",
    "FormatVersionError",
    "LockTimeout",
    "MicroDB",
    "MicroDBError",
    "Query",
    "QueryError",
    "ReadOnlyError",
    "Result",
    "SchemaError",
    "StorageError",
    "Table",
    "TransactionError",
    "UnsupportedFeature",
    "UpdateError",
    "ValidationError",
    "__version__",
    "check_file",
    "decode",
    "dumps",
    "encode",
    "loads",
    "register_type",
    "untrusted_filter",
    "where",
]
