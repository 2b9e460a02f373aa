"""Every example in docs/cli.md runs, in order, in one folder, and prints what the page shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli.md"


def examples() -> list[tuple[int, str, list[str]]]:
    """(line, command, expected output lines) for every ``$`` line of the page's console blocks."""
    text = DOC.read_text(encoding="utf-8")
    found: list[tuple[int, str, list[str]]] = []
    for match in re.finditer(r"```console\n(.*?)```", text, re.S):
        first = text[: match.start()].count("\n") + 2
        for offset, line in enumerate(match.group(1).splitlines()):
            if line.startswith("$ "):
                found.append((first + offset, line[2:], []))
            else:
                found[-1][2].append(line)
    return found


def matches(expected: list[str], got: list[str]) -> bool:
    """Whether ``got`` is ``expected``, where a ``...`` line stands for any lines."""
    if not expected:
        return not got
    if expected[0] == "...":
        return any(matches(expected[1:], got[i:]) for i in range(len(got) + 1))
    return bool(got) and got[0] == expected[0] and matches(expected[1:], got[1:])


def test_cli_examples_run_as_shown(tmp_path: Path) -> None:
    """Each command prints exactly the lines the page shows (stdout and stderr together)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "microdb"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m microdb "$@"\n')
    wrapper.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(
        os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT / "src"),
        COLUMNS="100", HOME=str(tmp_path),
    )
    ran = 0
    for line, command, expected in examples():
        proc = subprocess.run(
            ["sh", "-c", command + " 2>&1"], cwd=work, env=env, capture_output=True, text=True, timeout=120,
            stdin=subprocess.DEVNULL,
        )
        got = [x.rstrip() for x in proc.stdout.splitlines()]
        assert matches([x.rstrip() for x in expected], got), (
            f"docs/cli.md:{line}: {command}\nexpected:\n" + "\n".join(expected) + "\ngot:\n" + "\n".join(got)
        )
        ran += 1
    assert ran >= 30
