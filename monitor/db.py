"""DuckDB access: in-memory connections whose views read the lake, plus the views-only catalog file.

Any number of processes may call `connect()` at once: each gets its own in-memory DuckDB with one view per lake
table over exactly the files of the current manifest, the SQLite state tables copied in, and the views of
``sql/views``. `write_catalog()` writes the same views into ``<home>/catalog.duckdb`` (state tables as Parquet
snapshots) so an analyst can run ``duckdb -readonly <home>/catalog.duckdb``.
"""
from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.errors import QueryError
from monitor.home import Home
from monitor.resources import sql_files
from monitor.schema import TABLES, Table

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us"): "TIMESTAMP",
}
_SQLITE_TYPES = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
_DATE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)")


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB (the one helper every UI-chosen identifier goes through)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _table_select(table: Table, files: list[Path], uniform: bool = False) -> str:
    """The SELECT of a lake table's view over `files`; `uniform`: every file holds exactly the table's columns."""
    # union_by_name makes DuckDB read the footer of every file at bind time, i.e. every query of a view costs
    # O(files) before pruning: 0.5 s per connection at 1M turns. Files written by this version carry their column
    # fingerprint in the manifest, so the (slow, general) union is kept only for a table that still has older files.
    cols = ", ".join(
        f"CAST({quote_ident(f.name)} AS {_DUCK_TYPES[f.type]}) AS {quote_ident(f.name)}" for f in table.schema
    )
    if not files:
        nulls = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {quote_ident(f.name)}" for f in table.schema)
        return f"SELECT {nulls} WHERE false"
    flist = ", ".join(quote_literal(str(p)) for p in files)
    return (
        f"SELECT {cols} FROM read_parquet([{flist}], hive_partitioning=true, "
        f"union_by_name={'false' if uniform else 'true'}, hive_types_autocast=false)"
    )


def view_select(home: Home, name: str, manifest: dict) -> str:
    """The SELECT of lake table `name`'s view at `manifest`."""
    table = TABLES[name]
    entries = manifest["tables"].get(name, [])
    fp = table.fingerprint
    uniform = all(e.get("s") == fp for e in entries)
    return _table_select(table, home.lake.files(name, manifest), uniform)


def _state_arrow(con: sqlite3.Connection, table: str) -> pa.Table:
    info = con.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
    names = [r[1] for r in info]
    types = [_SQLITE_TYPES.get((r[2] or "TEXT").upper(), pa.string()) for r in info]
    rows = con.execute(f"SELECT * FROM {quote_ident(table)}").fetchall()
    cols = list(zip(*rows)) if rows else [[] for _ in names]
    arrays = []
    for col, tp in zip(cols, types):
        try:
            arrays.append(pa.array(list(col), type=tp))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in col], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=names)


def state_tables(home: Home) -> dict[str, pa.Table]:
    """Every SQLite state table as Arrow (small: alerts, labels, audit log, ...). Bookkeeping that no query reads
    is left out: migrations, key-value settings, the scheduler's jobs, and `forgotten_keys` (hashes of deleted
    records, which ingest reads from SQLite; it grows with every deletion)."""
    con = home.state.connect()
    try:
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT IN ('schema_migrations', 'kv', 'forgotten_keys') AND name NOT LIKE 'apscheduler%'"
        )]
        return {n: _state_arrow(con, n) for n in names}
    finally:
        con.close()


def _create_views(con: duckdb.DuckDBPyConnection) -> None:
    for f in sql_files("views"):
        try:
            con.execute(f.sql)
        except duckdb.Error as e:
            raise QueryError(f"view {f.path} failed to build: {e}") from e


