"""PostgreSQL's dialect: ``jsonb`` operators, GIN containment, and regexes it reads as Python does."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from microdb.compile.sql.dialect import Dialect
from microdb.compile.sql.fragments import DIGITS, UNADDRESSABLE, Frag, Term, join_frags
from microdb.query import ast
from microdb.serialization import dumps, encode


class PostgresDialect(Dialect):
    """PostgreSQL's ``jsonb`` operators, GIN containment and type-guarded expressions."""

    name = "postgresql"
    param = "%s"
    true = "TRUE"
    false = "FALSE"
    containment = True
    row_locks = True
    # PostgreSQL's parser grows its stack; only max_stack_depth (2 MB) bounds the nesting.
    nesting_budget = 600
    # jsonb keeps a float as the decimal of its shortest repr, which beyond 2**53 is not
    # the float's value: 4.611686018427388e+18 is read as ...388000, 2.0**62 is ...387904.
    exact_numbers = float(2**53)
    text_holds_nul = False
    type_names = {
        "null": ("null",),
        "number": ("number",),
        "string": ("string",),
        "bool": ("boolean",),
        "array": ("array",),
        "object": ("object",),
    }

    def literal(self, text: str) -> str:
        # psycopg reads % as a placeholder even inside literals.
        return "'" + text.replace("'", "''").replace("%", "%%") + "'"

    def term(self, base: str, path: ast.Path, root: bool) -> Term | None:
        expr = base
        doubt: list[Frag] = []
        keys: list[str] | None = [] if root else None
        for step in path:
            if isinstance(step, ast.MapStep) or isinstance(step, bool):
                return None
            if isinstance(step, str):
                if step.startswith("$") or UNADDRESSABLE.search(step):
                    return None
                if DIGITS.match(step):
                    keys = None
                    doubt.append(Frag(f"({expr} ? '$tuple')"))
                    # ``#>`` reads a digit step as a key of an object and a position in an
                    # array; a scalar would be read as a one-element array, hence the guard.
                    expr = (
                        f"(CASE WHEN jsonb_typeof({expr}) IN ('array', 'object') "
                        f"THEN {expr} #> {self.literal('{' + json.dumps(step) + '}')} END)"
                    )
                    continue
                if keys is not None:
                    keys.append(step)
                expr = f"({expr} -> {self.literal(step)})"
            else:
                keys = None
                doubt.append(Frag(f"({expr} ? '$tuple')"))
                expr = f"(CASE WHEN jsonb_typeof({expr}) = 'array' THEN {expr} -> {int(step)} END)"
        return Term(
            base=base, path="", json=expr, keys=tuple(keys) if keys is not None else None,
            literal=root, doubt=join_frags("OR", doubt) if doubt else None,
        )

    def type_of(self, t: Term) -> str:
        return f"jsonb_typeof({t.json})"

    def exists(self, t: Term) -> Frag:
        return Frag(f"({t.json} IS NOT NULL)")

    def number_expr(self, t: Term) -> str:
        """The type-guarded numeric value (the expression a range index is built on)."""
        return f"(CASE WHEN jsonb_typeof({t.json}) = 'number' THEN ({t.json})::numeric END)"

    def string_expr(self, t: Term) -> str:
        """The type-guarded text value, compared by code point (an index expression too)."""
        return f"(CASE WHEN jsonb_typeof({t.json}) = 'string' THEN ({t.json} #>> '{{}}') COLLATE \"C\" END)"

    def tagged(self, t: Term, tag: str) -> Frag:
        if t.keys is not None and t.literal and t.indexed:
            # ``@?`` with a constant path is answered by the GIN index on the document.
            jp = "$" + "".join("." + json.dumps(k) for k in t.keys) + "." + json.dumps(tag)
            return Frag(f"({t.base} @? {self.literal(jp)})")
        return Frag(f"({t.json} ? {self.literal(tag)})")

    def number_cmp(self, t: Term, op: str, operand: int | float | Decimal) -> Frag | None:
        # Floats travel as their shortest repr, exactly as they were written into the JSON.
        value = Decimal(repr(operand)) if isinstance(operand, float) else Decimal(operand)
        return Frag(f"({self.number_expr(t)} {ast.COMPARE_OPS[op].replace('==', '=')} %s::numeric)", (value,))

    def string_cmp(self, t: Term, op: str, operand: str) -> Frag:
        return Frag(f"({self.string_expr(t)} {ast.COMPARE_OPS[op].replace('==', '=')} %s)", (operand,))

    def in_strings(self, t: Term, values: Sequence[str]) -> Frag:
        marks = ", ".join("%s" for _ in values)
        return Frag(f"({self.string_expr(t)} IN ({marks}))", tuple(values))

    def bool_cmp(self, t: Term, op: str, operand: bool) -> Frag:
        guarded = f"(CASE WHEN jsonb_typeof({t.json}) = 'boolean' THEN ({t.json})::boolean END)"
        return Frag(f"({guarded} {ast.COMPARE_OPS[op].replace('==', '=')} %s)", (operand,))

    def contains(self, t: Term, value: Any) -> Frag | None:
        if t.keys is None or not t.keys or not t.literal or not t.indexed:
            return None
        doc: Any = encode(value)
        for key in reversed(t.keys):
            doc = {key: doc}
        return Frag(f"({t.base} @> %s::jsonb)", (dumps(doc),))

    def regex(self, t: Term, node: ast.Regex) -> Frag | None:
        translated = _posix_regex(node.pattern, node.flags)
        if translated is None:
            return None
        if node.mode == "match":
            translated = f"^(?:{translated})"
        elif node.mode == "fullmatch":
            translated = f"^(?:{translated})$"
        return Frag(f"(({t.json} #>> '{{}}') ~ %s AND jsonb_typeof({t.json}) = 'string')", (translated,))

    def array_length(self, t: Term) -> str:
        return f"jsonb_array_length({t.json})"

    def elements(self, t: Term, alias: str) -> tuple[str, str]:
        return f"jsonb_array_elements({t.json}) AS {alias}(v)", f"{alias}.v"

    def element_term(self, base: str, elem: str, path: ast.Path) -> Term | None:
        """The value at ``path`` below the element ``elem``."""
        return self.term(elem, path, root=False)

    def _json_at(self, body: str, keys: Sequence[str]) -> str:
        # ``json`` (not ``jsonb``) keeps the text as written: jsonb reads 1e16 as an integer.
        expr = f"({body}::json)"
        for key in keys:
            expr = f"({expr} -> {self.literal(key)})"
        return expr

    def json_text(self, body: str, keys: Sequence[str]) -> str:
        return f"({self._json_at(body, keys)})::text"

    def json_items(self, text: str, alias: str) -> tuple[str, str, str]:
        value = f"({text})::json"
        # json_array_elements raises on anything but an array, and the planner may call it
        # before the caller's filter has dropped the other rows.
        source = f"CASE WHEN json_typeof({value}) = 'array' THEN {value} ELSE '[]'::json END"
        return (f"json_array_elements({source}) WITH ORDINALITY AS {alias}(v, n)", f"{alias}.n",
                f"{alias}.v::text")

    def rank(self, t: Term) -> str:
        obj = self.object_rank(f"jsonb_object_keys({t.json}) AS k(k)", "k.k")
        return (
            f"(CASE jsonb_typeof({t.json}) WHEN 'null' THEN 1 WHEN 'number' THEN 2 WHEN 'string' THEN 3 "
            f"WHEN 'array' THEN 5 WHEN 'boolean' THEN 8 WHEN 'object' THEN {obj} ELSE 0 END)"
        )

    def sort_scalars(self, t: Term) -> list[str]:
        decimal = f"({t.json} ->> '$decimal')::numeric"
        dec = (
            f"WHEN jsonb_typeof({t.json}) = 'object' AND ({t.json} ? '$decimal') "
            f"AND (SELECT count(*) FROM jsonb_object_keys({t.json})) = 1 "
            f"AND jsonb_typeof({t.json} -> '$decimal') = 'string' THEN "
        )
        number = f"({t.json})::numeric"
        return [
            # First the nearest float, then the exact decimal: ties of large numbers are
            # re-sorted by Python, which compares an int with a float exactly (see
            # microdb.sql.rows); a stored float is read back as exactly itself.
            f"(CASE WHEN jsonb_typeof({t.json}) = 'number' THEN {_nearest_float(number)} "
            f"{dec}{_nearest_float(decimal)} END)",
            f"(CASE WHEN jsonb_typeof({t.json}) = 'number' THEN {number} {dec}{decimal} END)",
            self.string_expr(t),
            f"(CASE WHEN jsonb_typeof({t.json}) = 'boolean' THEN ({t.json})::boolean END)",
        ]



