"""Storage upkeep: drop long-superseded metric rows, merge small Parquet files, delete retired files after their
grace period."""
from __future__ import annotations

from monitor.jobs import Job, JobContext
from monitor.schema import TABLES


def compact(ctx: JobContext) -> int:
    """Stamp unfingerprinted files, prune metrics_log, compact every lake table, then garbage-collect old files."""
    from monitor.upkeep import prune_superseded_metrics

    ctx.home.lake.stamp_schemas()  # files of older versions: once, so readers can skip union_by_name
    prune_superseded_metrics(ctx.home, ctx.now, ctx.config.metrics.history_days)
    merged = sum(ctx.home.lake.compact(name) for name in TABLES)
    ctx.home.lake.gc()
    return merged


JOBS = [Job("compact", compact, help="merge small Parquet files; delete retired ones", interval="compact_interval_s")]