def connect(home: Home, *, guarded: bool = False, threads: int | None = None,
            memory_limit: str | None = None, manifest: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection over the home's lake (at `manifest`, default the current one) and state;
    `guarded` locks it down for ad hoc SQL."""
    con = duckdb.connect(":memory:")
    if threads:
        con.execute(f"SET threads={int(threads)}")
    manifest = manifest if manifest is not None else home.lake.manifest()
    for name in TABLES:
        con.execute(f"CREATE VIEW {quote_ident(name)} AS {view_select(home, name, manifest)}")
    for name, data in state_tables(home).items():
        con.register("_arrow_tmp", data)
        con.execute(f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM _arrow_tmp")
        con.unregister("_arrow_tmp")
    _create_views(con)
    if guarded:
        lock_down(con, home, manifest, memory_limit=memory_limit)
    return con


def scoped_manifest(manifest: dict, date_min: str, date_max: str) -> dict:
    """The manifest restricted to files of event dates in [date_min, date_max] (files without a date: all kept)."""
    tables = {}
    for name, entries in manifest["tables"].items():
        keep = []
        for e in entries:
            m = _DATE.search(e["path"])
            if m is None or date_min <= m.group(1) <= date_max:
                keep.append(e)
        tables[name] = keep
    return {**manifest, "tables": tables}


# A fresh in-memory DuckDB database costs ~20 ms to create and close (catalog, buffer manager, thread pool), and an
# incremental run of the jobs opened ~23 of them for a handful of views each (~0.45 s per run, whatever the history).
# The jobs' connections therefore come from a small per-process pool: `close()` drops the views and tables the user
# created and keeps the database for the next one. A connection whose use could have changed anything else (a SET,
# an ATTACH, a macro, a transaction, another API than execute/register) is closed for real instead.
POOL_SIZE = 4
_POOL: list[duckdb.DuckDBPyConnection] = []
_POOL_LOCK = threading.Lock()
_POOL_PID = os.getpid()
_CHANGES_MORE = re.compile(
    r"^\s*(?:--[^\n]*(?:\n|$)\s*|/\*.*?\*/\s*)*(?:SET|RESET|PRAGMA|ATTACH|DETACH|INSTALL|LOAD|USE|IMPORT|EXPORT|"
    r"BEGIN|START|CALL|CHECKPOINT|ALTER|CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?"
    r"(?:MACRO|FUNCTION|SCHEMA|SEQUENCE|TYPE|SECRET|INDEX))\b", re.IGNORECASE | re.DOTALL)
# What a pooled connection may be used through without being retired: execute() and the result fetchers.
_POOL_SAFE = frozenset({
    "fetchall", "fetchone", "fetchmany", "df", "fetchdf", "fetch_df", "fetch_df_chunk", "arrow", "fetch_arrow_table",
    "to_arrow_table", "fetch_record_batch", "fetchnumpy", "pl", "description", "rowcount", "register", "unregister",
})


class PooledConnection:
    """An in-memory DuckDB connection from the process's pool; `close()` empties it and gives it back."""

    __slots__ = ("_con", "_keep")

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        self._keep = True

    def execute(self, query, *args, **kwargs) -> "PooledConnection":
        if self._con is None:
            raise duckdb.ConnectionException("Connection already closed!")
        if self._keep and (not isinstance(query, str) or _CHANGES_MORE.match(query) or _more_statements(query)):
            self._keep = False
        self._con.execute(query, *args, **kwargs)
        return self

    def __getattr__(self, name: str):
        con = self._con
        if con is None:
            raise duckdb.ConnectionException("Connection already closed!")
        if name not in _POOL_SAFE:
            self._keep = False
        return getattr(con, name)

    def close(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            _release(con, self._keep)

    def __enter__(self) -> "PooledConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_COMMENT_LINE = re.compile(r"^[ \t]*--[^\n]*$", re.MULTILINE)


def _more_statements(query: str) -> bool:
    """Whether the text holds a statement after a `;` (each statement of a script would need checking)."""
    # Whole-line comments (the SQL files' headers) may contain a `;`; anything else after one counts.
    head, sep, tail = _COMMENT_LINE.sub("", query).partition(";")
    return bool(sep) and bool(tail.strip(" \n\t;"))


def memory_connection() -> PooledConnection:
    """An empty in-memory DuckDB connection, from the pool when one is free."""
    global _POOL_PID
    with _POOL_LOCK:
        if os.getpid() != _POOL_PID:  # a forked child: the parent's databases are not this process's to use
            _POOL.clear()
            _POOL_PID = os.getpid()
        con = _POOL.pop() if _POOL else None
    return PooledConnection(con if con is not None else duckdb.connect(":memory:"))


def _release(con: duckdb.DuckDBPyConnection, keep: bool) -> None:
    if keep and os.getpid() == _POOL_PID:
        try:
            for db_name, schema, name, temporary in con.execute(
                    "SELECT database_name, schema_name, view_name, temporary FROM duckdb_views() "
                    "WHERE NOT internal").fetchall():
                if temporary:
                    con.unregister(name)  # a registered Python object (a no-op for a temporary view: dropped next)
                con.execute(f"DROP VIEW IF EXISTS {quote_ident(db_name)}.{quote_ident(schema)}.{quote_ident(name)}")
            for db_name, schema, name in con.execute(
                    "SELECT database_name, schema_name, table_name FROM duckdb_tables()").fetchall():
                con.execute(f"DROP TABLE {quote_ident(db_name)}.{quote_ident(schema)}.{quote_ident(name)}")
            # fetchall, not fetchone: a result left unfinished would refuse the next user's register().
            [(left,)] = con.execute("SELECT (SELECT count(*) FROM duckdb_views() WHERE NOT internal) + "
                                    "(SELECT count(*) FROM duckdb_tables())").fetchall()
            keep = left == 0
        except duckdb.Error:  # an unfinished result, a dependency: not worth repairing
            keep = False
        if keep:
            with _POOL_LOCK:
                if len(_POOL) < POOL_SIZE and os.getpid() == _POOL_PID:
                    _POOL.append(con)
                    return
    con.close()


def scope_views(con: duckdb.DuckDBPyConnection, home: Home, manifest: dict, date_min: str, date_max: str) -> None:
    """(Re)create the lake views and the sql/views views of `con` over the files of [date_min, date_max]."""
    scoped = scoped_manifest(manifest, date_min, date_max)
    for name in TABLES:
        con.execute(f"CREATE OR REPLACE VIEW {quote_ident(name)} AS {view_select(home, name, scoped)}")
    _create_views(con)


def scoped_connect(home: Home, manifest: dict, dates: tuple[str, str] | None,
                   state: tuple[str, ...] = ()) -> PooledConnection:
    """An in-memory connection with the named SQLite state tables and, given `dates` (first, last), the lake views
    over those dates (else none yet: call scope_views once the dates are known)."""
    # `connect()` gives every view every file of the lake, and DuckDB pays for each file at bind time (a footer
    # read per file and query), so a job that recomputes one day would still cost more the longer the history is
    # (0.2-0.5 s per connection at 1M turns). The jobs know which dates they can touch (the new files' dates, the
    # windows to recompute): a query filtered to those dates gets the same rows from either connection, and its
    # cost no longer depends on the history outside them. Tables without date partitions keep all their files.
    con = memory_connection()
    try:
        if dates is not None:
            scope_views(con, home, manifest, *dates)
        if state:
            sq = home.state.connect()
            try:
                for name in state:
                    con.register("_arrow_tmp", _state_arrow(sq, name))
                    con.execute(f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM _arrow_tmp")
                    con.unregister("_arrow_tmp")
            finally:
                sq.close()
    except BaseException:
        con.close()
        raise
    return con


def lock_down(con: duckdb.DuckDBPyConnection, home: Home, manifest: dict | None = None,
              memory_limit: str | None = None) -> None:
    """Allow reads of exactly the manifest's lake files, no other file or network access, and freeze the settings."""
    # Exact files rather than the lake folder: with a folder allowed, `COPY ... TO '<lake>/x.csv'` could write into
    # the lake. `manifest` must be the one the views were built from, or files compacted away meanwhile are denied.
    manifest = manifest if manifest is not None else home.lake.manifest()
    files = [str(p) for name in TABLES for p in home.lake.files(name, manifest)]
    # The default temp folder (./.tmp) would be added to the allowed folders: disable spilling instead.
    con.execute("SET temp_directory=''")
    if memory_limit:
        con.execute(f"SET memory_limit={quote_literal(memory_limit)}")
    con.execute(f"SET allowed_paths=[{', '.join(quote_literal(f) for f in files)}]")
    con.execute("SET enable_external_access=false")
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    con.execute("SET lock_configuration=true")


def write_catalog(home: Home) -> Path:
    """Write the views-only `catalog.duckdb` (atomically replaced) and refresh the state snapshots it reads."""
    snap = home.snapshot_dir
    snap.mkdir(parents=True, exist_ok=True)
    tmp_dir = home.lake.tmp_dir
    states = state_tables(home)
    for name, data in states.items():
        tmp = tmp_dir / f"{uuid.uuid4().hex}.parquet"
        pq.write_table(data, tmp)
        os.replace(tmp, snap / f"{name}.parquet")
    tmp_cat = home.root / f".catalog-{uuid.uuid4().hex}.duckdb"
    con = duckdb.connect(str(tmp_cat))
    try:
        manifest = home.lake.manifest()
        for name in TABLES:
            con.execute(f"CREATE VIEW {quote_ident(name)} AS {view_select(home, name, manifest)}")
        for name in states:
            path = quote_literal(str(snap / f"{name}.parquet"))
            con.execute(f"CREATE VIEW {quote_ident(name)} AS SELECT * FROM read_parquet({path})")
        _create_views(con)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    os.replace(tmp_cat, home.catalog_path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(str(tmp_cat) + ".wal")
    return home.catalog_path


def query_df(home: Home, sql: str, params: dict | None = None):
    """Run one trusted query (from sql/ files) and return a pandas DataFrame."""
    con = connect(home)
    try:
        return con.execute(sql, params or {}).df()
    except duckdb.Error as e:
        raise QueryError(f"query failed: {e}") from e
    finally:
        con.close()
