"""The SQL engine's table registry: which tables exist, their SQL names and their indexes.

Layout in the database (both engines)::

    microdb_tables(tid, name, next_id, indexes, options)   one row per MicroDB table
    mdb_<tid>(id, doc ...)                        the documents of one table

``tid`` is never reused, so a process holding a stale ``tid`` for a dropped table cannot
write into a new table of the same name. ``next_id`` lives in the registry: ids increase
and are never reused, even after the highest is removed. ``indexes`` is the JSON list of
index definitions (``{"path": [...], "unique": bool}``, or ``{"paths": [[...], ...], ...}``
for a compound index); each maps to SQL indexes that the dialect builds
(:meth:`SQLRegistry._index_ddl`, :meth:`SQLRegistry._compound_ddl`). ``options`` is a JSON
object of what else is stored with the table (its schema); databases made before it
existed gain the column when opened for writing.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from typing import Any

from microdb.compile.sql import Frag, SQLFilter, compile_filter
from microdb.errors import UnsupportedFeature
from microdb.expiry import Rule, rules_of
from microdb.query import ast
from microdb.sql.schema import REGISTRY, TableInfo, index_name, indexed_paths
from microdb.sql.session import Session, SQLSessions
from microdb.sql.steps import Run, Steps


class SQLRegistry(SQLSessions):
    """The part of :class:`~microdb.sql.backend.SQLBackend` that knows the tables and their indexes."""

    #: False for a database opened read-only that predates the ``options`` column.
    _options_column = True
    #: Expired documents are left out in SQL, by the database's clock (see :meth:`_filter`).
    hides_expired = True

    def _expired_sql(self, rule: Rule) -> Frag:
        """SQL true for the rows that expired under ``rule`` (see :mod:`microdb.expiry`)."""
        raise UnsupportedFeature(f"the {self.name} backend has no expiring documents")

    def _filter(self, info: TableInfo, node: ast.Node | None) -> SQLFilter:
        """``node`` compiled for the table, leaving out the documents that have expired."""
        f = compile_filter(node, self.dialect, "doc", indexed_paths(info))
        rules = rules_of(info.options)
        if not rules:
            return f
        parts = [self._expired_sql(rule) for rule in rules]
        live = Frag("NOT (" + " OR ".join(p.sql for p in parts) + ")", tuple(x for p in parts for x in p.params))
        where = live if not f.pushed else Frag(f"({f.where.sql}) AND {live.sql}", (*f.where.params, *live.params))
        sure = Frag(f"({f.sure.sql}) AND {live.sql}", (*f.sure.params, *live.params))
        return SQLFilter(where, sure, f.exact, f.residual)

    def remove_expired(self, table: str, rules: tuple[Rule, ...], limit: int) -> list[int]:
        with self._op(write=True) as s:
            return self._drive(s, self.remove_expired_steps(s, table, rules, limit))

    def remove_expired_steps(self, s: Session, table: str, rules: tuple[Rule, ...], limit: int) -> Steps[list[int]]:
        """:meth:`remove_expired` as steps (:mod:`microdb.sql.steps`), inside a write block."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return []
        parts = [self._expired_sql(rule) for rule in rules]
        sql = (f"DELETE FROM {info.sql} WHERE id IN (SELECT id FROM {info.sql} WHERE "
               + " OR ".join(p.sql for p in parts) + f" LIMIT {int(limit)}) RETURNING id")
        return [int(r[0]) for r in (yield Run(sql, [x for p in parts for x in p.params]))]

    @abstractmethod
    def _create_schema(self, s: Session) -> None:
        """Create the registry table if it is missing."""

    @abstractmethod
    def _create_table_sql(self, info: TableInfo) -> list[str]:
        """DDL creating the documents table."""

    @abstractmethod
    def _insert_registry(self, s: Session, name: str) -> Steps[int]:
        """Add a table to the registry (or find it, if another process just did); its tid."""

    @abstractmethod
    def _index_ddl(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        """DDL creating the SQL indexes of one MicroDB index."""

    @abstractmethod
    def _index_names(self, info: TableInfo, path: ast.Path, unique: bool) -> list[str]:
        """Names of the SQL indexes :meth:`_index_ddl` creates."""

    @abstractmethod
    def _compound_ddl(self, s: Session, info: TableInfo, spec: dict[str, Any]) -> Steps[list[str]]:
        """DDL creating the multi-column expression index of a compound MicroDB index.

        May add engine details to ``spec`` (stored with it) before building the DDL; steps,
        as it may read the table to choose them.
        """

    def _compound_names(self, info: TableInfo, spec: dict[str, Any]) -> list[str]:
        """Names of the SQL indexes :meth:`_compound_ddl` creates: the one queries use, then
        (when unique) the one enforcing uniqueness."""
        names = [index_name(info, (json.dumps(spec["paths"]),), "_c")]
        if spec.get("unique"):
            names.append(index_name(info, (json.dumps(spec["paths"]),), "_cu"))
        return names

    def _unique_path(self, info: TableInfo, message: str) -> str:
        """A readable name for the unique index a driver message mentions."""
        for spec in info.indexes:
            if "paths" in spec:
                if spec.get("unique") and any(n in message for n in self._compound_names(info, spec)):
                    return "(" + ", ".join(ast.path_repr(tuple(p)) for p in spec["paths"]) + ")"
                continue
            path = tuple(spec["path"])
            if spec.get("unique") and any(n in message for n in self._index_names(info, path, True)):
                return ast.path_repr(path)
        return "a unique index"

    # -- registry -----------------------------------------------------------------------------
    def _info(self, s: Session, name: str, create: bool = False) -> TableInfo | None:
        return self._drive(s, self._info_steps(s, name, create))

    def _info_steps(self, s: Session, name: str, create: bool = False) -> Steps[TableInfo | None]:
        """The table's registry entry (created with ``create``), cached for the block."""
        if name in s.tables:
            info = s.tables[name]
            if info is not None or not create:
                return info
        options = "options" if self._options_column else "'{}'"
        rows = yield Run(f"SELECT tid, indexes, {options} FROM {REGISTRY} WHERE name = {self.dialect.param}", (name,))
        if rows:
            info = TableInfo(int(rows[0][0]), name, json.loads(rows[0][1]), self._options(rows[0][2]))
        elif create:
            tid = yield from self._insert_registry(s, name)
            info = TableInfo(tid, name, [])
            for ddl in self._create_table_sql(info):
                yield Run(ddl)
        else:
            info = None
        s.tables[name] = info
        return info

    def _save_indexes(self, s: Session, info: TableInfo) -> Steps[None]:
        p = self.dialect.param
        yield Run(f"UPDATE {REGISTRY} SET indexes = {p} WHERE tid = {p}", (json.dumps(info.indexes), info.tid))

    def _options(self, text: str | None) -> dict[str, Any]:
        # One parse per distinct text: the same dict comes back while the options stay the
        # same, so a table can cache what it derives from them (its compiled schema).
        if not text or text == "{}":
            return {}
        cache: dict[str, dict[str, Any]] = self.__dict__.setdefault("_options_cache", {})
        found = cache.get(text)
        if found is None:
            if len(cache) > 64:
                cache.clear()
            found = cache[text] = json.loads(text)
        return found

    def table_options(self, table: str) -> dict[str, Any]:
        with self._op() as s:
            return self._drive(s, self.table_options_steps(s, table))

    def table_options_steps(self, s: Session, table: str) -> Steps[dict[str, Any]]:
        """:meth:`table_options` as steps (:mod:`microdb.sql.steps`)."""
        info = yield from self._info_steps(s, table)
        return {} if info is None else info.options

    def set_table_options(self, table: str, options: dict[str, Any]) -> None:
        with self._op(write=True) as s:
            self._drive(s, self.set_table_options_steps(s, table, options))

    def set_table_options_steps(self, s: Session, table: str, options: dict[str, Any]) -> Steps[None]:
        """:meth:`set_table_options` as steps, inside a write block."""
        info = yield from self._info_steps(s, table, create=True)
        assert info is not None
        text = json.dumps(options, sort_keys=True)
        p = self.dialect.param
        yield Run(f"UPDATE {REGISTRY} SET options = {p} WHERE tid = {p}", (text, info.tid))
        info.options = self._options(text)

    def tables(self) -> list[str]:
        with self._op() as s:
            return self._drive(s, self.tables_steps(s))

    def tables_steps(self, s: Session) -> Steps[list[str]]:
        """:meth:`tables` as steps."""
        return [r[0] for r in (yield Run(f"SELECT name FROM {REGISTRY} ORDER BY tid"))]

    def drop_table(self, table: str) -> bool:
        with self._op(write=True) as s:
            return self._drive(s, self.drop_table_steps(s, table))

    def drop_table_steps(self, s: Session, table: str) -> Steps[bool]:
        """:meth:`drop_table` as steps, inside a write block."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return False
        yield Run(f"DROP TABLE IF EXISTS {info.sql}")
        yield Run(f"DELETE FROM {REGISTRY} WHERE tid = {self.dialect.param}", (info.tid,))
        s.tables[table] = None
        return True

    # -- indexes --------------------------------------------------------------------------
    def create_index(self, table: str, path: ast.Path, unique: bool) -> None:
        with self._op(write=True) as s:
            self._drive(s, self.create_index_steps(s, table, path, unique))

    def create_index_steps(self, s: Session, table: str, path: ast.Path, unique: bool) -> Steps[None]:
        """:meth:`create_index` as steps, inside a write block."""
        info = yield from self._info_steps(s, table, create=True)
        assert info is not None
        current = [x for x in info.indexes if x.get("path") == list(path)]
        if current and bool(current[0].get("unique")) == unique:
            return
        ddl = self._index_ddl(info, path, unique)
        if unique and not ddl:
            raise UnsupportedFeature(
                f"a unique index on {ast.path_repr(path)} ({self.name} cannot index that path)"
            )

        def body() -> Steps[None]:
            if current:
                for name in self._index_names(info, path, bool(current[0].get("unique"))):
                    yield Run(f"DROP INDEX IF EXISTS {name}")
            for statement in ddl:
                yield Run(statement)
            info.indexes = [x for x in info.indexes if x.get("path") != list(path)]
            info.indexes.append({"path": list(path), "unique": unique})
            yield from self._save_indexes(s, info)

        yield from self._savepoint_steps(s, body())

    def drop_index(self, table: str, path: ast.Path) -> bool:
        with self._op(write=True) as s:
            return self._drive(s, self.drop_index_steps(s, table, path))

    def drop_index_steps(self, s: Session, table: str, path: ast.Path) -> Steps[bool]:
        """:meth:`drop_index` as steps, inside a write block."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return False
        current = [x for x in info.indexes if x.get("path") == list(path)]
        if not current:
            return False
        # An index shared by the table's indexes (PostgreSQL's GIN) stays while others remain.
        shared = self._shared_index_names(info) if len(info.indexes) > 1 else set()
        for name in self._index_names(info, path, bool(current[0].get("unique"))):
            if name not in shared:
                yield Run(f"DROP INDEX IF EXISTS {name}")
        info.indexes = [x for x in info.indexes if x.get("path") != list(path)]
        yield from self._save_indexes(s, info)
        return True

    def create_compound_index(self, table: str, paths: tuple[ast.Path, ...], unique: bool) -> None:
        with self._op(write=True) as s:
            self._drive(s, self.create_compound_index_steps(s, table, paths, unique))

    def create_compound_index_steps(self, s: Session, table: str, paths: tuple[ast.Path, ...], unique: bool) -> Steps[None]:
        """:meth:`create_compound_index` as steps, inside a write block."""
        key = [list(p) for p in paths]
        info = yield from self._info_steps(s, table, create=True)
        assert info is not None
        current = [x for x in info.indexes if x.get("paths") == key]
        if current and bool(current[0].get("unique")) == unique:
            return
        spec: dict[str, Any] = {"paths": key, "unique": unique}
        ddl = yield from self._compound_ddl(s, info, spec)
        if not ddl:
            shown = ", ".join(ast.path_repr(p) for p in paths)
            raise UnsupportedFeature(f"a compound index on ({shown}) ({self.name} cannot index those paths)")

        def body() -> Steps[None]:
            for old in current:
                for name in self._compound_names(info, old):
                    yield Run(f"DROP INDEX IF EXISTS {name}")
            for statement in ddl:
                yield Run(statement)
            info.indexes = [x for x in info.indexes if x.get("paths") != key]
            info.indexes.append(spec)
            yield from self._save_indexes(s, info)

        yield from self._savepoint_steps(s, body())

    def drop_compound_index(self, table: str, paths: tuple[ast.Path, ...]) -> bool:
        with self._op(write=True) as s:
            return self._drive(s, self.drop_compound_index_steps(s, table, paths))

    def drop_compound_index_steps(self, s: Session, table: str, paths: tuple[ast.Path, ...]) -> Steps[bool]:
        """:meth:`drop_compound_index` as steps, inside a write block."""
        key = [list(p) for p in paths]
        info = yield from self._info_steps(s, table)
        current = [] if info is None else [x for x in info.indexes if x.get("paths") == key]
        if info is None or not current:
            return False
        for name in self._compound_names(info, current[0]):
            yield Run(f"DROP INDEX IF EXISTS {name}")
        info.indexes = [x for x in info.indexes if x.get("paths") != key]
        yield from self._save_indexes(s, info)
        return True

    def indexes(self, table: str) -> list[dict[str, Any]]:
        with self._op() as s:
            return self._drive(s, self.indexes_steps(s, table))

    def indexes_steps(self, s: Session, table: str) -> Steps[list[dict[str, Any]]]:
        """:meth:`indexes` as steps."""
        info = yield from self._info_steps(s, table)
        if info is None:
            return []
        return [
            {"paths": [list(p) for p in x["paths"]], "unique": bool(x.get("unique"))} if "paths" in x
            else {"path": list(x["path"]), "unique": bool(x.get("unique"))}
            for x in info.indexes
        ]

    def _shared_index_names(self, info: TableInfo) -> set[str]:
        """Indexes one table's MicroDB indexes share (none, unless the engine has one)."""
        return set()
