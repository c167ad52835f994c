"""Job `ingest_inbox`: ingest new files dropped into the home's inbox folders (each file once, by content hash)."""
from __future__ import annotations

from monitor.jobs import Job, JobContext


def ingest_inbox(ctx: JobContext) -> int:
    """Ingest every inbox file not seen before and return the number of turns ingested."""
    from monitor.ingest import ingest_paths

    dirs = [d for d in ctx.home.inbox_dirs() if d.is_dir()]
    if not dirs:
        return 0
    summary = ingest_paths(ctx.home, dirs, source="production", now=ctx.now)
    return summary.ingested


JOBS = [Job("ingest_inbox", ingest_inbox, help="Ingest new files from the inbox folders (skips files seen before).",
            interval="ingest_interval_s")]
