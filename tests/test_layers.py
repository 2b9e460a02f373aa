"""The package's shape: every import in ``src/microdb`` points down, no cycle, no module over 600 lines.

Every ``import`` statement of every module counts: at the top, inside functions, and under
``if TYPE_CHECKING:``, since each of them is a dependency a reader has to follow. The table
below is the one drawn in docs/design.md; a module belongs to the layer of the longest
prefix that names it.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = "microdb"
DESIGN = ROOT / "docs" / "design.md"

#: layer -> the module prefixes it holds (the longest matching prefix wins).
LAYERS: dict[str, tuple[str, ...]] = {
    "shells": ("microdb.cli", "microdb.web", "microdb.__main__"),
    "tinydb": ("microdb.tinydb",),
    "api": (
        "microdb",  # the package itself: the public names
        "microdb.database",
        "microdb.table",
        "microdb.results",
        "microdb.document",
        "microdb.operations",
        "microdb.transfer",
        "microdb.autosave",
        "microdb.aio",
        "microdb.changes",
    ),
    "backend": ("microdb.backend", "microdb.expiry"),
    "engine": ("microdb.engine",),
    "sql": ("microdb.sql",),
    "schema": ("microdb.schema",),
    "aggregate": ("microdb.aggregate",),
    "compile": ("microdb.compile",),
    "query": ("microdb.query",),
    "storage": ("microdb.storage",),
    "ground": (
        "microdb.errors",
        "microdb.serialization",
        "microdb.tagged",
        "microdb.durability",
        "microdb.locking",
        "microdb.process",
        "microdb.gcpause",
        "microdb.handover",
        "microdb.feed",
    ),
}

#: layer -> the layers its modules may import (besides their own).
ALLOWED: dict[str, frozenset[str]] = {
    # The CLI and the web page use the public package only (see PUBLIC below).
    "shells": frozenset({"api"}),
    # The TinyDB layer re-creates TinyDB's classes on MicroDB's engine and storages.
    "tinydb": frozenset({"api", "backend", "engine", "query", "storage", "ground"}),
    "api": frozenset({"backend", "engine", "sql", "schema", "aggregate", "compile", "query", "storage", "ground"}),
    "backend": frozenset({"query", "ground"}),
    # Two engines, side by side: neither imports the other; only the in-memory one has storages.
    "engine": frozenset({"backend", "compile", "query", "storage", "ground"}),
    "sql": frozenset({"backend", "aggregate", "compile", "query", "ground"}),
    # Schemas: a JSON Schema validator and Python types as schemas; pure, over documents.
    "schema": frozenset({"ground"}),
    # Aggregation pipelines: parsed into stages, run in Python over documents (SQL runs a
    # $group itself, importing this layer).
    "aggregate": frozenset({"compile", "query", "ground"}),
    "compile": frozenset({"query", "ground"}),
    # Queries are data: the AST and its builders import no compiler and no engine.
    "query": frozenset({"ground"}),
    # Storages know nothing of tables, queries or results.
    "storage": frozenset({"ground"}),
    "ground": frozenset(),
}

#: Shells may import these modules of the api layer only: the public package.
PUBLIC = frozenset({"microdb"})

#: Known exceptions, each with the reason it is still there (empty when the code is clean).
EXCEPTIONS: dict[tuple[str, str], str] = {}

#: The longest a module of the package may be: one concept in a few hundred lines.
MAX_LINES = 600

#: Modules still over MAX_LINES, each with the reason (empty when the code is clean).
OVERSIZED: dict[str, str] = {}

#: Packages outside the standard library, and the modules allowed to import them (the
#: optional extras declared in pyproject.toml).
THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "orjson": ("microdb.serialization",),
    "psycopg": ("microdb.sql.postgres",),
    "psycopg_pool": ("microdb.sql.postgres",),
    "starlette": ("microdb.web",),
    "uvicorn": ("microdb.web",),
    "jinja2": ("microdb.web",),
    "markupsafe": ("microdb.web",),
    "regex": ("microdb.query.untrusted",),
}


def module_name(path: Path) -> str:
    """``src/microdb/sql/reads.py`` -> ``microdb.sql.reads`` (a package is its ``__init__``)."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(name: str, source: str, is_package: bool, modules: Iterable[str]) -> set[str]:
    """Every module ``source`` imports, anywhere in it (functions and TYPE_CHECKING included).

    ``from microdb import serialization`` is an import of ``microdb.serialization``;
    ``from microdb.query.ast import Node`` is one of ``microdb.query.ast``.
    """
    known = set(modules)
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(subs or {target})
    found.discard(name)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module of the package."""
    paths = {module_name(p): p for p in (src / PACKAGE).rglob("*.py")}
    return {
        name: imports_of(name, path.read_text(encoding="utf-8"), path.name == "__init__.py", paths)
        for name, path in paths.items()
    }


def layer_of(module: str) -> str | None:
    """The layer holding ``module`` (``None`` for a module outside the package)."""
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if prefix == PACKAGE and module != PACKAGE:
                    continue  # the package prefix names the package's own __init__ only
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), layer)
    return None if best is None else best[1]


def violations(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Every import that breaks the layer table, as readable lines."""
    out: list[str] = []
    for module, targets in sorted(graph.items()):
        source = layer_of(module)
        if source is None:
            out.append(f"{module} is in no layer: add it to LAYERS")
            continue
        for target in sorted(targets):
            if (module, target) in EXCEPTIONS:
                continue
            top = target.split(".")[0]
            if top != PACKAGE:
                allowed = THIRD_PARTY.get(top)
                if allowed is not None and not any(module == m or module.startswith(m + ".") for m in allowed):
                    out.append(f"{module} imports the optional {top}, which only {', '.join(allowed)} may use")
                elif allowed is None and top not in sys.stdlib_module_names:
                    out.append(f"{module} imports {target}, which is outside the standard library")
                continue
            dest = layer_of(target)
            if dest is None:
                out.append(f"{module} imports {target}, which is in no layer")
            elif dest != source and dest not in ALLOWED[source]:
                out.append(f"{module} ({source}) imports {target} ({dest})")
            elif source == "shells" and dest == "api" and target not in PUBLIC:
                out.append(f"{module} (a shell) imports {target}: shells use the public package only")
    return out


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected parts of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def module_lines(src: Path = SRC) -> dict[str, int]:
    """Module -> its number of lines, for every module of the package."""
    return {
        module_name(p): len(p.read_text(encoding="utf-8").splitlines()) for p in (src / PACKAGE).rglob("*.py")
    }


