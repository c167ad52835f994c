"""Storage upkeep beyond file compaction: superseded metric rows are dropped from `metrics_log` after a while.

Each run of a metrics job appends a complete set of rows for every window it recomputes, and view `metrics` shows
only the newest per key. Kept forever, the superseded rows would make `metrics_log` (and every dashboard query over
it) grow with the number of runs instead of the data. `prune_superseded_metrics` rewrites each `metrics_log`
partition without the rows superseded more than `metrics.history_days` ago, in one lake commit; the newest row of
every key always stays, so the `metrics` view is unchanged. Drafts (computations of a window still in progress,
superseded before it ended: each run rewrites today's windows with the day so far) go after DRAFT_GRACE: kept the
history period, they were nearly all of the log (bench/soak.py: 623,439 rows after 21 runs, 137,019 current).
"""
from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import duckdb

from monitor.home import Home
from monitor.lake import sort_for_storage, write_parquet
from monitor.resources import load_sql
from monitor.schema import METRICS, schema_fingerprint


PRUNED_KEY = "upkeep.metrics_rows_after_prune"
GROWTH = 1.25  # prune once metrics_log holds this many times the rows it kept at the last pruning
DRAFT_GRACE = dt.timedelta(hours=1)  # a draft stays this long after a newer computation of its open window


def prune_superseded_metrics(home: Home, now: dt.datetime, history_days: float, force: bool = False) -> int:
    """Drop metric rows superseded before `now - history_days`; returns how many rows were dropped."""
    # Pruning reads all of metrics_log, so it runs only after the log grew by a quarter: its cost per new row
    # stays constant however long the history.
    total = home.lake.row_count(METRICS.name)
    last = home.state.get(PRUNED_KEY)
    if not force and last is not None and total < last * GROWTH:
        return 0
    cutoff = now - dt.timedelta(days=history_days)
    sql = load_sql("jobs/metrics_kept.sql").sql
    dropped = 0
    with home.lake.transaction() as tx:
        groups: dict[str, list[dict]] = {}
        for e in tx.manifest["tables"].get(METRICS.name, []):
            groups.setdefault(str(Path(e["path"]).parent), []).append(e)
        con = duckdb.connect(":memory:")
        try:
            for folder, entries in groups.items():
                files = [str(home.lake.root / e["path"]) for e in entries]
                kept = con.sql(sql, params={"files": files, "cutoff": cutoff,
                                            "draft_cutoff": max(cutoff, now - DRAFT_GRACE)}).to_arrow_table()
                kept = kept.drop_columns([c for c in METRICS.partition if c in kept.column_names])
                if kept.num_rows == sum(e["rows"] for e in entries):
                    continue
                tmp = home.lake.tmp_dir / f"{uuid.uuid4().hex}.parquet"
                kept = sort_for_storage(kept, METRICS)
                write_parquet(kept, tmp, compression="zstd", row_group_size=METRICS.row_group_rows)
                rel = Path(folder, f"part-{uuid.uuid4().hex}.parquet")
                os.replace(tmp, home.lake.root / rel)
                # The newest commit of the inputs, as compaction does: nothing here is new data.
                tx.pending.setdefault(METRICS.name, []).append(
                    {"path": str(rel), "rows": kept.num_rows, "s": schema_fingerprint(kept.schema),
                     "v": max(e.get("v", 0) for e in entries)})
                tx.remove(METRICS.name, [e["path"] for e in entries])
                dropped += sum(e["rows"] for e in entries) - kept.num_rows
        finally:
            con.close()
    home.state.put(PRUNED_KEY, total - dropped)
    return dropped
