"""The commands that write and read documents: insert, upsert, update, remove, query, count..."""

from __future__ import annotations

import argparse
import bisect
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from microdb import Document, DocumentError, MicroDB, MicroDBError, Table, decode, encode

from . import inputs
from .common import CLIError, Progress, collector_paused, existing_table, open_db, parse_filter
from .outputs import document_rows, write_rows


def _say(args: argparse.Namespace, text: str) -> None:
    if not (args.quiet or args.silent):
        print(text)


def _sources(args: argparse.Namespace) -> list[inputs.Source]:
    """The inputs named on the command line: files, ``-`` (stdin, also when none is named)
    or inline JSON text (an argument starting with ``{`` or ``[``)."""
    out = []
    for item in args.files or ["-"]:
        if item[:1] in ("{", "[") and not _is_file(item):
            out.append(inputs.Source("<argument>", item, len(item.encode("utf-8"))))
        else:
            out.append(inputs.read_source(item))
    return out


def _is_file(path: str) -> bool:
    try:
        return os.path.exists(path)
    except (OSError, ValueError):
        return False


def _input_format(args: argparse.Namespace) -> str:
    for name in ("nl", "csv", "tsv", "tinydb"):
        if getattr(args, f"in_{name}", False):
            return name
    return str(args.format)


def _located(
    args: argparse.Namespace, sources: list[inputs.Source], progress: Progress
) -> Iterator[tuple[dict[str, Any], inputs.Place]]:
    """Every input document with its place, updating ``progress`` as bytes are read."""
    done_before = 0
    count = [0]
    types = inputs.parse_types(args.type)
    fmt = _input_format(args)
    for source in sources:
        def advance(pos: int, base: int = done_before) -> None:
            progress.update(base + pos, count[0])

        for doc, place in inputs.documents(
            source, fmt, detect=not args.no_detect_types, types=types, tinydb_table=args.tinydb_table,
            progress=advance,
        ):
            count[0] += 1
            yield doc, place
        done_before += source.size
        progress.update(done_before, count[0])


class Batch:
    """Documents to write in one commit, and the place of each (found when an error asks)."""

    def __init__(self, docs: list[dict[str, Any]], place: Callable[[int], Any], before: int = 0):
        self.docs, self.place, self.before = docs, place, before


def _everything(args: argparse.Namespace, sources: list[inputs.Source], progress: Progress) -> Batch:
    """Every input document as one batch: read whole, with no per-document work where the
    format allows (see :func:`inputs.document_list`)."""
    types = inputs.parse_types(args.type)
    fmt = _input_format(args)
    docs: list[dict[str, Any]] = []
    firsts: list[int] = []  # the index of each source's first document...
    places: list[Callable[[int], Any]] = []  # ...and the place of a source's i-th document
    done = 0
    for source in sources:
        found, place = inputs.document_list(
            source, fmt, detect=not args.no_detect_types, types=types, tinydb_table=args.tinydb_table,
        )
        firsts.append(len(docs))
        places.append(place)
        if docs:
            docs.extend(found)
        else:
            docs = found  # one input (the usual case): its list, not a copy
        done += source.size
        progress.update(done, len(docs))

    def place_of(i: int) -> Any:
        n = bisect.bisect_right(firsts, i) - 1
        return places[n](i - firsts[n])

    return Batch(docs, place_of)


def _locate_bad(batch: Batch, exc: MicroDBError) -> CLIError:
    """The first document of ``batch`` that cannot be stored, named by its place."""
    for i, doc in enumerate(batch.docs):
        try:
            encode(doc)
        except DocumentError as bad:
            return CLIError(f"{batch.place(i)}: {bad}")
    return CLIError(f"{batch.place(0) if batch.docs else 'input'}: {exc}")


