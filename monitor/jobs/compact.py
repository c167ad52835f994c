"""Storage upkeep: merge small Parquet files and delete retired ones after their grace period."""
from __future__ import annotations

from monitor.jobs import Job, JobContext
from monitor.schema import TABLES


def compact(ctx: JobContext) -> int:
    """Compact every lake table, then garbage-collect files no reader can still be using."""
    merged = sum(ctx.home.lake.compact(name) for name in TABLES)
    ctx.home.lake.gc()
    return merged


JOBS = [Job("compact", compact, help="merge small Parquet files; delete retired ones", interval="compact_interval_s")]
