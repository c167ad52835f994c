"""Read only what is new: the lake files committed after a job's watermark (a manifest version).

Every manifest entry records `v`, the commit that made it visible (a compacted or rewritten file keeps the newest
`v` of the files it replaced). A job keeps in `kv` the manifest version its last successful run read, together
with an identity (classifier or scorer version, settings): when the identity changes, everything is new again.
`Delta.view(con, "turns")` creates the view `new_turns` over exactly the files committed since then, so a run
reads the new data plus the date partitions it touches, never the whole history. Rows read twice (a compacted
file mixing old and new rows, a run that crashed before saving its watermark) are harmless: every consumer also
checks what it already wrote.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from monitor.db import _table_select, quote_ident
from monitor.home import Home
from monitor.schema import TABLES

_DATE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)")


@dataclass
class Delta:
    """The lake files of one manifest committed after version `since` (None: all of them)."""

    home: Home
    manifest: dict
    since: int | None

    @classmethod
    def open(cls, home: Home, key: str, identity: str, manifest: dict | None = None) -> "Delta":
        """The watermark saved under `key` (ignored when `identity` changed) against `manifest` (default: now)."""
        manifest = manifest if manifest is not None else home.lake.manifest()
        saved = home.state.get(key) or {}
        since = saved.get("v") if saved.get("identity") == identity else None
        return cls(home, manifest, since)

    @property
    def version(self) -> int:
        return self.manifest["version"]

    def entries(self, table: str) -> list[dict]:
        return [e for e in self.manifest["tables"].get(table, []) if self.since is None or e.get("v", 0) > self.since]

    def dates(self, *tables: str) -> tuple[str, str] | None:
        """The first and last event date among the new files of date-partitioned tables (None if no new file)."""
        found = sorted({m.group(1) for t in tables for e in self.entries(t) if (m := _DATE.search(e["path"]))})
        return (found[0], found[-1]) if found else None

    def view(self, con, table: str, name: str | None = None) -> str:
        """Create (or replace) view `new_<table>` over the new files of `table`; returns the view's name."""
        name = name or f"new_{table}"
        entries = self.entries(table)
        files = [self.home.lake.root / e["path"] for e in entries]
        fp = TABLES[table].fingerprint
        uniform = all(e.get("s") == fp for e in entries)
        con.execute(f"CREATE OR REPLACE VIEW {quote_ident(name)} AS {_table_select(TABLES[table], files, uniform)}")
        return name

    def inputs_view(self, con, tables: tuple[str, ...]) -> None:
        """Create view `new_inputs` (turn_id, date): the rows of `tables` committed since the watermark, the input
        of sql/jobs/touched_windows.sql."""
        parts = []
        for t in tables:
            name = self.view(con, t)
            parts.append(f"SELECT turn_id, date FROM {quote_ident(name)}")
        con.execute(f"CREATE OR REPLACE VIEW new_inputs AS {' UNION ALL '.join(parts)}")

    def save(self, key: str, identity: str) -> None:
        """Record that everything up to this manifest version is processed."""
        self.home.state.put(key, {"v": self.version, "identity": identity})


@dataclass(frozen=True)
class LabelledFiles:
    """The lake files a result about reviewer-labelled turns is read from (per table, the manifest entries of the
    event dates it reads), and whether the labelled turns' rows in them changed since the result was computed."""

    # Labelled turns are spread over the whole history, so a result about them costs what the history costs. Most
    # runs only add rows of unlabelled turns: the result still holds while the files committed up to the saved
    # version hold the rows they held (a deletion or a compaction merging old rows with new ones changes them) and
    # no file committed since holds a row of a labelled turn (a re-score, a late segment, a labelled turn ingested
    # after its label). The second check reads only the new files' turn ids, so it costs what the new turns cost.
    # The identity is the caller's (settings, SQL text, labels); it keeps state() next to its result.
    root: Path
    entries: dict[str, list[dict]]
    version: int

    @classmethod
    def of(cls, root: Path, manifest: dict, tables: tuple[str, ...], dates=None) -> "LabelledFiles":
        """The files of `tables` in `manifest` (only those of the event dates `dates`, if given)."""
        def keep(e: dict) -> bool:
            return dates is None or ((m := _DATE.search(e["path"])) is not None and m.group(1) in dates)

        return cls(root, {t: [e for e in manifest["tables"].get(t, []) if keep(e)] for t in tables},
                   manifest["version"])

    def rows(self, upto: int | None = None) -> dict[str, int]:
        """Rows per table in these files (only those committed up to version `upto`, if given)."""
        return {t: sum(e["rows"] for e in es if upto is None or e.get("v", 0) <= upto)
                for t, es in self.entries.items()}

    def state(self, identity: str) -> dict:
        """What to save with a result of this identity computed from these files (version and rows per table)."""
        return {"identity": identity, "v": self.version, "rows": self.rows()}

    def committed_after(self, since: int) -> dict[str, list[Path]]:
        """Per table, the files committed after version `since`."""
        return {t: [self.root / e["path"] for e in es if e.get("v", 0) > since] for t, es in self.entries.items()}

    def touched(self, con, since: int, turn_ids) -> bool:
        """Whether a file committed after version `since` holds a row of one of the turns `turn_ids` (read through
        DuckDB connection `con`, whose views are left alone)."""
        # One query on the caller's connection: a fresh connection costs ~16 ms, each query ~5 ms.
        ids = sorted(turn_ids)
        new = [paths for paths in self.committed_after(since).values() if paths]
        if not ids or not new:
            return False
        params = {f"p{i}": [str(p) for p in paths] for i, paths in enumerate(new)}
        files = " UNION ALL ".join(f"SELECT turn_id FROM read_parquet(${k}, union_by_name = true)" for k in params)
        # fetchall (of at most one row): a result left unfinished would refuse the caller's next register().
        return bool(con.execute(f"SELECT 1 FROM ({files}) WHERE turn_id IN (SELECT unnest($ids)) LIMIT 1",
                                {**params, "ids": ids}).fetchall())

    def unchanged(self, con, saved: dict | None, identity: str, turn_ids) -> bool:
        """Whether a result saved with `saved` (a state()) still holds: the same identity, the files committed up to
        its version hold the rows they held, and none committed since holds a row of one of the turns `turn_ids`."""
        saved = saved or {}
        since = saved.get("v")
        return (saved.get("identity") == identity and since is not None and self.rows(since) == saved.get("rows")
                and not self.touched(con, since, turn_ids))


