"""``python -m microdb``: the command-line tool (see :mod:`microdb.cli`)."""

from __future__ import annotations

import sys

from microdb.cli import main

sys.exit(main())
