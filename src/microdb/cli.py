"""The ``microdb`` command: look at and change a database from the shell.

It only calls the public API. Commands (``microdb COMMAND --help`` for each)::

    microdb demo                      run the README's example in a temporary folder
    microdb tables DB                 list tables and their sizes
    microdb query DB TABLE [FILTER]   print matching documents as JSON lines
    microdb count DB TABLE [FILTER]   print how many documents match
    microdb insert DB TABLE JSON...   insert documents, print their ids
    microdb compact DB                write a fresh checkpoint of a JSON file database
    microdb copy SOURCE TARGET        copy every table and index to another database

``DB`` is a file path or a URL (``sqlite:///x.db``, ``postgresql://...``). ``FILTER`` is a
MongoDB-style JSON filter, e.g. ``'{"age": {"$lt": 30}}'``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from microdb import MicroDB, MicroDBError, Query, encode, untrusted_filter, where

__all__ = ["main"]


def _dump(value: Any) -> str:
    return json.dumps(encode(value), ensure_ascii=False, sort_keys=False)


def _filter(text: str | None) -> Any:
    if not text:
        return None
    try:
        return untrusted_filter(text)
    except MicroDBError as exc:
        raise SystemExit(f"microdb: {exc}") from exc


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the seed's example on a JSON file in a temporary folder and print what it finds."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mydb.json")
        with MicroDB(path) as db:
            users = db.table("users")
            users.insert({"name": "Alice", "age": 30})
            users.insert({"name": "Bob", "age": 25})
            users.insert({"name": "Charlie", "age": 35})
            print(f"Inserted 3 users into {os.path.basename(path)}")

            print("Users younger than 30:")
            for user in users.query(where("age") < 30).all():
                print(f"  {user}")

            users.remove(where("age") < 30)
            print(f"Removed them; {len(users)} users left")

            results = users.query(
                Query().exists("age").value(Query.lte("age", 30)).exists("name").value("name", "Alice")
            )
            print("Users aged 30 or less named Alice:")
            for user in results.all():
                print(f"  {user}")

            print("Everyone, oldest first:")
            for user in users.query().sort("age", reverse=True):
                print(f"  {user.doc_id}: {user['name']} ({user['age']})")
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """List the tables of a database with their document counts."""
    with MicroDB(args.db, read_only=True) if _is_file(args.db) else MicroDB(args.db) as db:
        for name in sorted(db.tables()):
            print(f"{name}\t{len(db.table(name))}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    """Print the documents of a table that match a filter, one JSON object per line."""
    with MicroDB(args.db, read_only=True) if _is_file(args.db) else MicroDB(args.db) as db:
        result = db.table(args.table).query(_filter(args.filter))
        if args.sort:
            result = result.sort(*[(f[1:], -1) if f.startswith("-") else f for f in args.sort.split(",")])
        if args.limit is not None:
            result = result.limit(args.limit)
        for doc in result:
            out = {"_id": doc.doc_id, **doc} if args.ids else dict(doc)
            print(_dump(out))
    return 0


def cmd_count(args: argparse.Namespace) -> int:
    """Print how many documents of a table match a filter."""
    with MicroDB(args.db, read_only=True) if _is_file(args.db) else MicroDB(args.db) as db:
        print(db.table(args.table).count(_filter(args.filter)))
    return 0


def cmd_insert(args: argparse.Namespace) -> int:
    """Insert JSON documents given as arguments (or one per line on stdin with ``-``)."""
    texts = sys.stdin.read().splitlines() if args.documents == ["-"] else args.documents
    docs = []
    for text in texts:
        if not text.strip():
            continue
        try:
            docs.append(json.loads(text))
        except json.JSONDecodeError as exc:
            raise SystemExit(f"microdb: not a JSON document: {text!r}: {exc}") from exc
    with MicroDB(args.db) as db:
        for doc_id in db.table(args.table).insert_many(docs):
            print(doc_id)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    """Write a fresh checkpoint of a JSON file database (new snapshot, empty journal)."""
    with MicroDB(args.db) as db:
        db.compact()
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    """Copy every table and index of SOURCE into TARGET (any two backends)."""

    def progress(table: str, done: int, total: int) -> None:
        if not args.quiet:
            print(f"{table}: {done}/{total}", file=sys.stderr)

    with MicroDB(args.source) as source, MicroDB(args.target) as target:
        counts = source.copy_to(target, progress=progress)
    for table, n in sorted(counts.items()):
        print(f"{table}\t{n}")
    return 0


def _is_file(db: str) -> bool:
    return "://" not in db


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``microdb`` command."""
    parser = argparse.ArgumentParser(prog="microdb", description="Look at and change a MicroDB database.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help=cmd_demo.__doc__)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tables", help=cmd_tables.__doc__)
    p.add_argument("db", help="a file path or a database URL")
    p.set_defaults(func=cmd_tables)

    for name, func in (("query", cmd_query), ("count", cmd_count)):
        p = sub.add_parser(name, help=func.__doc__)
        p.add_argument("db", help="a file path or a database URL")
        p.add_argument("table", help="the table name (_default for the default table)")
        p.add_argument("filter", nargs="?", help='a MongoDB-style JSON filter, e.g. \'{"age": {"$lt": 30}}\'')
        if name == "query":
            p.add_argument("--sort", help="comma-separated fields; prefix with - for descending")
            p.add_argument("--limit", type=int, help="print at most this many documents")
            p.add_argument("--ids", action="store_true", help="include each document's id as _id")
        p.set_defaults(func=func)

    p = sub.add_parser("insert", help=cmd_insert.__doc__)
    p.add_argument("db", help="a file path or a database URL")
    p.add_argument("table", help="the table name")
    p.add_argument("documents", nargs="+", help="JSON documents, or - to read one per line from stdin")
    p.set_defaults(func=cmd_insert)

    p = sub.add_parser("compact", help=cmd_compact.__doc__)
    p.add_argument("db", help="a JSON file path")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("copy", help=cmd_copy.__doc__)
    p.add_argument("source", help="a file path or a database URL")
    p.add_argument("target", help="a file path or a database URL")
    p.add_argument("--quiet", action="store_true", help="do not report progress")
    p.set_defaults(func=cmd_copy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``microdb`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MicroDBError as exc:
        print(f"microdb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
