"""The document type handed out by MicroDB: a ``dict`` that knows its id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Document"]


class Document(dict[str, Any]):
    """A document: a plain ``dict`` of its fields, plus ``doc_id``, its id in its table.

    A ``Document`` is always a copy: changing it never changes what is stored. Pass it back
    to ``insert`` to store it under the same id (in another table, say).
    """

    __slots__ = ("doc_id",)

    def __init__(self, value: Mapping[str, Any] | None = None, doc_id: int | None = None):
        super().__init__(value or {})
        self.doc_id = doc_id

    def __reduce__(self) -> tuple[Any, ...]:
        return (Document, (dict(self), self.doc_id))
