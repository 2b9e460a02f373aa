"""The commands that manage a database: tables, indexes, export and import, info, check, serve."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
from typing import Any

import microdb
from microdb import CorruptDatabaseError, Document, MicroDB, UnsupportedFeature, encode

from . import inputs
from .commands import output_format
from .common import EXIT_DAMAGE, CLIError, Progress, confirm, existing_table, is_url, open_db, size_text
from .outputs import document_rows, write_rows


def _compound_ok(method: Any, fields: list[str]) -> None:
    """Refuse several fields where this MicroDB has no compound indexes (rather than misread them)."""
    if len(fields) > 1 and not any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in inspect.signature(method).parameters.values()
    ):
        raise CLIError("this MicroDB has no compound indexes: index one field")


def cmd_tables(args: argparse.Namespace) -> int:
    """List the tables of a database with their document counts."""
    with open_db(args.db) as db:
        rows = [{"table": name, "count": len(db.table(name))} for name in sorted(db.tables())]
    if args.json or args.nl or args.csv or args.tsv or args.as_table:
        write_rows(rows, output_format(args))
    else:
        for row in rows:
            print(f"{row['table']}\t{row['count']}")
    return 0


def _index_rows(db: MicroDB, tables: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in tables:
        for index in db.table(name).indexes():
            fields = index.get("paths") or [index["path"]]
            rows.append({
                "table": name,
                "fields": ", ".join(".".join(str(s) for s in f) for f in fields),
                "unique": bool(index.get("unique")),
            })
    return rows


def cmd_indexes(args: argparse.Namespace) -> int:
    """List the indexes of a table, or of every table."""
    with open_db(args.db) as db:
        tables = [existing_table(db, args.table_name).name] if args.table_name else sorted(db.tables())
        rows = _index_rows(db, tables)
    for row in rows:
        print(f"{row['table']}\t{row['fields']}\t{'unique' if row['unique'] else ''}".rstrip())
    return 0


def cmd_create_index(args: argparse.Namespace) -> int:
    """Index one field (a dot path) or several together; --unique refuses duplicate values."""
    with open_db(args.db, write=True) as db:
        table = db.table(args.table)
        _compound_ok(table.create_index, args.fields)
        table.create_index(*args.fields, unique=args.unique)
    return 0


def cmd_drop_index(args: argparse.Namespace) -> int:
    """Remove an index."""
    with open_db(args.db, write=True) as db:
        table = existing_table(db, args.table)
        _compound_ok(table.drop_index, args.fields)
        if not table.drop_index(*args.fields):
            raise CLIError(f"table {args.table!r} has no index on {', '.join(args.fields)}")
    return 0


def cmd_drop_table(args: argparse.Namespace) -> int:
    """Remove a table and all its documents (asks first, unless --yes)."""
    with open_db(args.db, write=True) as db:
        table = existing_table(db, args.table)
        confirm(f"drop table {args.table!r} and its {len(table)} documents?", yes=args.yes)
        db.drop_table(args.table)
    return 0


def _export_format(args: argparse.Namespace) -> str:
    if args.format != "auto":
        return str(args.format)
    lower = (args.output or "").lower()
    for ext, fmt in ((".csv", "csv"), (".tsv", "tsv"), (".ndjson", "nl"), (".jsonl", "nl")):
        if lower.endswith(ext):
            return fmt
    return "json"


def cmd_export(args: argparse.Namespace) -> int:
    """Write a table (JSON, NDJSON, CSV, TSV) or the whole database (a TinyDB-shaped JSON file)."""
    fmt = _export_format(args)
    with open_db(args.db) as db:
        if args.table_name is None or fmt == "tinydb":
            if fmt not in ("json", "tinydb"):
                raise CLIError(f"a whole database exports as json or tinydb; name a table for {fmt}")
            names = [existing_table(db, args.table_name).name] if args.table_name else sorted(db.tables())
            data = {name: {str(d.doc_id): encode(dict(d)) for d in db.table(name).all()} for name in names}
            _write_out(args.output, lambda out: out.write(json.dumps(data, ensure_ascii=False) + "\n"))
            counts = {name: len(docs) for name, docs in data.items()}
        else:
            docs = existing_table(db, args.table_name).all()
            _write_out(args.output, lambda out: write_rows(document_rows(docs, ids=args.ids), fmt, out))
            counts = {args.table_name: len(docs)}
    if args.output and not args.quiet:
        _report(counts, sys.stderr)
    return 0


def _report(counts: dict[str, int], out: Any = None) -> None:
    """One line a table: its name, a tab, how many documents."""
    for name, n in sorted(counts.items()):
        print(f"{name}\t{n}", file=out)


def _write_out(path: str | None, write: Any) -> None:
    if path is None or path == "-":
        write(sys.stdout)
        return
    temp = f"{path}.tmp{os.getpid()}"
    try:
        with open(temp, "w", encoding="utf-8", newline="") as out:
            write(out)
        os.replace(temp, path)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def cmd_import(args: argparse.Namespace) -> int:
    """Load an export back: a TinyDB-shaped file keeps tables and ids; other formats need --table."""
    source = inputs.read_source(args.file)
    fmt = inputs.detect_format(source, args.format)
    with open_db(args.db, write=True) as db:
        progress = Progress("import", source.size, enabled=not args.quiet)
        if fmt in ("json", "tinydb") and (fmt == "tinydb" or _looks_tinydb(source)):
            tables = inputs.tinydb_tables(source)
            if args.table:
                if args.table not in tables:
                    raise CLIError(f"{source.name}: no table {args.table!r} (tables: {', '.join(sorted(tables))})")
                tables = {args.table: tables[args.table]}
            with db.transaction():
                for name, docs in tables.items():
                    db.table(name).insert_many(Document(doc, doc_id=i) for i, doc in docs)
            counts = {name: len(docs) for name, docs in tables.items()}
        else:
            if not args.table:
                raise CLIError(f"importing {fmt} needs --table NAME")
            loaded = [doc for doc, _ in inputs.documents(source, fmt, progress=lambda p: progress.update(p, 0))]
            with db.transaction():
                db.table(args.table).insert_many(loaded)
            counts = {args.table: len(loaded)}
        progress.finish()
    if not args.quiet:
        _report(counts)
    return 0


def _looks_tinydb(source: inputs.Source) -> bool:
    return inputs._looks_tinydb(source)


def cmd_copy(args: argparse.Namespace) -> int:
    """Copy every table and index of SOURCE into TARGET (any two backends)."""
    bar = Progress("copy", None, enabled=not args.quiet)

    def progress(table: str, done: int, total: int) -> None:
        bar.label = f"copy {table}"
        bar.update(done, done)

    with open_db(args.source) as source, open_db(args.target, write=True) as target:
        counts = source.copy_to(target, progress=progress)
    bar.finish()
    if not args.quiet:
        _report(counts)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Write a fresh checkpoint of a JSON file database (new snapshot, empty journal)."""
    with open_db(args.db, write=True) as db:
        db.compact()
    return 0


