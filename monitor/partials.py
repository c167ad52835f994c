"""Per-date partial sums that a run extends with its new turns instead of recomputing the day from all its rows.

The metrics jobs recompute each window touched by new data. Their grouped queries are additive over turns: every
output row is a group (window, model, segment, dimension, ...) and its other columns are counts and sums over the
group's turns, so the rows of a day are the rows of its old turns plus the rows of its new turns, summed per group.
A `DateSums` keeps one day's rows in a cache file (``<home>/cache/partials/<name>/<date>.parquet``) with the
manifest version they reflect and the number of turns they count; the next run queries only the files committed
since then and adds their rows. A day of 50k turns then costs what its 10k new turns cost.

The sums are reused only when that is exact:
- the cache was computed with the same `identity` (query version, parameters, classifier or scorer version);
- the old files still hold exactly the rows the cache counts, per table (from the manifest's row counts: a deletion
  rewrote a file, or compaction merged old rows into a file that now looks new: the day is recomputed);
- no turn with rows in the new files has a row in the old files of the first table (`turns`): a re-scored turn or a
  segment detected late for an old turn changes that turn's contribution, so the day is recomputed.

Otherwise the day is recomputed from all of its rows, which also refreshes the cache. Only the tables the query
reads count (`tables`); the query must read nothing else that changes (state tables, metrics_log). The cache holds
aggregates only (no user ids) and is safe to delete: the next run recomputes.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from monitor import db
from monitor.home import Home
from monitor.resources import load_sql

META_KEY = b"monitor.partials"
KEEP_DATES = 62  # cache files kept per name: the recent days incremental runs touch; older days are recomputed
_DATE_AT = "date="
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OVERLAPS: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}  # (old files, new files) -> overlap, see _overlap
_OVERLAPS_MAX = 256

# query(con, date_min, date_max) -> the rows of every window of those dates, read through con's lake views.
Query = Callable[[duckdb.DuckDBPyConnection, str, str], pd.DataFrame]


def _date_of(path: str) -> str | None:
    i = path.find(_DATE_AT)
    return path[i + 5:i + 15] if i >= 0 else None


def normalized(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as it reads back from Parquet (same dtypes whichever path computed it)."""
    return pa.Table.from_pandas(df, preserve_index=False).to_pandas()