POSTGRES = PostgresDialect()


def _nearest_float(numeric: str) -> str:
    """SQL giving the float nearest a numeric (infinite past float8's range, not an error)."""
    return (f"(CASE WHEN abs({numeric}) < 1e308 THEN ({numeric})::float8 "
            f"ELSE sign({numeric})::float8 * 'Infinity'::float8 END)")


# PostgreSQL's regular expressions (ARE) and Python's agree on a common core only; anything
# outside it is narrowed to strings in SQL and matched by Python's ``re``.
_ARE_SPECIAL = set(".[]()*+?{}|^$\\")
#: The largest repetition count PostgreSQL's regex engine accepts (its DUPMAX).
_ARE_MAX_REPEAT = 255


def _posix_regex(pattern: str, flags: int) -> str | None:
    """``pattern`` as an ARE meaning exactly what Python means, or ``None``."""
    if flags & ~re.UNICODE:
        return None
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                return None
            nxt = pattern[i + 1]
            if nxt.isascii() and not nxt.isalnum() and nxt not in "\n ":
                out.append("\\" + nxt)
                i += 2
                continue
            return None
        if ch == ".":
            out.append("[^\n]")
        elif ch == "^":
            if i != 0:
                return None
            out.append("^")
        elif ch == "$":
            return None
        elif ch == "(":
            if pattern.startswith("(?", i):
                return None
            out.append("(")
        elif ch in ")|*+?":
            out.append(ch)
        elif ch == "{":
            m = re.match(r"\{(\d+)(,(\d*))?\}", pattern[i:])
            if m is None or (out and out[-1] in ("(", "|")) or not out:
                return None
            if max(int(m.group(1)), int(m.group(3) or 0)) > _ARE_MAX_REPEAT:
                return None  # PostgreSQL refuses the pattern; Python matches it
            out.append(m.group(0))
            i += len(m.group(0))
            continue
        elif ch == "}":
            return None
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[^", i) else i + 1)
            if end < 0:
                return None
            body = pattern[i + 1:end]
            if "\\" in body or "[" in body or not body or body == "^":
                return None
            out.append("[" + body + "]")
            i = end + 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)
