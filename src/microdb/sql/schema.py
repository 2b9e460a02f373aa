"""The names the SQL engine gives things: the registry table, a table's SQL name, index names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from microdb.query import ast

REGISTRY = "microdb_tables"


@dataclass
class TableInfo:
    """One table's registry row."""

    tid: int
    name: str
    indexes: list[dict[str, Any]] = field(default_factory=list)
    #: What else is stored with the table (its schema...), a JSON object.
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def sql(self) -> str:
        """The SQL name of the table holding the documents."""
        return f"mdb_{self.tid}"


def index_name(info: TableInfo, path: ast.Path, suffix: str = "") -> str:
    """The SQL name of an index on ``path`` (stable, short, safe)."""
    digest = hashlib.sha1(json.dumps(list(path)).encode("utf-8")).hexdigest()[:12]
    return f"{info.sql}_x{digest}{suffix}"


def indexed_paths(info: TableInfo) -> frozenset[ast.Path]:
    """The paths of the table's MicroDB indexes (each path of a compound one too)."""
    out: set[ast.Path] = set()
    for x in info.indexes:
        if "paths" in x:
            out.update(tuple(p) for p in x["paths"])
        else:
            out.add(tuple(x["path"]))
    return frozenset(out)