def _load(args: argparse.Namespace, write: Callable[[Table, Batch], None]) -> int:
    """Read every input and hand documents to ``write(table, batch)``: in one transaction, or
    in transactions of ``--batch-size`` documents. Returns how many were written."""
    sources = _sources(args)
    # A bar over the bytes of files; a running count for stdin, whose size is not known ahead.
    total = None if any(s.name == "<stdin>" for s in sources) else sum(s.size for s in sources)
    progress = Progress(f"{args.command} {args.table}", total, enabled=not (args.silent or args.no_progress))
    batch_size = args.batch_size or 0
    skip = args.skip
    if skip < 0:
        raise CLIError(f"--skip needs a number of documents >= 0, got {skip}")
    with collector_paused(), open_db(args.db, write=True, one_commit=batch_size <= 0) as db:
        table = db.table(args.table)
        written = 0
        if batch_size <= 0:
            batch = _everything(args, sources, progress)
            if skip:
                place = batch.place
                batch = Batch(batch.docs[skip:], lambda i: place(i + skip))
            _commit(db, table, batch, write, skip)
            written = len(batch.docs)
        else:
            docs: list[dict[str, Any]] = []
            places: list[inputs.Place] = []
            located = _located(args, sources, progress)
            while True:
                try:
                    item = next(located, None)
                except CLIError as exc:  # bad input after some batches were stored: say how many
                    raise CLIError(f"{exc}{_stored(written, skip)}") from exc
                if item is None:
                    break
                if skip:
                    skip -= 1
                    continue
                docs.append(item[0])
                places.append(item[1])
                if len(docs) >= batch_size:
                    _commit(db, table, Batch(docs, places.__getitem__, written), write, args.skip)
                    written += len(docs)
                    docs, places = [], []
            if docs:
                _commit(db, table, Batch(docs, places.__getitem__, written), write, args.skip)
                written += len(docs)
        progress.finish()
    return written


def _stored(before: int, skipped: int) -> str:
    """What an error adds when earlier batches were stored: how many, and how to resume."""
    if not before:
        return ""
    return f" ({before} documents of earlier batches were stored; --skip {skipped + before} resumes after them)"


def _commit(
    db: MicroDB, table: Table, batch: Batch, write: Callable[[Table, Batch], None], skipped: int = 0
) -> None:
    before = batch.before
    try:
        with db.transaction():
            write(table, batch)
    except DocumentError as exc:
        raise CLIError(f"{_locate_bad(batch, exc)}{_stored(before, skipped)}") from exc
    except MicroDBError as exc:
        raise CLIError(f"{exc}{_stored(before, skipped) or ' (nothing was stored)'}") from exc


def cmd_insert(args: argparse.Namespace) -> int:
    """Insert documents from files or stdin (JSON, NDJSON, CSV, TSV, TinyDB)."""
    ids: list[int] = []

    def write(table: Table, batch: Batch) -> None:
        # The documents were parsed for this load alone: handed over, not copied.
        ids.extend(table.insert_many(batch.docs, copy=False))

    n = _load(args, write)
    if args.ids:
        if not (args.quiet or args.silent):
            sys.stdout.write("".join(f"{i}\n" for i in ids))
    else:
        span = f" (ids {ids[0]}-{ids[-1]})" if ids else ""
        _say(args, f"inserted {n} document{'s' * (n != 1)} into {args.table}{span}")
    return 0


def cmd_upsert(args: argparse.Namespace) -> int:
    """Insert documents, or update those whose --pk fields match, from files or stdin."""
    keys = [k for k in args.pk.split(",") if k]
    if not keys:
        raise CLIError("--pk needs at least one field name")
    counts = {"inserted": 0, "updated": 0}

    def write(table: Table, batch: Batch) -> None:
        for i, doc in enumerate(batch.docs):
            missing = [k for k in keys if _get(doc, k) is _MISSING]
            if missing:
                raise CLIError(f"{batch.place(i)}: the document has no {missing[0]!r} field (the --pk)")
            cond = {k: {"$eq": _get(doc, k)} for k in keys}
            before = table.count(cond)
            table.upsert(doc, cond)
            counts["updated" if before else "inserted"] += 1

    _load(args, write)
    _say(args, f"inserted {counts['inserted']}, updated {counts['updated']} in {args.table}")
    return 0


_MISSING = object()


def _get(doc: Any, path: str) -> Any:
    for step in path.split("."):
        if not isinstance(doc, dict) or step not in doc:
            return _MISSING
        doc = doc[step]
    return doc


def _update_arg(text: str) -> dict[str, Any]:
    """An update from the command line: fields, or operators whose operands hold tagged values.

    Only operands are decoded: ``{"$set": {...}}`` is the operator, not a tagged set.
    """
    try:
        change = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"the update is not valid JSON: {exc}") from exc
    if not isinstance(change, dict):
        raise CLIError('the update must be a JSON object, e.g. \'{"$set": {"active": false}}\'')
    try:
        if any(isinstance(k, str) and k.startswith("$") for k in change):
            return {
                op: {f: decode(v) for f, v in operand.items()} if isinstance(operand, dict) else decode(operand)
                for op, operand in change.items()
            }
        return {f: decode(v) for f, v in change.items()}
    except MicroDBError as exc:
        raise CLIError(f"the update: {exc}") from exc


