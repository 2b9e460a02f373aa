"""``python -m microdb.web DB [--host H] [--port P] [--write] [--password-env VAR]``."""

from __future__ import annotations

import argparse
import os
import sys

from microdb import MicroDBError
from microdb.web import run


def main(argv: list[str] | None = None) -> int:
    """Serve a database's web page until interrupted; 2 on a bad start."""
    parser = argparse.ArgumentParser(prog="python -m microdb.web", description="Serve MicroDB's web page.")
    parser.add_argument("db", help="a JSON file path, sqlite:///file.db or postgresql://...")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--write", action="store_true", help="allow changes (read-only without it)")
    parser.add_argument("--password-env", metavar="VAR",
                        help="sign in with the password held in this environment variable instead of a token")
    args = parser.parse_args(argv)
    password = None
    if args.password_env:
        password = os.environ.get(args.password_env)
        if not password:
            parser.error(f"the environment variable {args.password_env} is empty or not set")
    try:
        run(args.db, host=args.host, port=args.port, write=args.write, password=password)
    except MicroDBError as exc:
        print(f"microdb: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