def _journal_header(path: str) -> dict[str, Any]:
    """The JSON header of a journal (its first line: length, checksum, then JSON)."""
    try:
        with open(path, "rb") as f:
            line = f.readline(1 << 20)
    except OSError:
        return {}
    parts = line.split(b" ", 2)
    try:
        header = json.loads(parts[2]) if len(parts) == 3 else {}
    except ValueError:
        return {}
    return header if isinstance(header, dict) else {}


def cmd_info(args: argparse.Namespace) -> int:
    """Show what a database holds and how it is stored."""
    info: dict[str, Any] = {"database": args.db}
    path = None if is_url(args.db) else args.db
    with open_db(args.db) as db:
        info["backend"] = db.backend.name
        if path is not None:
            journal = path + ".journal"
            info["file_bytes"] = os.path.getsize(path)
            info["journal_bytes"] = os.path.getsize(journal) if os.path.exists(journal) else 0
            info["format_version"] = _journal_header(journal).get("format")
            info["durability"] = "durable: each commit is fsynced before it returns (the default)"
        elif args.db.lower().startswith("sqlite://"):
            file = args.db.split("://", 1)[1][1:]
            info["file_bytes"] = os.path.getsize(file) if os.path.exists(file) else 0
            info["journal_bytes"] = os.path.getsize(file + "-wal") if os.path.exists(file + "-wal") else 0
            info["durability"] = "durable: SQLite commits with synchronous=FULL (the default)"
        else:
            info["durability"] = "durable: the server's commits (the default)"
        tables = sorted(db.tables())
        info["tables"] = {name: len(db.table(name)) for name in tables}
        info["indexes"] = _index_rows(db, tables)
    info["microdb_version"] = microdb.__version__
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "tables":
            print(f"tables: {len(value)}")
            for name, n in value.items():
                print(f"  {name}: {n} documents")
        elif key == "indexes":
            print(f"indexes: {len(value)}")
            for row in value:
                print(f"  {row['table']}: {row['fields']}{' (unique)' if row['unique'] else ''}")
        elif key.endswith("_bytes"):
            print(f"{key.replace('_', ' ')}: {value} ({size_text(value)})")
        else:
            print(f"{key.replace('_', ' ')}: {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Verify a database: checksums, snapshot and journal agreement, every document readable,
    indexes against their documents, and documents against their table's schema."""
    if not is_url(args.db) and os.path.exists(args.db):
        # The file's own check first: it reads records and snapshot without opening a handle,
        # so it reports every problem, where an open stops at the first.
        report = microdb.check_file(args.db)
        if not report.ok:
            for problem in report.problems:
                print(f"microdb: damage: {problem}", file=sys.stderr)
            return EXIT_DAMAGE
    broken = 0
    try:
        tables = 0
        documents = 0
        with open_db(args.db) as db:
            for name in sorted(db.tables()):
                table = db.table(name)
                docs = table.all()
                if len(docs) != table.count():
                    print(f"microdb: damage: table {name!r}: {len(docs)} documents read, {table.count()} counted",
                          file=sys.stderr)
                    return EXIT_DAMAGE
                for index in table.indexes():
                    if index.get("paths") is None:
                        for doc in docs[:1000]:
                            _check_index(table, index["path"], doc, name)
                for bad in table.validate():
                    broken += 1
                    print(f"microdb: schema: table {name!r}, document {bad['doc_id']}: {bad['message']}",
                          file=sys.stderr)
                tables += 1
                documents += len(docs)
    except CorruptDatabaseError as exc:
        where = f" (file {exc.path}, byte {exc.offset})" if exc.offset is not None else ""
        print(f"microdb: damage: {exc}{where}", file=sys.stderr)
        return EXIT_DAMAGE
    except _IndexDamage as exc:
        print(f"microdb: damage: {exc}", file=sys.stderr)
        return EXIT_DAMAGE
    if broken:
        print(f"microdb: {broken} documents break their table's schema", file=sys.stderr)
        return EXIT_DAMAGE
    if not args.quiet:
        print(f"ok: {tables} tables, {documents} documents")
    return 0


class _IndexDamage(Exception):
    pass


def _check_index(table: Any, path: list[Any], doc: Document, name: str) -> None:
    value: Any = doc
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return
        value = value[step]
    if isinstance(value, (dict, list, set, frozenset, tuple)):
        return
    field = ".".join(str(s) for s in path)
    if doc.doc_id not in table.query({field: {"$eq": value}}).ids():
        raise _IndexDamage(f"table {name!r}: the index on {field} misses document {doc.doc_id}")


def cmd_version(args: argparse.Namespace) -> int:
    """Print MicroDB's version."""
    print(f"microdb {microdb.__version__} (Python {sys.version.split()[0]})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a database as a web page (read-only unless --write); needs the web extra."""
    try:
        web = importlib.import_module("microdb.web")
    except ImportError as exc:
        raise CLIError(f"the web page needs its extra: pip install 'microdb[web]' ({exc})") from exc
    if not is_url(args.db) and not os.path.exists(args.db) and not args.write:
        raise CLIError(f"no database at {args.db} (a read-only server never creates one)")
    try:
        web.run(args.db, host=args.host, port=args.port, write=args.write, token=args.token, password=args.password)
    except KeyboardInterrupt:
        pass
    except UnsupportedFeature as exc:  # the web extra's packages are missing: the message names them
        raise CLIError(str(exc)) from exc
    return 0
