"""Reading documents from files and stdin: JSON (object, array, pretty), NDJSON, CSV/TSV, TinyDB.

Every document comes with where it was found (``file:line:column``), so that an error names
the place. Rich values are read in tagged form (``{"$date": "2024-05-01"}``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from microdb import MicroDBError, decode

from .common import CLIError

FORMATS = ("auto", "json", "nl", "csv", "tsv", "tinydb")
TYPES = ("str", "int", "float", "bool", "json")
_WS = " \t\r\n"


@dataclass
class Source:
    """One input: its name for messages, its text, and its size in bytes (for progress)."""

    name: str
    text: str
    size: int

    @property
    def tagged(self) -> bool:
        """Whether the text may hold tagged values (see :func:`may_hold_tags`)."""
        found = self.__dict__.get("_tagged")
        if found is None:
            found = self.__dict__["_tagged"] = may_hold_tags(self.text)
        return bool(found)


def may_hold_tags(text: str) -> bool:
    """Whether JSON ``text`` may hold a tagged value (or an escaped ``$`` key): a tag's key
    starts with ``$``, written ``"$`` or, escaped, ``\\u0024``. Without either, the parsed
    values are already what they mean and need no decoding."""
    return '"$' in text or "\\u0024" in text


def read_source(path: str) -> Source:
    """Read a file (``-`` for stdin) as UTF-8 text."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
            name = "<stdin>"
        else:
            with open(path, "rb") as f:
                data = f.read()
            name = path
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CLIError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from exc
    return Source(name, text, len(data))


def where(source: Source, pos: int) -> str:
    """``file:line:column`` of character ``pos`` of ``source``."""
    line = source.text.count("\n", 0, pos) + 1
    column = pos - (source.text.rfind("\n", 0, pos) + 1) + 1
    return f"{source.name}:{line}:{column}"


def detect_format(source: Source, hint: str) -> str:
    """The format to read: ``hint`` unless it is ``auto``; then by extension, then by content."""
    if hint != "auto":
        return hint
    lower = source.name.lower()
    for ext, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".tab", "tsv"), (".ndjson", "nl"), (".jsonl", "nl")):
        if lower.endswith(ext):
            return fmt
    start = source.text.lstrip(_WS)[:1]
    if start in ("{", "["):
        return "json"
    if not start:
        return "json"
    return "csv"


class Place:
    """Where a document starts; the line and column are counted only when an error needs them."""

    __slots__ = ("source", "pos", "line", "nth", "starts")

    def __init__(
        self, source: Source, pos: int = 0, line: int | None = None, nth: int | None = None,
        starts: Callable[[Source], Iterator[int]] | None = None,
    ):
        self.source, self.pos, self.line, self.nth, self.starts = source, pos, line, nth, starts

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.source.name}:{self.line}"
        if self.nth is not None and self.starts is not None:
            # Read fast in one piece: find the nth value's start only now that it is needed.
            for i, pos in enumerate(self.starts(self.source)):
                if i == self.nth:
                    return where(self.source, pos)
        return where(self.source, self.pos)


Located = tuple[Any, Place]  # a document and where it starts


def _reject(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_reject)