def range_dates(start: dt.datetime | None, end: dt.datetime | None) -> tuple[str, str]:
    """The first and last event date ('YYYY-MM-DD') of [start, end): partition pruning bounds (None: unbounded)."""
    first = start.strftime("%Y-%m-%d") if start else "0001-01-01"
    last = (end - dt.timedelta(microseconds=1)).strftime("%Y-%m-%d") if end else "9999-12-31"
    return first, last


def window_length(granularity: str) -> dt.timedelta:
    """Length of one metrics window ('hour' or 'day')."""
    return dt.timedelta(hours=1) if granularity == "hour" else dt.timedelta(days=1)


def date_windows(date_min: str, date_max: str, granularity: str) -> list[dt.datetime]:
    """Every window start of the event dates [date_min, date_max] ('YYYY-MM-DD'; 24 per date for hour windows)."""
    first, last = dt.date.fromisoformat(date_min), dt.date.fromisoformat(date_max)
    days = [dt.datetime.combine(first + dt.timedelta(days=i), dt.time()) for i in range((last - first).days + 1)]
    if granularity != "hour":
        return days
    return [d + dt.timedelta(hours=h) for d in days for h in range(24)]


def date_bounds(windows: list[dt.datetime], granularity: str) -> tuple[str, str]:
    """The first and last event date ('YYYY-MM-DD') covered by these windows: the partition pruning bounds."""
    return range_dates(min(windows), max(windows) + window_length(granularity))


def touched_windows(con, delta: Delta, tables: tuple[str, ...], granularity: str) -> list[dt.datetime]:
    """The event-time windows holding turns with rows of `tables` committed since `delta`'s watermark."""
    from monitor.resources import load_sql

    dates = delta.dates(*tables)
    if dates is None:
        return []
    delta.inputs_view(con, tables)
    rows = con.execute(load_sql("jobs/touched_windows.sql").sql,
                       {"granularity": granularity, "date_min": dates[0], "date_max": dates[1]}).fetchall()
    return [r[0] for r in rows]


ATTRIBUTES_KEY = "segments.attributes"


def segment_attributes(home: Home, con, manifest: dict) -> list[str]:
    """Every segment attribute in the lake, kept in `kv` and updated from the segment files committed since."""
    from monitor.resources import load_sql

    saved = home.state.get(ATTRIBUTES_KEY) or {}
    delta = Delta(home, manifest, saved.get("v"))
    known = set(saved.get("attributes", []))
    if delta.entries("segments"):
        delta.view(con, "segments")
        known |= {r[0] for r in con.execute(load_sql("jobs/segment_attributes.sql").sql).fetchall()}
        home.state.put(ATTRIBUTES_KEY, {"v": delta.version, "attributes": sorted(known)})
    return sorted(known)


def metric_attributes(present: list[str], cfg) -> list[str]:
    """The attributes metrics break windows down by: `metrics.segment_attributes`, else all but the excluded."""

    def bare(a: str) -> str:
        return a.split(".", 1)[1] if a.startswith("user.") else a

    if cfg.segment_attributes:
        wanted = set(cfg.segment_attributes)
        return [a for a in present if a in wanted or bare(a) in wanted]
    excluded = set(cfg.exclude_attributes)
    return [a for a in present if a not in excluded and bare(a) not in excluded]
