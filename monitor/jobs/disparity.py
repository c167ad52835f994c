"""Jobs `languages` (detected language of new turns), `disparity` (incremental group comparisons after scoring)
and `probes` (counterfactual probe sends).

Language detection runs before every metrics job, so the `detected_language` segment exists when they break
windows down by segment. The disparity job recomputes the windows holding turns with new scores, value scores or
segments (one watermark in `kv`, see monitor/incremental.py) from group counts kept per date and extended with the
new turns' counts (monitor/partials.py), and writes the refusal detector's per-group precision and
recall over a rolling 30 days when reviewer labels exist and a label, a row of a labelled turn in that window
(turn, score, segment) or the day changed since it last did.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

import pyarrow as pa

from monitor.disparity.compute import (Settings, apply_bh, compare_rates, compare_values, metric_table,
                                       mismatch_table, partial_inputs, partial_rows, resolve_attributes, to_arrow)
from monitor.disparity.language import detect_new_turns
from monitor.disparity.quality import (DETECTOR_TABLES, detector_rows, detector_window, label_fingerprint,
                                      window_manifest)
from monitor.db import scope_views, scoped_connect
from monitor.incremental import Delta, LabelledFiles, range_dates, segment_attributes, touched_windows
from monitor.jobs import Job, JobContext
from monitor.resources import load_sql
from monitor.state import utcnow

log = logging.getLogger("monitor.jobs.disparity")

WATERMARK_KEY = "disparity.watermark"
INPUTS = ("scores", "value_turns", "segments")  # a window is recomputed when any of these gets rows for it
IDENTITY = "4"  # bump when the disparity computation changes, to recompute every window once
DETECTOR_KEY = "disparity.detector_fingerprint"
DETECTOR_VERSION = "3"  # bump when the detector rows' computation changes, to recompute them once
DATES_PER_QUERY = 31  # windows are computed in chunks of this many event dates (31 day windows, 744 hour windows)


def watermark_identity(cfg) -> str:
    """IDENTITY and every setting the rows depend on: changing one (min_n, fdr, reference group...) recomputes
    every window once, so stored verdicts never mix old and new settings."""
    d, m = cfg.disparity, cfg.metrics
    blob = json.dumps({"v": IDENTITY, "granularity": m.granularity, "confidence": m.confidence,
                       "exclude": list(m.exclude_attributes), "attributes": list(d.attributes),
                       "reference_group": dict(d.reference_group), "intersections": [list(x) for x in d.intersections],
                       "max_groups": d.max_groups_per_attribute, "min_n": d.min_n, "fdr": d.fdr,
                       "detect_language": d.detect_language}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def compute_windows(home, manifest: dict, windows: list[dt.datetime], job: str, run_id: str, now: dt.datetime,
                    present: list[str]) -> int:
    """Recompute every rate, value and language-mismatch disparity row of these windows into metrics_log."""
    # `now` stamps computed_at, which the `metrics` view orders by: processing time, not an injected clock, so a
    # later run always wins over an earlier one (run_id only breaks ties, and is random).
    s = Settings.from_config(home.config, present)
    written = 0
    by_date: dict[dt.date, list[dt.datetime]] = {}
    for w in sorted(set(windows)):
        by_date.setdefault(w.date(), []).append(w)
    dates = list(by_date)
    for i in range(0, len(dates), DATES_PER_QUERY):
        # Whole dates per chunk: the per-date sums of a date are read once, not once for each chunk its hours
        # fall in.
        chunk = [w for d in dates[i:i + DATES_PER_QUERY] for w in by_date[d]]
        # The group counts are additive over turns: per-date sums cached by monitor.partials, extended with the
        # new turns' counts (a day is recomputed from all its rows only when extending would be wrong).
        counts, values, stats = partial_inputs(home, manifest, s, chunk, IDENTITY)
        # Rates and value dimensions form one BH family per window and source, so both are always recomputed.
        results = compare_rates(counts, s) + compare_values(values, s)
        apply_bh(results, s.fdr)
        tables = [metric_table(results, s, job, run_id, now)]
        if home.config.disparity.detect_language:
            mismatch, stats["language"] = partial_rows(home, manifest, s, chunk, "language", IDENTITY)
            tables.append(mismatch_table(mismatch, s, job, run_id, now))
        log.info("disparity: per-date sums %s", stats)
        table = pa.concat_tables(tables)
        if table.num_rows:
            written += home.lake.append("metrics_log", table)
    return written


def write_detector_rows(home, con, manifest: dict, job: str, run_id: str, now: dt.datetime,
                        present: list[str]) -> int:
    """Write per-group refusal-detector precision/recall rows when labels exist and something they depend on changed."""
    # The rows depend on the window, the settings, every turn's latest refusal label, and the turns, latest scores
    # and segments of the labelled turns in the window's files. Most runs only add rows of unlabelled turns, which
    # leave them alone (monitor.incremental.LabelledFiles: the check reads only the files committed since).
    s = Settings.from_config(home.config, present)
    attrs = resolve_attributes(s)
    labels, labelled = label_fingerprint(con)
    identity = {"v": DETECTOR_VERSION, "window": detector_window(now)[0].isoformat(), "attributes": attrs,
                "min_n": s.min_n, "confidence": home.config.metrics.confidence, "labels": labels,
                "sql": [load_sql(f"disparity/{f}.sql").sql for f in ("detector_counts", "label_fingerprint")]}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    files = LabelledFiles.of(home.lake.root, window_manifest(manifest, now), DETECTOR_TABLES)
    saved = home.state.get(DETECTOR_KEY) or {}
    state = files.state(key)
    if files.unchanged(con, saved, key, labelled):
        if saved != state:
            home.state.put(DETECTOR_KEY, state)  # checked up to this version: the next run reads only newer files
        return 0
    # No refusal label at all: no row to compute.
    rows = detector_rows(home, con, attrs, now, s.min_n) if labelled else []
    for r in rows:
        r.update(job=job, run_id=run_id, computed_at=utcnow())  # processing time, as in compute_windows
    written = home.lake.append("metrics_log", to_arrow(rows)) if rows else 0
    home.state.put(DETECTOR_KEY, state)
    return written


def run_languages(ctx: JobContext) -> int:
    """Detect the language of new turns' user messages (when `disparity.detect_language`); returns turns detected."""
    if not ctx.home.config.disparity.detect_language:
        return 0
    return len(detect_new_turns(ctx.home))