def _value_at(source: Source, pos: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(source.text, pos)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{where(source, exc.pos)}: not valid JSON: {exc.msg}") from exc
    except ValueError as exc:
        raise CLIError(f"{where(source, pos)}: {exc}") from exc
    except RecursionError as exc:
        raise CLIError(f"{where(source, pos)}: nested too deeply") from exc


def _skip(text: str, pos: int) -> int:
    n = len(text)
    while pos < n and text[pos] in _WS:
        pos += 1
    return pos


def _document(source: Source, value: Any, pos: int | Place) -> Located:
    place = pos if isinstance(pos, Place) else Place(source, pos)
    if not isinstance(value, dict):
        raise CLIError(f"{place}: expected a JSON object (a document), got {type(value).__name__}")
    if not source.tagged:
        return value, place
    try:
        return decode(value), place
    except MicroDBError as exc:
        raise CLIError(f"{place}: {exc}") from exc


def _fast_values(source: Source, lines: bool) -> tuple[list[Any], list[str] | None] | None:
    """Every value of the text parsed in one call of the C parser, with the line of each when
    there is one value per line; ``None`` when that is not possible (an error, or values
    spread over lines): the slow path then finds the place."""
    text = source.text
    try:
        if lines or text.lstrip(_WS)[:1] == "{":
            rows = [line for line in text.split("\n") if line.strip(_WS)]
            values = _DECODER.decode("[" + ",".join(rows) + "]")
            if isinstance(values, list) and len(values) == len(rows):
                return values, rows
            if lines:
                return None
        value = _DECODER.decode(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, list):
        return value, None
    return ([value], None) if isinstance(value, dict) else None


def _fast_documents(
    source: Source, lines: bool, starts: Callable[[Source], Iterator[int]]
) -> tuple[list[dict[str, Any]], Callable[[int], Place]] | None:
    """The documents of JSON text read in one piece (see :func:`document_list`), or ``None``
    when the slow path must read it value by value."""
    found = _fast_values(source, lines)
    if found is None:
        return None
    values, rows = found

    def place(i: int) -> Place:
        return Place(source, nth=i, starts=starts)

    for i, value in enumerate(values):
        if type(value) is not dict:
            _document(source, value, place(i))  # raises, naming the place
    if source.tagged:
        # Decode only the documents whose own text may hold a tag (all of them without lines).
        for i, value in enumerate(values):
            if rows is None:
                values[i] = _document(source, value, place(i))[0]
            elif may_hold_tags(rows[i]):
                # The i-th value is the i-th line's only when every line holds one whole value;
                # text that is not NDJSON (a value over two lines, two values on one) could
                # pair a tag's line with another value: read such text value by value.
                try:
                    alone = _DECODER.decode(rows[i])
                except (ValueError, RecursionError):
                    return None
                if alone != value:
                    return None
                values[i] = _document(source, value, place(i))[0]
    return values, place


def document_list(
    source: Source, fmt: str, *, detect: bool = True, types: dict[str, str] | None = None,
    tinydb_table: str | None = None,
) -> tuple[list[dict[str, Any]], Callable[[int], Place]]:
    """Every document of ``source`` as a list, and the place of the i-th one.

    JSON and NDJSON text is read in one piece, with no per-document work beyond decoding
    tags where the text may hold some; a place is found only when an error asks for it.
    """
    fmt = detect_format(source, fmt)
    fast = None
    if fmt == "nl" and not types:
        fast = _fast_documents(source, True, _nl_starts)
    elif fmt == "json" and not types and not _looks_tinydb(source):
        fast = _fast_documents(source, False, _json_starts)
    if fast is not None:
        return fast
    docs, places = [], []
    for doc, where_ in documents(source, fmt, detect=detect, types=types, tinydb_table=tinydb_table):
        docs.append(doc)
        places.append(where_)
    return docs, places.__getitem__


def _checked(source: Source, values: list[Any], starts: Callable[[Source], Iterator[int]]) -> Iterator[Located]:
    for i, value in enumerate(values):
        yield _document(source, value, Place(source, nth=i, starts=starts))


def _json_starts(source: Source) -> Iterator[int]:
    for _, pos in _json_values(source):
        yield pos


def _nl_starts(source: Source) -> Iterator[int]:
    for _, pos in _nl_values(source):
        yield pos


_Values = Callable[[Source, "Callable[[int], None] | None"], Iterator[tuple[Any, int]]]


def _documents(source: Source, lines: bool, starts: Callable[[Source], Iterator[int]], values: _Values,
               progress: Callable[[int], None] | None) -> Iterator[Located]:
    """The documents of JSON text, parsed in one piece when it can be (``starts`` finds a
    document's place), else value by value (``values``)."""
    found = _fast_values(source, lines=lines)
    if found is not None:
        yield from _checked(source, found[0], starts)
        if progress is not None:
            progress(len(source.text))
        return
    for value, pos in values(source, progress):
        yield _document(source, value, pos)


def json_documents(source: Source, progress: Callable[[int], None] | None = None) -> Iterator[Located]:
    """The documents of JSON text: one object, an array of objects, or a stream of objects
    (NDJSON, or pretty-printed objects one after another)."""
    return _documents(source, False, _json_starts, _json_values, progress)


def _json_values(source: Source, progress: Callable[[int], None] | None = None) -> Iterator[tuple[Any, int]]:
    text = source.text
    pos = _skip(text, 0)
    if pos < len(text) and text[pos] == "[":
        pos = _skip(text, pos + 1)
        if pos < len(text) and text[pos] == "]":
            return
        while True:
            value, end = _value_at(source, pos)
            yield value, pos
            if progress is not None:
                progress(end)
            pos = _skip(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip(text, pos + 1)
                continue
            if pos < len(text) and text[pos] == "]":
                pos = _skip(text, pos + 1)
                break
            raise CLIError(f"{where(source, pos)}: not valid JSON: expected ',' or ']' in the array")
        if pos < len(text):
            raise CLIError(f"{where(source, pos)}: not valid JSON: text after the array")
        return
    while pos < len(text):
        value, end = _value_at(source, pos)
        yield value, pos
        if progress is not None:
            progress(end)
        pos = _skip(text, end)


def nl_documents(source: Source, progress: Callable[[int], None] | None = None) -> Iterator[Located]:
    """The documents of NDJSON text: one JSON object per line, blank lines skipped."""
    return _documents(source, True, _nl_starts, _nl_values, progress)


def _nl_values(source: Source, progress: Callable[[int], None] | None = None) -> Iterator[tuple[Any, int]]:
    text = source.text
    pos = 0
    while True:
        start = _skip(text, pos)
        if start >= len(text):
            break
        value, end = _value_at(source, start)
        # Lines end at "\n" only (a JSON string may hold U+2028, which str.splitlines()
        # would split at); what follows a value on its line must be blank.
        eol = text.find("\n", end)
        eol = len(text) if eol < 0 else eol
        rest = end
        while rest < eol and text[rest] in " \t\r":
            rest += 1
        if rest < eol:
            raise CLIError(f"{where(source, rest)}: not valid JSON: a second value on the same line")
        yield value, start
        pos = eol
        if progress is not None:
            progress(pos)


def is_tinydb(value: Any) -> bool:
    """Whether a parsed JSON value looks like a TinyDB file: ``{table: {"1": {...}}}``."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(t, dict) and all(isinstance(k, str) and k.isdigit() and isinstance(d, dict) for k, d in t.items())
            for t in value.values()
        )
    )


def tinydb_tables(source: Source) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """The tables of a TinyDB file, each as ``(id, document)`` pairs in id order."""
    value, end = _value_at(source, _skip(source.text, 0))
    if _skip(source.text, end) < len(source.text):
        raise CLIError(f"{where(source, end)}: not valid JSON: text after the database")
    if not is_tinydb(value):
        raise CLIError(f"{source.name}: not a TinyDB file (expected {{\"table\": {{\"1\": {{...}}}}}})")
    tables: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for name, docs in value.items():
        try:
            tables[name] = sorted((int(k), decode(d)) for k, d in docs.items())
        except MicroDBError as exc:
            raise CLIError(f"{source.name}: table {name!r}: {exc}") from exc
    return tables


# --- CSV and TSV -------------------------------------------------------------------------

def _to_int(text: str) -> int:
    if text.strip() != text or text.startswith("+") or (len(text.lstrip("-")) > 1 and text.lstrip("-").startswith("0")):
        raise ValueError(text)
    return int(text)


def _to_float(text: str) -> float:
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
        raise ValueError(text)  # a code such as a zip code "01234" stays a string
    value = float(text)
    if not math.isfinite(value) or text.strip() != text or text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise ValueError(text)
    return value


def _to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError(text)


def _to_json(text: str) -> Any:
    return decode(json.loads(text, parse_constant=_reject))


CONVERTERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "json": _to_json,
}


def _detect(values: list[str]) -> str:
    """The narrowest type every non-empty value of a column converts to."""
    present = [v for v in values if v != ""]
    if not present:
        return "str"
    for name in ("int", "float", "bool"):
        try:
            for v in present:
                CONVERTERS[name](v)
        except (ValueError, OverflowError):
            continue
        return name
    if all(v[:1] in ("{", "[") for v in present):
        try:
            for v in present:
                _to_json(v)
        except (ValueError, MicroDBError, RecursionError):
            return "str"
        return "json"
    return "str"


_TSV_ESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


def _tsv_unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _TSV_ESCAPES:
            out.append(_TSV_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_types(specs: list[str] | None) -> dict[str, str]:
    """``["age=int", "tags=json"]`` -> ``{"age": "int", "tags": "json"}``."""
    out: dict[str, str] = {}
    for spec in specs or []:
        name, sep, kind = spec.rpartition("=")
        if not sep or not name or kind not in TYPES:
            raise CLIError(f"--type needs FIELD=TYPE with TYPE one of {', '.join(TYPES)}, got {spec!r}")
        out[name] = kind
    return out


def csv_documents(
    source: Source, delimiter: str, *, detect: bool, types: dict[str, str],
    progress: Callable[[int], None] | None = None,
) -> Iterator[Located]:
    """The rows of CSV (or TSV) text as documents: the first line names the fields."""
    if delimiter == "\t":
        reader = csv.reader(io.StringIO(source.text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(source.text, newline=""), delimiter=delimiter)
    rows: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, None)
        if header is None:
            return
        if delimiter == "\t":
            header = [_tsv_unescape(v) for v in header]
        for row in reader:
            if row:
                rows.append((reader.line_num, [_tsv_unescape(v) for v in row] if delimiter == "\t" else row))
    except csv.Error as exc:
        raise CLIError(f"{source.name}:{reader.line_num}: not valid CSV: {exc}") from exc
    unknown = sorted(set(types) - set(header))
    if unknown:
        raise CLIError(f"--type names {unknown[0]!r}, which is not a column of {source.name}")
    if len(set(header)) != len(header):
        raise CLIError(f"{source.name}:1: a column name appears twice")
    kinds = []
    for i, name in enumerate(header):
        if name in types:
            kinds.append(types[name])
        elif detect:
            kinds.append(_detect([row[i] if i < len(row) else "" for _, row in rows]))
        else:
            kinds.append("str")
    total = len(rows)
    for n, (line, row) in enumerate(rows, 1):
        if len(row) > len(header):
            raise CLIError(f"{source.name}:{line}: {len(row)} values for {len(header)} columns")
        doc: dict[str, Any] = {}
        for i, name in enumerate(header):
            text = row[i] if i < len(row) else ""
            kind = kinds[i]
            if text == "" and kind != "str":
                doc[name] = None
                continue
            try:
                doc[name] = CONVERTERS[kind](text)
            except (ValueError, OverflowError, MicroDBError) as exc:
                raise CLIError(f"{source.name}:{line}: column {name!r}: {text[:40]!r} is not {kind}") from exc
        yield doc, Place(source, line=line)
        if progress is not None:
            progress(source.size * n // total)


def documents(
    source: Source, fmt: str, *, detect: bool = True, types: dict[str, str] | None = None,
    tinydb_table: str | None = None, progress: Callable[[int], None] | None = None,
) -> Iterator[Located]:
    """The documents of ``source`` in format ``fmt`` (``auto`` detects it)."""
    fmt = detect_format(source, fmt)
    if fmt in ("csv", "tsv"):
        yield from csv_documents(
            source, "," if fmt == "csv" else "\t", detect=detect, types=types or {}, progress=progress
        )
        return
    if types:
        raise CLIError("--type applies to CSV and TSV input only")
    if fmt == "nl":
        yield from nl_documents(source, progress)
        return
    if fmt == "tinydb" or (fmt == "json" and _looks_tinydb(source)):
        tables = tinydb_tables(source)
        name = tinydb_table or ("_default" if "_default" in tables or len(tables) != 1 else next(iter(tables)))
        if name not in tables:
            raise CLIError(f"{source.name}: no table {name!r} in this TinyDB file (tables: {', '.join(sorted(tables))})")
        whole = Place(source, line=1)
        for _, doc in tables[name]:
            yield doc, whole
        if progress is not None:
            progress(source.size)
        return
    yield from json_documents(source, progress)


def _looks_tinydb(source: Source) -> bool:
    text = source.text.lstrip(_WS)
    if not text.startswith("{"):
        return False
    try:
        value, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return False
    return _skip(text, end) == len(text) and is_tinydb(value)