@dataclass
class DateSums:
    """The additive rows of one grouped query, per event date, kept between runs and extended with new turns."""

    home: Home
    name: str  # cache folder, e.g. "values.means"
    # Everything the rows depend on besides the data (versions, settings, SQL texts): any JSON-serialisable value,
    # hashed here, so a change of any part recomputes the dates from all their rows.
    identity: object
    # Date-partitioned lake tables the query reads, each with a turn_id column; the first (`turns`) holds a row
    # for every turn the query counts, in the turn's date partition.
    tables: tuple[str, ...]
    sums: tuple[str, ...]  # additive columns; every other column is part of the group key
    stats: dict | None = None  # filled by rows(): dates per path, for logs and tests

    @property
    def folder(self) -> Path:
        return root(self.home) / self.name

    @property
    def key(self) -> str:
        """The hash of `identity` stored with each cached date."""
        text = json.dumps(self.identity, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def windows(self, manifest: dict, windows: Iterable[dt.datetime], query: Query) -> pd.DataFrame:
        """The query's rows of these windows (each within the event date of its start), via rows()."""
        wanted = sorted(set(windows))
        df = self.rows(manifest, {w.strftime("%Y-%m-%d") for w in wanted}, query)
        if not len(df):
            return df
        return df[df["window_start"].isin(pd.DatetimeIndex(wanted))].reset_index(drop=True)

    def rows(self, manifest: dict, dates: Iterable[str], query: Query, chunk: int = 31) -> pd.DataFrame:
        """The query's rows for every window of `dates`: cached sums plus the new turns' rows, or all rows."""
        dates = sorted(set(dates))
        files = self._files(manifest, dates)
        out: dict[str, pd.DataFrame] = {}
        full: list[str] = []
        self.stats = {"cached": 0, "extended": 0, "recomputed": 0}
        keep_from = (dt.date.fromisoformat(dates[-1]) - dt.timedelta(days=KEEP_DATES)).isoformat() if dates else ""
        check = db.memory_connection()
        try:
            for d in dates:
                cached = self._load(d)
                if cached is None:
                    full.append(d)
                    continue
                frame, meta = cached
                old = [f for f in files[d] if f[2] <= meta["v"]]
                new = [f[0] for f in files[d] if f[2] > meta["v"]]
                anchor = self.tables[0]
                if _rows(old) != meta["rows"] or (new and self._overlap(
                        check, [f[0] for f in old if f[1] == anchor],
                        [f[0] for f in files[d] if f[2] > meta["v"] and f[1] == anchor],
                        [f[0] for f in files[d] if f[2] > meta["v"] and f[1] != anchor])):
                    full.append(d)
                    continue
                if new:
                    con = self._connect(manifest, d, d, since=meta["v"])
                    try:
                        frame = self._merge(frame, normalized(query(con, d, d)))
                    finally:
                        con.close()
                    self._save(d, frame, manifest["version"], _rows(files[d]))
                    self.stats["extended"] += 1
                else:
                    self.stats["cached"] += 1
                out[d] = frame
            for run in _runs(full, chunk):
                con = self._connect(manifest, run[0], run[-1])
                try:
                    df = normalized(query(con, run[0], run[-1]))
                finally:
                    con.close()
                days = np.datetime_as_string(np.asarray(df["window_start"].to_numpy(), dtype="datetime64[us]"),
                                             unit="D") if len(df) else np.array([], dtype=str)
                for d in run:
                    frame = df[days == d].reset_index(drop=True)
                    if d >= keep_from:  # a full recomputation of old history is not cached
                        self._save(d, frame, manifest["version"], _rows(files[d]))
                    out[d] = frame
                    self.stats["recomputed"] += 1
        finally:
            check.close()
        self._prune()
        frames = [out[d] for d in dates if len(out[d])]
        if not frames:
            return out[dates[0]].iloc[0:0] if dates else pd.DataFrame()
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def _files(self, manifest: dict, dates: list[str]) -> dict[str, list[tuple[str, str, int, int]]]:
        """Date -> (absolute path, table, commit version, rows) of every file of `tables` in that date partition."""
        wanted = set(dates)
        out: dict[str, list[tuple[str, str, int, int]]] = {d: [] for d in dates}
        root = self.home.lake.root
        for table in self.tables:
            for e in manifest["tables"].get(table, []):
                d = _date_of(e["path"])
                if d in wanted:
                    out[d].append((str(root / e["path"]), table, e.get("v", 0), e["rows"]))
        return out

    def _connect(self, manifest: dict, date_min: str, date_max: str, since: int | None = None):
        """A connection whose lake views hold the files of [date_min, date_max] (committed after `since`)."""
        if since is not None:
            manifest = {**manifest, "tables": {t: [e for e in es if e.get("v", 0) > since]
                                               for t, es in manifest["tables"].items()}}
        return db.scoped_connect(self.home, manifest, (date_min, date_max))

    @staticmethod
    def _overlap(con, old: list[str], new_anchor: list[str], new_other: list[str]) -> int:
        """How many distinct turns with rows in the new files (`new_anchor`: of the anchor table `turns`,
        `new_other`: of the other tables) have a row in the `old` files of the anchor table."""
        # Lake files are immutable (every write, compaction or rewrite publishes a new uuid name), so the answer for
        # a pair of file lists never changes. The caches of one run mostly ask about the same pair (every cache
        # extended last run has the same old/new split of `turns`): the first asks, the others reuse it.
        memo_key = (tuple(old), tuple(new_anchor), tuple(new_other))
        if memo_key in _OVERLAPS:
            return _OVERLAPS[memo_key]
        # A turn id is in one turns row only (ingest recognises a repeated turn as a duplicate), so a turn of the
        # new anchor files is not in the old ones: only the other tables' turns missing from the new anchor files
        # (a re-score, a segment detected late) can be old. Usually there is none, and the old files, which hold
        # every earlier turn of the day (~460k on a busy day), are not read at all.
        for view, paths in (("new_anchor_ids", new_anchor), ("new_ids", new_other)):
            con.execute(f"CREATE OR REPLACE VIEW {view} AS {_ids_select(paths)}")
        candidates = [r[0] for r in con.execute(load_sql("partials/unanchored_turns.sql").sql).fetchall()]
        found = 0
        if candidates and old:
            con.execute(f"CREATE OR REPLACE VIEW old_ids AS {_ids_select(old)}")
            found = int(con.execute(load_sql("partials/turn_overlap.sql").sql, {"ids": candidates}).fetchone()[0])
        if len(_OVERLAPS) >= _OVERLAPS_MAX:
            _OVERLAPS.pop(next(iter(_OVERLAPS)))
        _OVERLAPS[memo_key] = found
        return found

    def _merge(self, old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
        if list(new.columns) != list(old.columns) and len(new) and len(old):
            # A query must return the same columns every time; merging would silently drop the extra ones.
            raise ValueError(f"{self.name}: the query's columns changed ({list(old.columns)} -> {list(new.columns)})")
        if not len(new):
            return old
        if not len(old):
            return new
        # Arrow's single-threaded hash aggregation: groups in order of first appearance (old rows first), a null
        # key is a group of its own, and each group adds at most its old and its new row, so the sums are the ones
        # pandas' groupby gave, at about half its cost.
        both = pa.concat_tables([pa.Table.from_pandas(old, preserve_index=False),
                                 pa.Table.from_pandas(new, preserve_index=False)], promote_options="permissive")
        keys = [c for c in both.column_names if c not in self.sums]
        merged = both.group_by(keys, use_threads=False).aggregate([(c, "sum") for c in self.sums])
        merged = merged.rename_columns([c[:-4] if c.endswith("_sum") and c[:-4] in self.sums else c
                                        for c in merged.column_names])
        return merged.select(list(old.columns)).to_pandas()

    def _path(self, date: str) -> Path:
        return self.folder / f"{date}.parquet"

    def _load(self, date: str) -> tuple[pd.DataFrame, dict] | None:
        path = self._path(date)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid):
            return None  # none yet, or unreadable: recompute (the cache is never the only copy of anything)
        meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
        if meta.get("identity") != self.key:
            return None
        return table.to_pandas(), meta

    def _save(self, date: str, frame: pd.DataFrame, version: int, rows: dict[str, int]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = {"identity": self.key, "v": version, "rows": rows,
                "at": dt.datetime.now(dt.timezone.utc).isoformat()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
        tmp = self.folder / f".{date}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self._path(date))

    def _prune(self) -> None:
        if not self.folder.exists():
            return
        files = sorted(self.folder.glob("*.parquet"))
        for p in files[:-KEEP_DATES]:
            p.unlink(missing_ok=True)


def root(home) -> Path:
    """The folder of every `DateSums` cache of a home."""
    return home.root / "cache" / "partials"


def drop_dates(home, dates: Iterable[str] = (), before: str | None = None) -> None:
    """Delete every cache's sums of these event dates and of dates before `before` (forget, retention): the sums
    still count the deleted turns. Correctness does not need it (a day whose files changed is recomputed), but
    aggregates of erased data should not stay on disk; the next run that needs the day recomputes it."""
    dates = set(dates)
    for path in root(home).glob("*/*.parquet"):
        day = path.stem
        if day in dates or (before is not None and _DAY.match(day) and day < before):
            path.unlink(missing_ok=True)


def _ids_select(paths: list[str]) -> str:
    """A SELECT of the turn_id column of these Parquet files (no row when there is no file)."""
    return " UNION ALL ".join(f"SELECT turn_id FROM read_parquet({db.quote_literal(p)})" for p in paths) \
        or "SELECT CAST(NULL AS VARCHAR) AS turn_id WHERE false"


def _rows(files: list[tuple[str, str, int, int]]) -> dict[str, int]:
    """Rows per table of these files (the manifest's counts)."""
    out: dict[str, int] = {}
    for _, table, _, n in files:
        out[table] = out.get(table, 0) + n
    return out


def _runs(dates: list[str], chunk: int) -> list[list[str]]:
    """Consecutive dates grouped in runs of at most `chunk` (one query each)."""
    runs: list[list[str]] = []
    for d in dates:
        if runs and len(runs[-1]) < chunk and \
                dt.date.fromisoformat(d) - dt.date.fromisoformat(runs[-1][-1]) == dt.timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs
