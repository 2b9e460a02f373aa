"""``microdb shell``: a prompt to type filters and commands against one database; and ``demo``."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from typing import Any

from microdb import MicroDB, Query, where

HISTORY = os.path.join(os.path.expanduser("~"), ".microdb_history")

#: Commands that take the database as their first argument (the shell fills it in).
DB_COMMANDS = (
    "insert", "upsert", "update", "remove", "count", "distinct", "query", "rows", "get", "tables",
    "indexes", "create-index", "drop-index", "drop-table", "export", "import", "info", "check", "compact",
)

HELP = """\
Type a command without the database, e.g.  query users {"age": {"$lt": 30}} --table
A line starting with { is a filter on the current table:  {"name": "Ann"}
  use TABLE     change the current table (now: {table})
  help          this text;  COMMAND --help  a command's own help
  exit          leave (or Ctrl-D)
Commands: {commands}"""


def _readline() -> Any:
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return None
    try:
        readline.read_history_file(HISTORY)
    except OSError:
        pass
    return readline


def cmd_shell(args: argparse.Namespace) -> int:
    """An interactive prompt with history: type filters and commands against one database."""
    run = args.runner  # the command runner, handed over by it (importing it here would be a cycle)
    interactive = sys.stdin.isatty()
    readline = _readline() if interactive else None
    table = args.table_name
    status = 0
    try:
        while True:
            try:
                line = input(f"microdb {table}> " if interactive else "")
            except EOFError:
                break
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line in ("exit", "quit"):
                break
            if line in ("help", "?"):
                print(HELP.format(table=table, commands=", ".join(DB_COMMANDS)))
                continue
            if line.startswith("{"):
                status = run(["query", args.db, table, line, "--table" if interactive else "--nl"])
                continue
            try:
                words = shlex.split(line)
            except ValueError as exc:
                print(f"microdb: {exc}", file=sys.stderr)
                status = 2
                continue
            if words[0] == "use" and len(words) == 2:
                table = words[1]
                continue
            if words[0] in DB_COMMANDS:
                status = run([words[0], args.db, *words[1:]])
            else:
                print(f"microdb: unknown command {words[0]!r} (type help)", file=sys.stderr)
                status = 2
    finally:
        if readline is not None:
            try:
                readline.write_history_file(HISTORY)
            except OSError:
                pass
    return status if not interactive else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the README's example on a JSON file in a temporary folder and print what it finds."""
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
