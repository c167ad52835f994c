"""Jobs `disparity` (incremental group comparisons after scoring) and `probes` (counterfactual probe sends)."""
from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa

from monitor.db import connect
from monitor.disparity.compute import (Settings, compare, language_mismatch_table, load_counts, metric_table,
                                       truncate)
from monitor.disparity.language import detect_new_turns
from monitor.jobs import Job, JobContext
from monitor.resources import load_sql

log = logging.getLogger("monitor.jobs.disparity")

WATERMARK_KEY = "disparity.scored_at_watermark"
WINDOWS_PER_QUERY = 31


def touched_windows(con, granularity: str, since: dt.datetime | None) -> list[dt.datetime]:
    """Window starts holding turns whose scores were written after `since` (all scored windows if None)."""
    rows = con.execute(load_sql("disparity/touched_windows.sql").sql,
                       {"granularity": granularity, "since": since}).fetchall()
    return [r[0] for r in rows]


def compute_windows(home, con, windows: list[dt.datetime], job: str, run_id: str, now: dt.datetime) -> int:
    """Recompute every disparity and language-mismatch row of these windows and append them to metrics_log."""
    s = Settings.from_config(home.config)
    written = 0
    windows = sorted(set(windows))
    for i in range(0, len(windows), WINDOWS_PER_QUERY):
        chunk = windows[i:i + WINDOWS_PER_QUERY]
        results = compare(load_counts(con, s, chunk), s)
        tables = [metric_table(results, s, job, run_id, now)]
        if home.config.disparity.detect_language:
            tables.append(language_mismatch_table(con, s, chunk, job, run_id, now))
        table = pa.concat_tables(tables)
        if table.num_rows:
            written += home.lake.append("metrics_log", table)
    return written


def run_disparity(ctx: JobContext) -> int:
    """Detect languages of new turns, then recompute the windows touched by new scores or new detections."""
    home = ctx.home
    granularity = home.config.metrics.granularity
    con = connect(home)
    try:
        detected_ts: list[dt.datetime] = []
        if home.config.disparity.detect_language:
            detected_ts = detect_new_turns(home, con)
            if detected_ts:  # the connection's views predate the segments just written
                con.close()
                con = connect(home)
        since = home.state.get(WATERMARK_KEY)
        since_ts = dt.datetime.fromisoformat(since) if since else None
        # Read the new watermark from the same snapshot as the touched windows: scores committed after this
        # query are picked up by the next run.
        high = con.execute("SELECT max(scored_at) FROM scores").fetchone()[0]
        windows = set(touched_windows(con, granularity, since_ts))
        windows |= {truncate(ts, granularity) for ts in detected_ts if ts is not None}
        written = compute_windows(home, con, sorted(windows), "disparity", ctx.run_id, ctx.now) if windows else 0
        if high is not None:
            home.state.put(WATERMARK_KEY, high.isoformat())
        log.info("disparity: %d window(s) recomputed, %d rows", len(windows), written)
        return written
    finally:
        con.close()


def run_probes(ctx: JobContext) -> int:
    """Send the counterfactual probes when due (probes.interval_hours) and drop the replies in the inbox."""
    from monitor.probes.runner import run_if_due

    return run_if_due(ctx.home, ctx.now, ctx.run_id)


JOBS = [
    Job("disparity", run_disparity, depends_on=("score",),
        help="Per-group refusal / over- / under-refusal disparity with tests and BH correction."),
    Job("probes", run_probes, help="Send counterfactual identity-swap probes to the deployed model when due.",
        interval="jobs_interval_s"),
]