def run_disparity(ctx: JobContext) -> int:
    """Recompute the disparity rows of the windows holding turns with new scores, value scores or segments."""
    home = ctx.home
    granularity = home.config.metrics.granularity
    manifest = home.lake.manifest()
    # Lake views come once the dates are known (scope_views below); reviewer labels and the review queue (which
    # labels are a random sample) are all the state it reads.
    con = scoped_connect(home, manifest, None, state=("labels", "review_queue"))
    try:
        present = segment_attributes(home, con, manifest)
        identity = watermark_identity(home.config)
        delta = Delta.open(home, WATERMARK_KEY, identity, manifest=manifest)
        # Every query reads turns of the touched windows (which lie in the new input files' dates) or of the
        # detector's rolling window: views over those partitions only, so a run costs the same whatever the history.
        lo, hi = range_dates(*detector_window(ctx.now))
        dates = delta.dates(*INPUTS)
        if dates is not None:
            lo, hi = min(lo, dates[0]), max(hi, dates[1])
        scope_views(con, home, manifest, lo, hi)
        windows = touched_windows(con, delta, INPUTS, granularity)
        written = compute_windows(home, manifest, windows, "disparity", ctx.run_id, utcnow(), present) if windows \
            else 0
        delta.save(WATERMARK_KEY, identity)
        # After the windows (the detector check reads the new files on its own).
        written += write_detector_rows(home, con, manifest, "disparity", ctx.run_id, ctx.now, present)
        log.info("disparity: %d window(s) recomputed, %d rows", len(windows), written)
        return written
    finally:
        con.close()


def run_probes(ctx: JobContext) -> int:
    """Send the counterfactual probes when due (probes.interval_hours) and drop the replies in the inbox."""
    from monitor.probes.runner import run_if_due

    return run_if_due(ctx.home, ctx.now, ctx.run_id)


JOBS = [
    Job("languages", run_languages, depends_on=("ingest_inbox",),
        help="Detect the language of new user messages (segment detected_language), before the metrics jobs."),
    # After `values` too, so value disparities are computed from the value scores of the same run.
    Job("disparity", run_disparity, depends_on=("score", "values"),
        help="Per-group refusal / over- / under-refusal and value-dimension disparity with tests and BH correction."),
    Job("probes", run_probes, help="Send counterfactual identity-swap probes to the deployed model when due.",
        interval="jobs_interval_s"),
]
