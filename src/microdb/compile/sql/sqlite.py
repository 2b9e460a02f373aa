"""SQLite's dialect: JSON1 functions on JSON text."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from decimal import Decimal

from microdb.compile.sql.dialect import Dialect
from microdb.compile.sql.fragments import DIGITS, INT64, UNADDRESSABLE, Frag, Term, join_frags
from microdb.query import ast


class SQLiteDialect(Dialect):
    """SQLite's JSON1 functions: ``json_type``/``json_extract`` on JSON text."""

    name = "sqlite"
    param = "?"
    true = "1"
    false = "0"
    id_order_indexed = "+id"
    type_names = {
        "null": ("null",),
        "number": ("integer", "real"),
        "string": ("text",),
        "bool": ("true", "false"),
        "array": ("array",),
        "object": ("object",),
    }

    def term(self, base: str, path: ast.Path, root: bool) -> Term | None:
        text = "$"
        literal = True
        dynamic: str | None = None  # set once the path is no longer a constant
        doubt: list[Frag] = []
        keys: list[str] | None = [] if root else None
        for step in path:
            if isinstance(step, ast.MapStep):
                return None
            if isinstance(step, bool):
                return None
            if isinstance(step, str):
                if step.startswith("$") or '"' in step or "\\" in step or UNADDRESSABLE.search(step):
                    return None
                if DIGITS.match(step):
                    # A digit step is a key of an object but a position in a list.
                    keys = None
                    current = dynamic if dynamic is not None else self.literal(text)
                    doubt.append(Frag(f"json_type({base}, {current} || '.\"$tuple\"') IS NOT NULL"))
                    dynamic = (
                        f"(CASE json_type({base}, {current}) WHEN 'array' THEN {current} || '[{int(step)}]' "
                        f"ELSE {current} || {self.literal(f'.{chr(34)}{step}{chr(34)}')} END)"
                    )
                    literal = False
                    continue
                piece = f'."{step}"'
                if keys is not None:
                    keys.append(step)
            else:
                keys = None
                current = dynamic if dynamic is not None else self.literal(text)
                doubt.append(Frag(f"json_type({base}, {current} || '.\"$tuple\"') IS NOT NULL"))
                piece = f"[{step}]" if step >= 0 else f"[#{step}]"
            if dynamic is not None:
                dynamic = f"({dynamic} || {self.literal(piece)})"
            else:
                text += piece
        path_sql = dynamic if dynamic is not None else self.literal(text)
        return Term(
            base=base, path=path_sql, json="", keys=tuple(keys) if keys is not None else None,
            literal=literal and root, doubt=join_frags("OR", doubt) if doubt else None,
        )

    def _with(self, t: Term, suffix: str) -> str:
        if t.path.startswith("'") and t.path.endswith("'") and t.literal:
            return t.path[:-1] + suffix.replace("'", "''") + "'"
        return f"({t.path} || {self.literal(suffix)})"

    def type_of(self, t: Term) -> str:
        return f"json_type({t.base}, {t.path})"

    def value_of(self, t: Term) -> str:
        """SQL giving the value (numbers and text as SQL values, containers as JSON text)."""
        return f"json_extract({t.base}, {t.path})"

    def tagged(self, t: Term, tag: str) -> Frag:
        # ``> ''`` rather than ``IS NOT NULL`` lets SQLite answer an OR with two indexes.
        return Frag(f"json_extract({t.base}, {self._with(t, f'.{chr(34)}{tag}{chr(34)}')}) > ''")

    def number_cmp(self, t: Term, op: str, operand: int | float | Decimal) -> Frag | None:
        if isinstance(operand, int) and not -INT64 <= operand <= INT64:
            return None
        return Frag(
            f"({self.value_of(t)} {ast.COMPARE_OPS[op].replace('==', '=')} ? AND {self.kind_is(t, 'number').sql})",
            (operand,),
        )

    def string_cmp(self, t: Term, op: str, operand: str) -> Frag:
        return Frag(
            f"({self.value_of(t)} {ast.COMPARE_OPS[op].replace('==', '=')} ? AND {self.kind_is(t, 'string').sql})",
            (operand,),
        )

    def bool_cmp(self, t: Term, op: str, operand: bool) -> Frag:
        if op == "eq":
            return Frag(f"{self.type_of(t)} = {self.literal('true' if operand else 'false')}")
        return Frag(
            f"({self.value_of(t)} {ast.COMPARE_OPS[op]} ? AND {self.kind_is(t, 'bool').sql})", (int(operand),)
        )

    def in_strings(self, t: Term, values: Sequence[str]) -> Frag:
        marks = ", ".join("?" for _ in values)
        return Frag(f"({self.value_of(t)} IN ({marks}) AND {self.kind_is(t, 'string').sql})", tuple(values))

    def regex(self, t: Term, node: ast.Regex) -> Frag | None:
        return Frag(
            f"({self.kind_is(t, 'string').sql} AND microdb_regexp(?, ?, ?, {self.value_of(t)}))",
            (node.pattern, node.flags, node.mode),
        )

    def array_length(self, t: Term) -> str:
        return f"json_array_length({t.base}, {t.path})"

    def elements(self, t: Term, alias: str) -> tuple[str, str]:
        # The element's own path (``fullkey``) addresses it inside the same document.
        return f"json_each({t.base}, {t.path}) AS {alias}", f"{alias}.fullkey"

    def element_term(self, base: str, elem_path: str, path: ast.Path) -> Term | None:
        """The value at ``path`` below an element whose JSON path is the SQL ``elem_path``."""
        inner = self.term(base, path, root=False)
        if inner is None:
            return None
        suffix = inner.path
        if inner.doubt is not None:
            return None  # a position step below an element: let Python decide
        # Re-root the relative path at the element: replace the leading '$'.
        if suffix.startswith("'$"):
            rel = "'" + suffix[2:]
            new_path = f"({elem_path} || {rel})" if rel != "''" else elem_path
        else:
            return None  # a dynamic relative path: keep it simple, let Python decide
        return Term(base=base, path=new_path, json="", keys=None, literal=False, doubt=inner.doubt)

    # ``->`` (SQLite 3.38) returns the JSON text of a part; json_extract would turn numbers
    # into SQL values and lose their exact form.
    reads_text = sqlite3.sqlite_version_info >= (3, 38, 0)

    def _key_path(self, keys: Sequence[str]) -> str:
        return self.literal("$" + "".join(f'."{k}"' for k in keys))

    def json_text(self, body: str, keys: Sequence[str]) -> str:
        return f"({body} -> {self._key_path(keys)})"

    def json_items(self, text: str, alias: str) -> tuple[str, str, str]:
        # The element's own text by its path: ``value`` would give numbers as SQL values.
        return f"json_each({text}) AS {alias}", f"{alias}.key", f"({text} -> {alias}.fullkey)"

    def rank(self, t: Term) -> str:
        typ = self.type_of(t)
        obj = self.object_rank(f"json_each({t.base}, {t.path})", "key")
        return (
            f"(CASE {typ} WHEN 'null' THEN 1 WHEN 'integer' THEN 2 WHEN 'real' THEN 2 WHEN 'text' THEN 3 "
            f"WHEN 'array' THEN 5 WHEN 'true' THEN 8 WHEN 'false' THEN 8 WHEN 'object' THEN {obj} ELSE 0 END)"
        )

    def sort_scalars(self, t: Term) -> list[str]:
        typ = self.type_of(t)
        dec = self._with(t, '."$decimal"')
        return [
            f"(CASE WHEN {typ} IN ('integer', 'real', 'text', 'true', 'false') THEN {self.value_of(t)} "
            f"WHEN {typ} = 'object' AND json_type({t.base}, {dec}) = 'text' "
            f"AND (SELECT count(*) FROM json_each({t.base}, {t.path})) = 1 "
            f"THEN CAST(json_extract({t.base}, {dec}) AS REAL) END)"
        ]



SQLITE = SQLiteDialect()
