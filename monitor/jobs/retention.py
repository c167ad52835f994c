"""Job `retention`: drop lake partitions older than ``ingest.retention_days`` (off by default), once a day.

Whatever the period, it also deletes rows left about turns that no longer exist (`sweep_orphans`): a `score` run
that started before a `monitor forget` may commit scores for the deleted turns after it. The sweep reads every
turn-keyed table, so it runs only while a deletion is recent (the audit log has a `user.forget` or
`retention.apply` entry since the sweep before last): orphans can only appear in the minutes after one.
"""
from __future__ import annotations

import logging

from monitor.jobs import Job, JobContext
from monitor.retention import apply_retention, sweep_orphans

log = logging.getLogger("monitor.jobs.retention")


def retention(ctx: JobContext) -> int:
    """Apply the configured retention period at the job's clock and sweep orphan rows; returns the lake rows deleted."""
    days = ctx.config.ingest.retention_days
    dropped = 0
    if days:
        summary = apply_retention(ctx.home, ctx.now, days, actor="worker")
        log.info("retention: %s", summary.line())
        dropped = sum(n for t, n in summary.rows.items() if t in summary.files)
    swept = sweep_orphans(ctx.home, actor="worker") if _deleted_since_last_sweep(ctx.home) else {}
    if swept:
        log.info("retention: deleted rows of turns that no longer exist: %s", swept)
    return dropped + sum(swept.values())


SWEEP_KEY = "retention.sweeps"


def _deleted_since_last_sweep(home) -> bool:
    """Whether a deletion was audited after the sweep before the last one (so one more sweep follows each)."""
    rows = home.state.query("SELECT max(id) AS id FROM audit_log WHERE action IN ('user.forget', 'retention.apply')")
    last_delete = (rows[0]["id"] or 0) if rows else 0
    sweeps = home.state.get(SWEEP_KEY) or []  # audit-log id seen at each of the last two sweeps
    home.state.put(SWEEP_KEY, (sweeps + [last_delete])[-2:])
    return not sweeps or last_delete > sweeps[0]


JOBS = [Job("retention", retention, interval="retention_interval_s",
            help="drop data older than ingest.retention_days (0 = keep forever); delete rows of deleted turns")]
