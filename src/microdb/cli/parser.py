"""The ``microdb`` command's arguments: one subcommand per task, each with an example."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import microdb

from . import commands, manage, shell
from .inputs import FORMATS

DB_HELP = "a JSON file path, or a URL: sqlite:///file.db, postgresql://user@host/db"
FILTER_HELP = 'a JSON filter, e.g. \'{"age": {"$lt": 30}}\' (MongoDB-style; never run as code)'

Command = Callable[[argparse.Namespace], int]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add(sub: Any, name: str, func: Command, example: str, *, db: bool = True) -> argparse.ArgumentParser:
    doc = (func.__doc__ or "").strip().splitlines()[0]
    p: argparse.ArgumentParser = sub.add_parser(
        name, help=doc, description=doc, epilog="example:\n  " + example.replace("\n", "\n  "),
        formatter_class=_Formatter,
    )
    if db:
        p.add_argument("db", metavar="DB", help=DB_HELP)
    p.set_defaults(func=func)
    return p


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _everything(p: argparse.ArgumentParser, help: str) -> None:
    """``--all`` (a command that changes every document must say so) and ``--quiet``."""
    p.add_argument("--all", action="store_true", help=help)
    _quiet(p)
    p.set_defaults(silent=False)


def _output(p: argparse.ArgumentParser, *, ids: bool = True) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="a JSON array (the default)")
    group.add_argument("--nl", action="store_true", help="one JSON document per line")
    group.add_argument("--csv", action="store_true", help="CSV with a header line")
    group.add_argument("--tsv", action="store_true", help="tab-separated values with a header line")
    group.add_argument("--table", dest="as_table", action="store_true", help="an aligned table fitted to the terminal")
    p.add_argument("--pretty", action="store_true", help="indent JSON output")
    if ids:
        p.add_argument("--ids", action="store_true", help="add each document's id as _id")


def _loading(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", metavar="TABLE", help="the table to write to (created if needed)")
    p.add_argument("files", metavar="FILE", nargs="*",
                   help="files to read, - for stdin (the default), or inline JSON text")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="input format (auto: by extension, then by content)")
    p.add_argument("--nl", dest="in_nl", action="store_true", help="input is one JSON document per line")
    p.add_argument("--csv", dest="in_csv", action="store_true", help="input is CSV")
    p.add_argument("--tsv", dest="in_tsv", action="store_true", help="input is TSV")
    p.add_argument("--tinydb", dest="in_tinydb", action="store_true", help="input is a TinyDB file")
    p.add_argument("--tinydb-table", metavar="NAME", help="the table to read from a TinyDB file (default _default)")
    p.add_argument("--no-detect-types", action="store_true", help="CSV/TSV: keep every value a string")
    p.add_argument("--type", action="append", metavar="FIELD=TYPE",
                   help="CSV/TSV: the type of a column (str, int, float, bool, json); repeatable")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="commit every N documents (default: the whole load in one commit, all or nothing)")
    p.add_argument("--skip", type=int, metavar="N", default=0,
                   help="leave out the first N input documents (to resume a --batch-size load an error stopped)")
    _quiet(p)
    p.add_argument("--silent", action="store_true", help="no output and no progress bar")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _shaping(p: argparse.ArgumentParser) -> None:
    """What a reading command's answer looks like: order, window, fields and format."""
    p.add_argument("--sort", metavar="FIELDS", help="comma-separated fields; -field sorts descending")
    p.add_argument("--limit", type=int, metavar="N", help="at most N documents")
    p.add_argument("--skip", type=int, metavar="N", default=0, help="leave out the first N documents")
    p.add_argument("--fields", metavar="FIELDS", help="comma-separated fields to keep")
    p.add_argument("--exclude", metavar="FIELDS", help="comma-separated fields to leave out")
    _output(p)