GRAPH = import_graph()
LINES = module_lines()


def test_every_module_is_in_a_layer() -> None:
    """Each module of the package is placed in the layer table."""
    assert [m for m in GRAPH if layer_of(m) is None] == []


def test_imports_point_down() -> None:
    """No module imports a layer above it or beside it (see ALLOWED)."""
    assert violations(GRAPH) == []


def test_no_import_cycle() -> None:
    """No two modules import each other, directly or through others, even inside functions."""
    assert cycles(GRAPH) == []


def test_exceptions_are_still_needed() -> None:
    """Each listed exception is an import the code really has (so the list cannot rot)."""
    for module, target in EXCEPTIONS:
        assert target in GRAPH.get(module, set()), (module, target)


def test_no_module_is_over_the_limit() -> None:
    """Every module holds one concept in at most MAX_LINES lines (see OVERSIZED)."""
    assert {m: n for m, n in LINES.items() if n > MAX_LINES and m not in OVERSIZED} == {}


def test_oversized_modules_are_still_oversized() -> None:
    """Each module listed in OVERSIZED is still too long (remove it from the list once split)."""
    for module in OVERSIZED:
        assert LINES.get(module, 0) > MAX_LINES, f"{module} is within {MAX_LINES} lines now: remove it from OVERSIZED"


