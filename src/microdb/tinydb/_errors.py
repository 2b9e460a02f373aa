"""The exceptions TinyDB raises for misuse, as members of MicroDB's error tree.

TinyDB reports misuse with plain built-in exceptions (``ValueError``, ``RuntimeError``,
``KeyError``...). A program written for TinyDB catches those; a program written for
MicroDB catches :class:`~microdb.errors.MicroDBError`. Each class here is both, so the
same ``except`` clauses keep working whichever way the program was written.
"""

from __future__ import annotations

from microdb.errors import DocumentError, QueryError, StorageError, UpdateError

__all__ = [
    "EmptyQueryError",
    "MissingArgumentError",
    "NotAMappingError",
    "StorageFileNotFound",
    "UpdateAttributeError",
    "UpdateKeyError",
    "UpdateTypeError",
]


class NotAMappingError(DocumentError, ValueError):
    """A document is not a mapping (TinyDB raises ``ValueError``)."""


class MissingArgumentError(QueryError, RuntimeError):
    """A call needs a query or ids and got neither (TinyDB raises ``RuntimeError``)."""


class EmptyQueryError(QueryError, RuntimeError):
    """A bare ``Query()`` with no field was used as a condition (TinyDB: ``RuntimeError``)."""


class UpdateKeyError(UpdateError, KeyError):
    """An update function read a field the document lacks (TinyDB lets ``KeyError`` through)."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; the message reads better.
        return str(self.args[0]) if self.args else "update failed"


class UpdateTypeError(UpdateError, TypeError):
    """An update function met a value of the wrong type (TinyDB lets ``TypeError`` through)."""


class UpdateAttributeError(UpdateError, AttributeError):
    """An update function used a missing attribute (TinyDB lets ``AttributeError`` through)."""


class StorageFileNotFound(StorageError, FileNotFoundError):
    """The database file, or its folder, does not exist (TinyDB: ``FileNotFoundError``)."""
