"""The exceptions TinyDB raises for misuse, as members of MicroDB's error tree.

TinyDB reports misuse with plain built-in exceptions (``ValueError``, ``RuntimeError``,
``KeyError``...). A program written for TinyDB catches those; a program written for
MicroDB catches :class:`~microdb.errors.MicroDBError`. Each class here is both, and is
*only* the built-in TinyDB raises: a program whose ``except ValueError`` comes before its
``except TypeError`` still lands in the same clause as with TinyDB.
"""

from __future__ import annotations

from microdb.errors import MicroDBError, StorageError

__all__ = [
    "EmptyQueryError",
    "MissingArgumentError",
    "NotAMappingError",
    "StorageFileNotFound",
    "UpdateAttributeError",
    "UpdateKeyError",
    "UpdateTypeError",
]


class NotAMappingError(MicroDBError, ValueError):
    """A document is not a mapping (TinyDB raises ``ValueError``)."""


class MissingArgumentError(MicroDBError, RuntimeError):
    """A call needs a query or ids and got neither (TinyDB raises ``RuntimeError``)."""


class EmptyQueryError(MicroDBError, RuntimeError):
    """A bare ``Query()`` with no field was used as a condition (TinyDB: ``RuntimeError``)."""


class UpdateKeyError(MicroDBError, KeyError):
    """An update function read a field the document lacks; nothing was changed."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; the message reads better.
        return str(self.args[0]) if self.args else "update failed"


class UpdateTypeError(MicroDBError, TypeError):
    """An update function met a value of the wrong type; nothing was changed."""


class UpdateAttributeError(MicroDBError, AttributeError):
    """An update function used a missing attribute; nothing was changed."""


class StorageFileNotFound(StorageError, FileNotFoundError):
    """The database file, or its folder, does not exist (TinyDB: ``FileNotFoundError``)."""