def test_design_names_only_real_modules() -> None:
    """Every ``.py`` file docs/design.md names exists (so the drawing follows moves and renames)."""
    package = SRC / PACKAGE
    basenames = {p.name for p in package.rglob("*.py")}
    named = set(re.findall(r"[\w/]+\.py\b", DESIGN.read_text(encoding="utf-8")))
    missing = [
        name for name in sorted(named)
        if not ((package / name).exists() or (ROOT / name).exists() if "/" in name else name in basenames)
    ]
    assert missing == []


def test_design_draws_every_top_level_module() -> None:
    """docs/design.md's layers drawing shows each top-level module and sub-package of the package."""
    package = SRC / PACKAGE
    top = sorted(
        p.name + ("/" if p.is_dir() else "")
        for p in package.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"
    )
    text = DESIGN.read_text(encoding="utf-8")
    drawing = text[text.index("## The layers"):text.index("## The data path")]
    assert [name for name in top if name not in drawing] == []


@pytest.mark.parametrize(
    ("module", "source", "is_package", "expected"),
    [
        ("microdb.query.ast", "def f():\n    from microdb.compile.python import predicate\n", False,
         {"microdb.compile.python"}),
        ("microdb.results", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from microdb.table import Table\n",
         False, {"typing", "microdb.table"}),
        ("microdb.sql.reads", "from microdb import serialization\nfrom . import rows\n", False,
         {"microdb.serialization", "microdb.sql.rows"}),
        ("microdb.sql", "from .reads import x\n", True, {"microdb.sql.reads"}),
    ],
)
def test_imports_are_found_everywhere(module: str, source: str, is_package: bool, expected: set[str]) -> None:
    """Imports inside functions, under TYPE_CHECKING, of submodules and relative ones all count."""
    modules = {"microdb.serialization", "microdb.sql.rows", "microdb.sql.reads", "microdb.table"}
    assert imports_of(module, source, is_package, modules) == expected


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"microdb.query.ast": {"microdb.compile.python"}},
         "microdb.query.ast (query) imports microdb.compile.python (compile)"),
        ({"microdb.storage.jsonfile": {"microdb.table"}},
         "microdb.storage.jsonfile (storage) imports microdb.table (api)"),
        ({"microdb.sql.reads": {"microdb.engine.memory"}},
         "microdb.sql.reads (sql) imports microdb.engine.memory (engine)"),
        ({"microdb.web.app": {"microdb.locking"}},
         "microdb.web.app (shells) imports microdb.locking (ground)"),
        ({"microdb.cli": {"microdb.table"}},
         "microdb.cli (a shell) imports microdb.table: shells use the public package only"),
        ({"microdb.query.values": {"requests"}},
         "microdb.query.values imports requests, which is outside the standard library"),
        ({"microdb.table": {"psycopg"}},
         "microdb.table imports the optional psycopg, which only microdb.sql.postgres may use"),
        ({"microdb.stray": set()}, "microdb.stray is in no layer: add it to LAYERS"),
    ],
)
def test_a_violation_is_reported(graph: dict[str, set[str]], expected: str) -> None:
    """The rule check fails on a synthetic violation, so it can fail on a real one."""
    assert violations(graph) == [expected]


def test_a_cycle_is_reported() -> None:
    """A cycle through three modules is found; a chain is not a cycle."""
    graph = {"microdb.a": {"microdb.b"}, "microdb.b": {"microdb.c"}, "microdb.c": {"microdb.a"}, "microdb.d": {"microdb.a"}}
    assert cycles(graph) == [["microdb.a", "microdb.b", "microdb.c"]]
    assert cycles({"microdb.a": {"microdb.b"}, "microdb.b": set()}) == []


def test_allowed_imports_pass() -> None:
    """Imports that follow the table raise nothing (the check is not simply always failing)."""
    graph = {
        "microdb.sql.reads": {"microdb.compile.sql", "microdb.backend", "microdb.query.ast", "json"},
        "microdb.cli": {"microdb", "argparse"},
        "microdb.sql.postgres": {"psycopg"},
    }
    assert violations(graph) == []
