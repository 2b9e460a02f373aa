"""Every ```python example in the README and docs/ runs, each block on its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"```python\n(.*?)```", text, re.S):
            line = text[: match.start()].count("\n") + 1
            found.append((str(path.relative_to(ROOT)), line, match.group(1)))
    return found


@pytest.mark.parametrize("where, line, code", blocks(), ids=lambda v: str(v) if not isinstance(v, str) or "\n" not in v else "")
def test_doc_example_runs(where: str, line: int, code: str, tmp_path: Path) -> None:
    """The example runs without error in a fresh folder (a fresh interpreter each)."""
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONWARNINGS="error")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{where}:{line} failed:\n{proc.stdout}\n{proc.stderr}"


def test_docs_have_examples() -> None:
    """The README and the query reference carry runnable examples."""
    names = {w for w, _, _ in blocks()}
    assert "README.md" in names
    assert "docs/queries.md" in names
