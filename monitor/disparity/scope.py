"""A DuckDB connection whose date-partitioned views read only the lake files of a range of event dates.

`monitor.db.connect()` gives every view every file of the lake, and DuckDB pays for each file at bind time (a
footer read per file and query), so a job that recomputes one day still costs more the longer the history is
(0.2-0.5 s per connection at 1M turns). The metrics jobs know which dates they can touch (the dates of the new
files, the windows to recompute), so they read through a connection whose views hold exactly those partitions: a
query filtered to those dates gets the same rows from either connection, and its cost no longer depends on how
much history lies outside them. Tables that are not partitioned by date (`metrics_log`) keep all their files.
"""
from __future__ import annotations

import re

import duckdb

from monitor import db
from monitor.home import Home
from monitor.schema import TABLES

_DATE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)")


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


def _select(home: Home, name: str, manifest: dict) -> str:
    # monitor.db.view_select (when present) skips union_by_name for files of the current schema.
    view_select = getattr(db, "view_select", None)
    if view_select is not None:
        return view_select(home, name, manifest)
    return db._table_select(TABLES[name], home.lake.files(name, manifest))


def scope_views(con, home: Home, manifest: dict, date_min: str, date_max: str) -> None:
    """(Re)create the lake views and the sql/views views of `con` over the files of [date_min, date_max]."""
    scoped = scoped_manifest(manifest, date_min, date_max)
    for name in TABLES:
        con.execute(f"CREATE OR REPLACE VIEW {db.quote_ident(name)} AS {_select(home, name, scoped)}")
    db._create_views(con)


def scoped_connect(home: Home, manifest: dict, dates: tuple[str, str] | None,
                   state: tuple[str, ...] = ()) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the named SQLite state tables and, given `dates` (first, last), the lake views
    over those dates (else none yet: call scope_views once the dates are known)."""
    con = duckdb.connect(":memory:")
    try:
        if dates is not None:
            scope_views(con, home, manifest, *dates)
        if state:
            sq = home.state.connect()
            try:
                for name in state:
                    con.register("_arrow_tmp", db._state_arrow(sq, name))
                    con.execute(f"CREATE TABLE {db.quote_ident(name)} AS SELECT * FROM _arrow_tmp")
                    con.unregister("_arrow_tmp")
            finally:
                sq.close()
    except BaseException:
        con.close()
        raise
    return con
