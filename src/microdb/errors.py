"""Every exception MicroDB raises on purpose.

The tree, rooted at :class:`MicroDBError`::

    MicroDBError
    ├── DatabaseClosedError      (RuntimeError)  the database or table was closed
    ├── TransactionError         (RuntimeError)  misuse of ``db.transaction()``
    ├── DocumentError            (TypeError)     not a mapping, or a value JSON cannot hold
    │   └── ValidationError                      a document breaks its table's schema (path, rule)
    ├── DocumentNotFound         (KeyError)      no document with that id
    ├── DuplicateKeyError        (ValueError)    a unique index rejected a value
    ├── QueryError               (ValueError)    a malformed query or unknown operator
    ├── SchemaError              (ValueError)    a malformed schema (unknown keyword, bad operand)
    ├── UpdateError              (ValueError)    a malformed or impossible update
    ├── UnsupportedFeature       (NotImplementedError)  a backend cannot do this
    ├── ChangesExpiredError      (LookupError)   the change feed no longer holds that history
    └── StorageError             (OSError)       the storage failed; nothing was applied
        ├── CorruptDatabaseError                 a file cannot be parsed (file, offset)
        ├── FormatVersionError                   written by a newer MicroDB
        ├── LockTimeout          (TimeoutError)  the write lock was not had in time
        └── ReadOnlyError        (PermissionError) a write to a read-only database

Each leaf also subclasses the matching built-in exception, so code that catches
``ValueError`` or ``OSError`` keeps working. Errors raised by a driver (``sqlite3``,
``psycopg``) are wrapped, with the original kept as ``__cause__``.
"""

from __future__ import annotations

__all__ = [
    "ChangesExpiredError",
    "CorruptDatabaseError",
    "DatabaseClosedError",
    "DocumentError",
    "DocumentNotFound",
    "DuplicateKeyError",
    "FormatVersionError",
    "LockTimeout",
    "MicroDBError",
    "QueryError",
    "ReadOnlyError",
    "SchemaError",
    "StorageError",
    "TransactionError",
    "UnsupportedFeature",
    "UpdateError",
    "ValidationError",
]


class MicroDBError(Exception):
    """The root of every error MicroDB raises on purpose."""


class DatabaseClosedError(MicroDBError, RuntimeError):
    """The database (or a table of it) was used after ``close()``."""


class TransactionError(MicroDBError, RuntimeError):
    """A transaction was misused (for example, nested across databases)."""


class DocumentError(MicroDBError, TypeError):
    """A document is not a mapping or holds a value that cannot be stored."""


class ValidationError(DocumentError):
    """A document breaks its table's schema; nothing was written.

    ``path`` is where in the document (``"address.zip"``, ``"tags.2"``; ``""`` for the
    document itself), ``rule`` the schema keyword that failed (``"required"``, ``"type"``...).
    """

    def __init__(self, message: str, *, path: str = "", rule: str = "", doc_id: int | None = None):
        super().__init__(message)
        self.path = path
        self.rule = rule
        self.doc_id = doc_id


class DocumentNotFound(MicroDBError, KeyError):
    """No document has the given id."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; a sentence reads better.
        return str(self.args[0]) if self.args else "document not found"


class DuplicateKeyError(MicroDBError, ValueError):
    """A unique index already holds the value; nothing was changed."""


class QueryError(MicroDBError, ValueError):
    """A query is malformed, uses an unknown operator, or an operand of the wrong kind."""


class SchemaError(MicroDBError, ValueError):
    """A schema is malformed: an unknown keyword, or an operand of the wrong kind."""


class UpdateError(MicroDBError, ValueError):
    """An update is malformed or cannot apply to a document; nothing was changed."""


class UnsupportedFeature(MicroDBError, NotImplementedError):
    """The backend in use cannot offer this feature."""


class ChangesExpiredError(MicroDBError, LookupError):
    """A change feed cannot resume where asked: that history is no longer kept (or was lost).

    ``seq`` is the sequence number the reader asked to resume after (or the missing commit).
    """

    def __init__(self, message: str, *, seq: int | None = None):
        super().__init__(message)
        self.seq = seq

    def __str__(self) -> str:
        return str(self.args[0])


class StorageError(MicroDBError, OSError):
    """The storage failed; the operation was not applied, in memory or on disk."""


class CorruptDatabaseError(StorageError):
    """A database file cannot be parsed; it was left exactly as it was."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None):
        super().__init__(message)
        self.path = path
        self.offset = offset

    def __str__(self) -> str:
        return str(self.args[0])


class FormatVersionError(StorageError):
    """A file was written by a newer MicroDB and is refused rather than misread."""


class LockTimeout(StorageError, TimeoutError):
    """The database's write lock could not be acquired within the timeout."""


class ReadOnlyError(StorageError, PermissionError):
    """The database was opened read-only (or its file cannot be written)."""
