"""Jobs `disparity` (incremental group comparisons after scoring) and `probes` (counterfactual probe sends).

The disparity job recomputes the windows touched by new classifier scores or new value scores (two watermarks
in `kv`), and writes the refusal detector's per-group precision and recall over a rolling 30 days when reviewer
labels exist and labels, scores or the day changed since it last did.
"""
from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa

from monitor.db import connect
from monitor.disparity.compute import (Settings, apply_bh, compare_rates, compare_values, language_mismatch_table,
                                       load_inputs, metric_table, resolve_attributes, to_arrow, truncate)
from monitor.disparity.language import detect_new_turns
from monitor.disparity.quality import detector_rows, detector_window, label_fingerprint
from monitor.jobs import Job, JobContext
from monitor.resources import load_sql

log = logging.getLogger("monitor.jobs.disparity")

WATERMARK_KEY = "disparity.scored_at_watermark"
VALUE_WATERMARK_KEY = "disparity.value_scored_at_watermark"
DETECTOR_KEY = "disparity.detector_fingerprint"
WINDOWS_PER_QUERY = 31


def touched_windows(con, granularity: str, since: dt.datetime | None) -> list[dt.datetime]:
    """Window starts holding turns whose scores were written after `since` (all scored windows if None)."""
    rows = con.execute(load_sql("disparity/touched_windows.sql").sql,
                       {"granularity": granularity, "since": since}).fetchall()
    return [r[0] for r in rows]


def value_touched_windows(con, granularity: str, since: dt.datetime | None) -> list[dt.datetime]:
    """Window starts holding turns whose value scores were written after `since` (all if None)."""
    rows = con.execute(load_sql("disparity/value_touched_windows.sql").sql,
                       {"granularity": granularity, "since": since}).fetchall()
    return [r[0] for r in rows]


def compute_windows(home, con, windows: list[dt.datetime], job: str, run_id: str, now: dt.datetime) -> int:
    """Recompute every rate, value and language-mismatch disparity row of these windows into metrics_log."""
    s = Settings.from_config(home.config)
    written = 0
    windows = sorted(set(windows))
    for i in range(0, len(windows), WINDOWS_PER_QUERY):
        chunk = windows[i:i + WINDOWS_PER_QUERY]
        counts, values = load_inputs(con, s, chunk)
        # Rates and value dimensions form one BH family per window and source, so both are always recomputed.
        results = compare_rates(counts, s) + compare_values(values, s)
        apply_bh(results, s.fdr)
        tables = [metric_table(results, s, job, run_id, now)]
        if home.config.disparity.detect_language:
            tables.append(language_mismatch_table(con, s, chunk, job, run_id, now))
        table = pa.concat_tables(tables)
        if table.num_rows:
            written += home.lake.append("metrics_log", table)
    return written


def write_detector_rows(home, con, job: str, run_id: str, now: dt.datetime) -> int:
    """Write per-group refusal-detector precision/recall rows when labels exist and something changed."""
    s = Settings.from_config(home.config)
    attrs = resolve_attributes(con, s)
    fingerprint = {"window": detector_window(now)[0].isoformat(), "attributes": attrs,
                   "inputs": label_fingerprint(con), "min_n": s.min_n}
    if home.state.get(DETECTOR_KEY) == fingerprint:
        return 0
    rows = detector_rows(home, con, attrs, now, s.min_n)
    for r in rows:
        r.update(job=job, run_id=run_id, computed_at=now)
    written = home.lake.append("metrics_log", to_arrow(rows)) if rows else 0
    home.state.put(DETECTOR_KEY, fingerprint)
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
        vsince = home.state.get(VALUE_WATERMARK_KEY)
        vhigh = con.execute("SELECT max(scored_at) FROM value_turns").fetchone()[0]
        windows = set(touched_windows(con, granularity, since_ts))
        windows |= set(value_touched_windows(con, granularity, dt.datetime.fromisoformat(vsince) if vsince else None))
        windows |= {truncate(ts, granularity) for ts in detected_ts if ts is not None}
        written = compute_windows(home, con, sorted(windows), "disparity", ctx.run_id, ctx.now) if windows else 0
        if high is not None:
            home.state.put(WATERMARK_KEY, high.isoformat())
        if vhigh is not None:
            home.state.put(VALUE_WATERMARK_KEY, vhigh.isoformat())
        written += write_detector_rows(home, con, "disparity", ctx.run_id, ctx.now)
        log.info("disparity: %d window(s) recomputed, %d rows", len(windows), written)
        return written
    finally:
        con.close()


def run_probes(ctx: JobContext) -> int:
    """Send the counterfactual probes when due (probes.interval_hours) and drop the replies in the inbox."""
    from monitor.probes.runner import run_if_due

    return run_if_due(ctx.home, ctx.now, ctx.run_id)


JOBS = [
    # After `values` too, so value disparities are computed from the value scores of the same run.
    Job("disparity", run_disparity, depends_on=("score", "values"),
        help="Per-group refusal / over- / under-refusal and value-dimension disparity with tests and BH correction."),
    Job("probes", run_probes, help="Send counterfactual identity-swap probes to the deployed model when due.",
        interval="jobs_interval_s"),
]
