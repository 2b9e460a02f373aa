"""The ``microdb`` command: sqlite-utils for documents (see docs/cli.md).

It calls only the public API. ``microdb --help`` lists the commands and ``microdb COMMAND
--help`` shows each one's options and an example. ``DB`` is a JSON file path or a URL
(``sqlite:///x.db``, ``postgresql://...``); filters are MongoDB-style JSON, checked by
:func:`microdb.untrusted_filter`, and never evaluated as code.

Errors are one line, ``microdb: ...``, with these exit codes: 0 success, 1 an error (bad
input, a missing file or table, a refused write), 2 a usage error, 3 damage found.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from microdb import CorruptDatabaseError, MicroDBError

from .common import EXIT_DAMAGE, EXIT_ERROR, CLIError
from .parser import build_parser

__all__ = ["build_parser", "main", "run"]


def run(argv: Sequence[str]) -> int:
    """Run one command and return its exit code; errors are printed, never raised."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return int(exc.code or 0)
    args.runner = run
    try:
        return int(args.func(args))
    except CLIError as exc:
        _error(str(exc))
        return exc.code
    except CorruptDatabaseError as exc:
        _error(f"damaged database: {exc}")
        return EXIT_DAMAGE
    except MicroDBError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader (head, less) went away: stop quietly, as other commands do.
        try:
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - stdout must stay open for exit
        except OSError:
            pass
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return 128 + signal.SIGINT
    except OSError as exc:  # a path that is a folder, a permission refused...
        _error(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        return EXIT_ERROR
    except RecursionError:
        _error("the input is nested too deeply")
        return EXIT_ERROR


def _error(message: str) -> None:
    sys.stderr.write(f"microdb: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``microdb`` command (the console script's entry point)."""
    return run(sys.argv[1:] if argv is None else argv)