def _needs_all(args: argparse.Namespace, cond: Any, verb: str) -> Any:
    if cond is None:
        if not args.all:
            raise CLIError(f"{verb} with no filter changes every document: give a filter, or --all")
        return {}
    return cond


def cmd_update(args: argparse.Namespace) -> int:
    """Apply an update (fields, or operators such as $set and $inc) to matching documents."""
    change = _update_arg(args.update)
    with open_db(args.db, write=True) as db:
        table = existing_table(db, args.table)
        cond = _needs_all(args, parse_filter(args.filter), "update")
        ids = table.update(change, cond)
    _say(args, f"updated {len(ids)} document{'s' * (len(ids) != 1)}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    """Remove the documents matching a filter (every document needs --all)."""
    with open_db(args.db, write=True) as db:
        table = existing_table(db, args.table)
        cond = _needs_all(args, parse_filter(args.filter), "remove")
        ids = table.remove(cond) if cond != {} else _remove_all(table)
    _say(args, f"removed {len(ids)} document{'s' * (len(ids) != 1)}")
    return 0


def _remove_all(table: Table) -> list[int]:
    ids = table.query().ids()
    table.truncate()
    return ids


def cmd_count(args: argparse.Namespace) -> int:
    """Print how many documents of a table match a filter."""
    with open_db(args.db) as db:
        print(existing_table(db, args.table).count(parse_filter(args.filter)))
    return 0


def cmd_distinct(args: argparse.Namespace) -> int:
    """Print the distinct values of a field among matching documents (a JSON array)."""
    with open_db(args.db) as db:
        values = existing_table(db, args.table).query(parse_filter(args.filter)).distinct(args.field)
    if args.nl:
        for value in values:
            print(json.dumps(encode(value), ensure_ascii=False, separators=(",", ":")))
    else:
        print(json.dumps(encode(values), ensure_ascii=False, separators=(",", ":")))
    return 0


def _sort_keys(text: str) -> list[tuple[str, int]]:
    keys = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        keys.append((part[1:], -1) if part.startswith("-") else (part.lstrip("+"), 1))
    return keys


def _fields(text: str | None) -> list[str]:
    return [f.strip() for f in (text or "").split(",") if f.strip()]


def output_format(args: argparse.Namespace) -> str:
    for name in ("nl", "csv", "tsv"):
        if getattr(args, name, False):
            return name
    return "table" if getattr(args, "as_table", False) else "json"


def cmd_query(args: argparse.Namespace) -> int:
    """Print the documents of a table that match a filter."""
    with open_db(args.db) as db:
        _print_query(existing_table(db, args.table), args)
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    """Load files into a database in memory and query them, without writing anything."""
    db = MicroDB()
    table = db.table("data")
    for path in args.files:
        source = inputs.read_source(path)
        try:
            table.insert_many(doc for doc, _ in inputs.documents(
                source, args.format, detect=not args.no_detect_types, types=inputs.parse_types(args.type),
            ))
        except DocumentError as exc:
            raise CLIError(f"{source.name}: {exc}") from exc
    _print_query(table, args)
    return 0


def _print_query(table: Table, args: argparse.Namespace) -> None:
    if True:
        result = table.query(parse_filter(getattr(args, "filter", None)))
        if args.sort:
            result = result.sort(*_sort_keys(args.sort))
        if args.skip:
            result = result.skip(args.skip)
        if args.limit is not None:
            result = result.limit(args.limit)
        if args.fields and args.exclude:
            raise CLIError("give --fields or --exclude, not both")
        if args.fields:
            result = result.project(_fields(args.fields))
        elif args.exclude:
            result = result.project(_fields(args.exclude), exclude=True)
        docs = result.all()
    write_rows(document_rows(docs, ids=args.ids), output_format(args), pretty=args.pretty)


def cmd_get(args: argparse.Namespace) -> int:
    """Print one document by its id."""
    with open_db(args.db) as db:
        table = existing_table(db, args.table)
        doc = table.get(doc_id=args.id)
    if doc is None:
        raise CLIError(f"table {args.table!r} has no document with id {args.id}")
    docs: list[Document] = [doc]
    rows = list(document_rows(docs, ids=args.ids))
    if output_format(args) == "json":
        print(json.dumps(rows[0], ensure_ascii=False, indent=2 if args.pretty else None))
    else:
        write_rows(rows, output_format(args))
    return 0