def _reading(p: argparse.ArgumentParser, *, filter: bool = True) -> None:
    p.add_argument("table", metavar="TABLE", help="the table to read")
    if filter:
        p.add_argument("filter", metavar="FILTER", nargs="?", help=FILTER_HELP)
    _shaping(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``microdb`` command."""
    parser = argparse.ArgumentParser(
        prog="microdb",
        description="Look at and change a MicroDB database from the shell.",
        epilog="exit codes: 0 success, 1 error (bad input, missing file or table), 2 usage, 3 damage found\n"
        "Every command has --help with an example, e.g. microdb insert --help.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"microdb {microdb.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add(sub, "insert", commands.cmd_insert, "microdb insert people.json users users.csv\n"
             "cat events.ndjson | microdb insert log.json events --nl")
    _loading(p)
    p.add_argument("--ids", action="store_true", help="print the new ids, one per line")

    p = _add(sub, "upsert", commands.cmd_upsert, "microdb upsert people.json users users.json --pk email")
    _loading(p)
    p.add_argument("--pk", required=True, metavar="FIELDS", help="comma-separated fields that identify a document")

    p = _add(sub, "update", commands.cmd_update,
             'microdb update people.json users \'{"name": "Ann"}\' \'{"$inc": {"age": 1}}\'')
    p.add_argument("table", metavar="TABLE")
    p.add_argument("filter", metavar="FILTER", help=FILTER_HELP + "; {} with --all")
    p.add_argument("update", metavar="UPDATE", help='fields, or operators: \'{"$set": {"a": 1}}\'')
    _everything(p, "allow an empty filter: update every document")

    p = _add(sub, "remove", commands.cmd_remove, 'microdb remove people.json users \'{"age": {"$lt": 18}}\'')
    p.add_argument("table", metavar="TABLE")
    p.add_argument("filter", metavar="FILTER", nargs="?", help=FILTER_HELP)
    _everything(p, "remove every document when there is no filter")

    p = _add(sub, "count", commands.cmd_count, 'microdb count people.json users \'{"age": {"$gte": 18}}\'')
    p.add_argument("table", metavar="TABLE")
    p.add_argument("filter", metavar="FILTER", nargs="?", help=FILTER_HELP)

    p = _add(sub, "distinct", commands.cmd_distinct, "microdb distinct people.json users city")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("field", metavar="FIELD", help="a field name or dot path")
    p.add_argument("filter", metavar="FILTER", nargs="?", help=FILTER_HELP)
    p.add_argument("--nl", action="store_true", help="one value per line")

    p = _add(sub, "query", commands.cmd_query,
             'microdb query people.json users \'{"age": {"$lt": 30}}\' --sort=-age --table')
    _reading(p)

    p = _add(sub, "rows", commands.cmd_query, "microdb rows people.json users --limit 10 --csv")
    _reading(p, filter=False)

    p = _add(sub, "memory", commands.cmd_memory,
             'microdb memory users.csv --filter \'{"age": {"$gt": 30}}\' --table', db=False)
    p.add_argument("files", metavar="FILE", nargs="+", help="files to load (- for stdin), all into one table")
    p.add_argument("--filter", metavar="FILTER", help=FILTER_HELP)
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (auto: by extension, then content)")
    p.add_argument("--no-detect-types", action="store_true", help="CSV/TSV: keep every value a string")
    p.add_argument("--type", action="append", metavar="FIELD=TYPE", help="CSV/TSV: the type of a column")
    _shaping(p)

    p = _add(sub, "get", commands.cmd_get, "microdb get people.json users 1")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("id", metavar="ID", type=int, help="the document's id")
    _output(p)

    p = _add(sub, "tables", manage.cmd_tables, "microdb tables people.json")
    group = p.add_mutually_exclusive_group()
    for name in ("json", "nl", "csv", "tsv"):
        group.add_argument(f"--{name}", action="store_true", help=f"print as {name}")
    group.add_argument("--table", dest="as_table", action="store_true", help="print an aligned table")

    p = _add(sub, "indexes", manage.cmd_indexes, "microdb indexes people.json users")
    p.add_argument("table_name", metavar="TABLE", nargs="?", help="one table (default: every table)")

    p = _add(sub, "create-index", manage.cmd_create_index, "microdb create-index people.json users email --unique")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("fields", metavar="FIELD", nargs="+", help="a field name or dot path (several: a compound index)")
    p.add_argument("--unique", action="store_true", help="refuse two documents with the same value")

    p = _add(sub, "drop-index", manage.cmd_drop_index, "microdb drop-index people.json users email")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("fields", metavar="FIELD", nargs="+")

    p = _add(sub, "drop-table", manage.cmd_drop_table, "microdb drop-table people.json old_users --yes")
    p.add_argument("table", metavar="TABLE")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")

    p = _add(sub, "export", manage.cmd_export, "microdb export people.json users -o users.csv\n"
             "microdb export people.json -o backup.json")
    p.add_argument("table_name", metavar="TABLE", nargs="?", help="one table (default: the whole database)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--format", choices=("auto", "json", "nl", "csv", "tsv", "tinydb"), default="auto",
                   help="auto: by the output's extension, else json")
    p.add_argument("--ids", action="store_true", help="add each document's id as _id (one table)")
    _quiet(p)

    p = _add(sub, "import", manage.cmd_import, "microdb import people.json backup.json\n"
             "microdb import people.json users.csv --table users")
    p.add_argument("file", metavar="FILE", help="a file, or - for stdin")
    p.add_argument("--table", metavar="NAME", help="the table to load into (one table of a TinyDB file)")
    p.add_argument("--format", choices=FORMATS, default="auto")
    _quiet(p)

    p = _add(sub, "copy", manage.cmd_copy, "microdb copy people.json sqlite:///people.db", db=False)
    p.add_argument("source", metavar="SOURCE", help=DB_HELP)
    p.add_argument("target", metavar="TARGET", help=DB_HELP)
    _quiet(p)

    p = _add(sub, "info", manage.cmd_info, "microdb info people.json")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = _add(sub, "check", manage.cmd_check, "microdb check people.json")
    _quiet(p)

    _add(sub, "compact", manage.cmd_compact, "microdb compact people.json")

    p = _add(sub, "shell", shell.cmd_shell, "microdb shell people.json")
    p.add_argument("--table", dest="table_name", metavar="NAME", default="_default", help="the table to start in")

    p = _add(sub, "serve", manage.cmd_serve, "microdb serve people.json --port 8000")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="the port (default 8000)")
    p.add_argument("--write", action="store_true", help="allow changes (read-only by default)")
    p.add_argument("--token", help="require this token with every request")
    p.add_argument("--password", help="require this password")

    _add(sub, "version", manage.cmd_version, "microdb version", db=False)
    _add(sub, "demo", shell.cmd_demo, "microdb demo", db=False)
    return parser
