"""What differs between SQL engines: the :class:`Dialect` abstract base class.

A dialect is data (the placeholder, the literals for true and false, the engine's JSON
type names, which features it has) and the handful of builders whose SQL differs between
engines, declared abstract so a dialect that misses one cannot be created.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from microdb.compile.sql.fragments import TAG_RANKS, UNADDRESSABLE, Frag, Term
from microdb.query import ast
from microdb.query.values import KIND_RANK

# ---------------------------------------------------------------------------------------
# Dialects
# ---------------------------------------------------------------------------------------

class Dialect(ABC):
    """What differs between SQL engines, as data and a few small builders."""

    name: ClassVar[str] = "sql"
    #: The placeholder of one parameter.
    param: ClassVar[str] = "?"
    true: ClassVar[str] = "1"
    false: ClassVar[str] = "0"
    #: kind -> the names the engine's JSON type function returns for it.
    type_names: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Whether ``jsonb @>`` containment (and a GIN index) can answer equality.
    containment: ClassVar[bool] = False
    #: Whether SELECT ... FOR UPDATE locks rows.
    row_locks: ClassVar[bool] = False
    #: ORDER BY for id order when an index may answer the filter. SQLite otherwise walks
    #: the whole table in rowid order to avoid a sort; ``+id`` lets it pick the index.
    id_order_indexed: ClassVar[str] = "id"
    #: How deep compiled conditions may nest, in the units of ``compiler._NESTING_COST``;
    #: deeper parts of a query are left to Python.
    nesting_budget: ClassVar[int] = 60
    #: Numbers the engine compares with a stored int or float as Python does: operands
    #: of this size or more are compared near the operand by Python (``SQLCompiler.near``).
    exact_numbers: ClassVar[float] = float("inf")
    #: Whether a text parameter may hold NUL (queries whose operands do run in Python).
    text_holds_nul: ClassVar[bool] = True

    def literal(self, text: str) -> str:
        """A string literal (constant text, so expression indexes can match it)."""
        return "'" + text.replace("'", "''") + "'"

    @abstractmethod
    def term(self, base: str, path: ast.Path, root: bool) -> Term | None:
        """The value at ``path`` below ``base``, or ``None`` when SQL cannot address it."""

    @abstractmethod
    def type_of(self, t: Term) -> str:
        """SQL giving the JSON type name of the value, NULL when it is missing."""

    def kind_is(self, t: Term, *kinds: str) -> Frag:
        """The value is of one of these kinds (JSON types only; tags are separate)."""
        names = [n for k in kinds for n in self.type_names[k]]
        if len(names) == 1:
            return Frag(f"{self.type_of(t)} = {self.literal(names[0])}")
        return Frag(f"{self.type_of(t)} IN ({', '.join(self.literal(n) for n in names)})")

    def exists(self, t: Term) -> Frag:
        """The path leads to a value."""
        return Frag(f"{self.type_of(t)} IS NOT NULL")

    @abstractmethod
    def tagged(self, t: Term, tag: str) -> Frag:
        """The value may be a tagged rich value (an object with the key ``tag``)."""

    @abstractmethod
    def number_cmp(self, t: Term, op: str, operand: int | float | Decimal) -> Frag | None:
        """A JSON number compared with ``operand`` (``None``: SQL cannot do it exactly)."""

    @abstractmethod
    def string_cmp(self, t: Term, op: str, operand: str) -> Frag:
        """A JSON string compared with ``operand`` by code point."""

    @abstractmethod
    def in_strings(self, t: Term, values: Sequence[str]) -> Frag:
        """The value is a string among ``values``."""

    @abstractmethod
    def bool_cmp(self, t: Term, op: str, operand: bool) -> Frag:
        """A JSON boolean compared with ``operand`` (``False < True``)."""

    def contains(self, t: Term, value: Any) -> Frag | None:
        """Containment of ``{path: value}`` in the document, where the engine has it."""
        return None

    def regex(self, t: Term, node: ast.Regex) -> Frag | None:
        """The string value matches ``node`` exactly as Python would, or ``None``."""
        return None

    @abstractmethod
    def array_length(self, t: Term) -> str:
        """SQL giving the length of an array value."""

    @abstractmethod
    def elements(self, t: Term, alias: str) -> tuple[str, str]:
        """``(FROM clause, element base)`` iterating the elements of an array value."""

    def coalesce(self, frag: Frag) -> Frag:
        """``frag`` with NULL read as false (two-valued, for use under NOT)."""
        return Frag(f"COALESCE({frag.sql}, {self.false})", frag.params)

    # -- reading parts of documents (projection, distinct) ---------------------------------
    #: Whether the engine can return the exact JSON text of a part of a document.
    reads_text: ClassVar[bool] = True

    def addressable(self, key: Any) -> bool:
        """Whether SQL can read the object member ``key`` by name.

        Keys starting with ``$`` are refused: a document or object whose only key starts
        with ``$`` is stored wrapped (``{"$escape": ...}``), so SQL would look in the wrong place.
        """
        return (isinstance(key, str) and not key.startswith("$") and '"' not in key and "\\" not in key
                and UNADDRESSABLE.search(key) is None)

    @abstractmethod
    def json_text(self, body: str, keys: Sequence[str]) -> str:
        """SQL giving the exact JSON text at ``keys`` in the stored text ``body`` (NULL when missing).

        Exact text, not the engine's reading of it: ``1.0`` stays a float and ``1e16`` is
        not turned into an integer, so decoding it in Python gives the value stored.
        """

    @abstractmethod
    def json_items(self, text: str, alias: str) -> tuple[str, str, str]:
        """``(FROM item, position, JSON text)`` for each element of the JSON array ``text``.

        ``text`` is SQL giving JSON text; callers use it only on arrays.
        """

    # -- sorting -----------------------------------------------------------------------
    @abstractmethod
    def rank(self, t: Term) -> str:
        """SQL giving the kind rank of :mod:`microdb.query.values` (0 when missing)."""

    @abstractmethod
    def sort_scalars(self, t: Term) -> list[str]:
        """SQL expressions ordering values inside the simple ranks (numbers, strings, bools)."""

    def object_rank(self, keys_from: str, key: str) -> str:
        """A scalar subquery ranking an object by its single ``$`` tag (4 when untagged)."""
        whens = " ".join(f"WHEN min({key}) = {self.literal(tag)} THEN {rank}" for tag, rank in TAG_RANKS.items())
        return (
            f"(SELECT CASE WHEN count(*) <> 1 OR substr(min({key}), 1, 1) <> '$' THEN {KIND_RANK['object']} "
            f"{whens} ELSE {KIND_RANK['other']} END FROM {keys_from})"
        )
