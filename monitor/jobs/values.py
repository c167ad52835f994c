"""Job `values`: score new replies on the value dimensions, then recompute value_mean and value_coverage rows.

Scoring is incremental: only turn files committed since the last run are read (monitor/incremental.py), and a
turn is pending while it has no `value_turns` row of the loaded scorer's version (sql/values/pending.sql), so a new
scorer version or plugin config re-scores every turn once. From 20,000 new turns (MIN_PARALLEL) the batches are
scored in one forked process per CPU (`classifiers.workers`, as in the score job) and committed in order. Each batch
commits its `value_scores`, `value_turns` and `value_evidence` rows in one lake transaction, so an interrupted run
keeps what it finished and never leaves half a batch. The refusal probability of the latest `scores` row is passed
to the scorer when the score job has one (the `refusal` dimension), and the user message gets its topic
(monitor/values/topics.py) for the drift job.

Metrics are event-time and incremental like refusal_metrics: the windows holding turns processed since the last
run (value_turns files newer than its watermark) are recomputed. Their sums come from monitor.partials.DateSums:
value_means.sql and coverage.sql are sums over turns per group, so each date's rows (all of its windows) are kept
between runs and a run adds only its new turns' rows, instead of reading the whole day again (a re-score, a late
segment for an old turn or a new scorer version recomputes the day from all its rows). Metric rows (family `values`):

- ``value_mean``: one row per dimension and group; the dimension is part of the key through the segment JSON
  (``{"dimension": "moralizing"}``, ``{"dimension": "moralizing", "language": "hi"}``) and repeated in details, so
  the `metrics` view keeps one row per dimension and alert rules can match the metric name exactly. value = mean
  score of scored replies, 95% t interval cut at 0 (none when every score is equal), n = scored replies, numerator =
  replies with a score above zero.
- ``value_coverage``: share of replies the lexicons could score, Wilson interval, n = all replies, numerator = scored
  replies, details = count per unscored reason. A language-mix shift shows up here, not as value drift.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import multiprocessing
import os

import pandas as pd
import pyarrow as pa

from monitor.db import scope_views, scoped_connect
from monitor.incremental import Delta, date_windows, metric_attributes, segment_attributes, touched_windows
from monitor.jobs import Job, JobContext
from monitor.jobs.score import score_in_order, worker_count
from monitor.partials import DateSums
from monitor.resources import load_sql
from monitor.schema import METRICS as METRICS_TABLE
from monitor.state import utcnow
from monitor.stats import t_quantiles, wilson
from monitor.values import load_scorer
from monitor.values.store import build_tables, finite, no_spread
from monitor.values.topics import load_topics

log = logging.getLogger("monitor.jobs.values")

STATE_KEY = "values.state"
TURNS_WATERMARK_KEY = "values.turns_watermark"
METRICS_WATERMARK_KEY = "values.metrics_watermark"
INPUTS = ("value_turns", "segments")  # a window is recomputed when any of these gets rows for it
BATCH_ROWS = 20_000
# From this many new turns the replies are scored in forked workers. Below it one process is faster: scoring 10k
# replies costs ~0.5 CPU-s in-process, while forking the job's large process, workers each building their own
# per-word cache and the pool's shutdown cost ~0.3-0.5 s wall and ~0.7 CPU-s more (140k home, 10k new turns:
# values job 5.3-7.0 s wall / 1.9-2.3 CPU-s in-process vs 6.1-8.7 s / 2.5-3.2 CPU-s with two workers, load ~9).
MIN_PARALLEL = 20_000
LOGIC_VERSION = 3  # bump when the metric computation changes, to recompute every window once
METRIC_NAMES = ("value_mean", "value_coverage")
# The cached sums of each metric query: cache name, SQL file, the date-partitioned tables it reads (`turns` first,
# see monitor.partials) and its additive columns (every other output column is a group key).
PARTIALS = (
    ("values.means", "values/value_means.sql", ("turns", "value_scores", "segments"),
     ("n", "total", "total_sq", "nonzero")),
    ("values.coverage", "values/coverage.sql", ("turns", "value_turns", "segments"),
     ("n", "scored", "empty", "too_short", "non_english")),
)


_SCORERS: dict[str, object] = {}  # plugin config (and terms files' stat) -> scorer, kept across runs of a worker


def configured_scorer(home):
    """The value scorer with the home's configured plugin dimensions (`values.dimensions`)."""
    dims = home.config.values.dimensions or None
    # A long-running worker keeps its scorer between runs: no lexicon re-read, and the matcher's per-word cache
    # stays warm. A terms file's size and mtime are part of the key, so editing it builds a new scorer.
    stamps = []
    for spec in dims or []:
        path = spec.get("terms_file") if isinstance(spec, dict) else None
        if isinstance(path, str):
            try:
                st = os.stat(path)
            except OSError:
                return load_scorer(dims)  # load_scorer reports the missing file
            stamps.append((os.path.abspath(path), st.st_size, st.st_mtime_ns))
    key = json.dumps([dims, stamps], sort_keys=True, default=str)
    scorer = _SCORERS.get(key)
    if scorer is None:
        scorer = load_scorer(dims)
        if len(_SCORERS) >= 4:
            _SCORERS.clear()
        _SCORERS[key] = scorer
    return scorer


def _score_batch(scorer, topics, rows: list[tuple]) -> dict[str, pa.Table]:
    """The value_scores / value_turns / value_evidence tables of one batch of sql/values/pending.sql rows."""
    refusal = [math.nan if r[3] is None else float(r[3]) for r in rows]
    res = scorer.score([r[2] for r in rows], refusal_scores=refusal)
    topic, terms = topics.assign([r[1] for r in rows])
    # Processing time, not ctx.now: the metrics watermark orders by it (see refusal_metrics).
    return build_tables([r[0] for r in rows], [r[4] for r in rows], res, topic, terms, utcnow())


_WORKER: tuple | None = None  # (scorer, topics) of a forked scoring worker, inherited from the parent, never pickled


def _init_worker(scorer, topics) -> None:
    global _WORKER
    _WORKER = (scorer, topics)


def _score_in_worker(rows: list[tuple]) -> dict[str, pa.Table]:
    return _score_batch(*_WORKER, rows)


def score_pending(ctx: JobContext, scorer=None, batch_rows: int = BATCH_ROWS,
                  min_parallel: int = MIN_PARALLEL) -> int:
    """Score every turn not yet processed by this scorer version; returns the number of turns processed."""
    home = ctx.home
    scorer = scorer or configured_scorer(home)
    topics = load_topics()
    delta = Delta.open(home, TURNS_WATERMARK_KEY, scorer.version)
    dates = delta.dates("turns")
    if dates is None:
        return 0
    # Batches are scored in forked processes (`classifiers.workers`, as the score job does) when enough turns are
    # new, and committed in order; each reply's scores do not depend on its batch, so the rows are the same.
    pending = sum(e["rows"] for e in delta.entries("turns"))  # an upper bound: some may be processed already
    n_workers = worker_count(home, "lexical", pending, min_parallel)
    if n_workers:  # every worker gets a share even of a small run
        batch_rows = max(1, min(batch_rows, -(-pending // n_workers)))
    # Fork before DuckDB starts its threads; workers inherit the loaded scorer and topic model.
    pool = multiprocessing.get_context("fork").Pool(n_workers, _init_worker, (scorer, topics)) if n_workers else None
    # Views over the new turns' dates only: every query below is bounded by them, so history costs nothing.
    con = scoped_connect(home, delta.manifest, dates)
    done = 0

    def commit(tables: dict[str, pa.Table], n_rows: int) -> None:
        nonlocal done
        with home.lake.transaction() as tx:
            for name, table in tables.items():
                tx.add(name, table)
        done += n_rows
        log.info("value-scored %d turns (%d so far)", n_rows, done)

    try:
        delta.view(con, "turns")
        cur = con.execute(load_sql("values/pending.sql").sql, {"scorer_version": scorer.version,
                                                                "date_min": dates[0], "date_max": dates[1]})
        score_in_order(cur, batch_rows, pool, n_workers, lambda rows: _score_batch(scorer, topics, rows),
                       lambda rows: ((rows,), _score_in_worker), commit)
    finally:
        con.close()
        if pool is not None:
            pool.terminate()
    delta.save(TURNS_WATERMARK_KEY, scorer.version)
    return done


def attributes(home, con, manifest: dict, cfg) -> list[str]:
    """Segment attributes to break value metrics down by (metrics.segment_attributes / exclude_attributes)."""
    return metric_attributes(segment_attributes(home, con, manifest), cfg)


def _none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def segment_json(attr, value, dimension: str | None = None) -> str:
    """The segment key of a metric row: user attribute (if any) plus the value dimension (if any)."""
    seg = {}
    if dimension is not None:
        seg["dimension"] = dimension
    if _none(attr) is not None:
        seg[attr] = value
    return json.dumps(seg, sort_keys=True)


MEAN_COLUMNS = ("window_start", "window_end", "model", "deployment", "seg_attribute", "seg_value", "dimension",
                "family", "n", "total", "total_sq", "nonzero")
COVERAGE_COLUMNS = ("window_start", "window_end", "model", "deployment", "seg_attribute", "seg_value", "n", "scored",
                    "empty", "too_short", "non_english")


def mean_rows(df, confidence: float, min_n: int, scorer_version: str) -> list[dict]:
    """value_mean rows from the output of sql/values/value_means.sql (mean, t interval, sd, share non-zero)."""
    rows = []
    columns = _columns(df, MEAN_COLUMNS)
    quantiles = t_quantiles([int(n) for n in columns[8]], confidence)  # one scipy call for all rows
    segments: dict = {}
    for ws, we, model, deployment, attr, value, dimension, family, n, total, total_sq, nonzero in zip(*columns):
        n = int(n)
        if n <= 0:
            continue
        mean = float(total) / n
        var = max(float(total_sq) - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.nan
        sd = math.sqrt(var) if n > 1 else math.nan
        flat = n > 1 and no_spread(mean, sd)
        if n > 1 and not flat:
            half = quantiles[n] * sd / math.sqrt(n)
            # No score is below 0 (lexicon rates, the refusal probability): nor is the mean, whatever the t
            # interval of a mostly-zero score says (-0.02 for 1 match in 150 replies).
            lo, hi = max(mean - half, 0.0), mean + half
        else:
            lo = hi = None
        details = {"dimension": dimension, "family": family, "ci": "t", "confidence": confidence,
                   "sd": finite(sd), "share_nonzero": int(nonzero) / n, "scorer_version": scorer_version,
                   "unit": "refusal probability" if dimension == "refusal" else "weighted matches per 100 tokens"}
        if flat:
            details["ci_note"] = "every score equal: no interval (a t interval would claim certainty)"
        seg_key = (attr, value, dimension)
        segment = segments.get(seg_key)
        if segment is None:
            segment = segments[seg_key] = segment_json(*seg_key)
        rows.append({
            "metric": "value_mean", "window_start": ws, "window_end": we, "model": _none(model),
            "deployment": _none(deployment), "segment": segment,
            "value": mean, "ci_low": finite(lo), "ci_high": finite(hi), "n": n,
            "numerator": float(nonzero), "small_sample": n < min_n, "details": json.dumps(details),
        })
    return rows


def _columns(df, names: tuple[str, ...]) -> list[list]:
    """The columns of `df` as Python lists, the two window columns as datetimes (converted once per distinct value)."""
    # Column lists instead of df.to_dict("records"): the same Python values without a dict and a pandas Timestamp
    # per row and column (a run of the 140k home turns ~7k rows into metric rows).
    out = []
    for name in names:
        col = df[name]
        if name in ("window_start", "window_end"):
            if pd.api.types.is_datetime64_any_dtype(col.dtype):
                codes, uniques = pd.factorize(col, use_na_sentinel=False)
                when = [ts.to_pydatetime() for ts in uniques]
                out.append([when[c] for c in codes.tolist()])
            else:
                cache: dict = {}
                out.append([_pydatetime(cache, ts) for ts in col.tolist()])
        else:
            out.append(col.tolist())
    return out


def _pydatetime(cache: dict, ts):
    """ts.to_pydatetime(), once per distinct timestamp."""
    out = cache.get(ts)
    if out is None:
        out = cache[ts] = ts.to_pydatetime()
    return out


def coverage_rows(df, confidence: float, min_n: int, scorer_version: str) -> list[dict]:
    """value_coverage rows from the output of sql/values/coverage.sql (share scored, Wilson interval)."""
    rows = []
    columns = _columns(df, COVERAGE_COLUMNS)
    # One vectorised Wilson call; element by element it is the scalar call's arithmetic.
    lows, highs = wilson([int(k) for k in columns[7]], [int(n) for n in columns[6]], confidence) \
        if columns[6] else ([], [])
    for (ws, we, model, deployment, attr, value, n, k, empty, too_short, non_english), lo, hi in \
            zip(zip(*columns), lows, highs):
        n, k = int(n), int(k)
        if n <= 0:
            continue
        details = {"ci": "wilson", "confidence": confidence, "scorer_version": scorer_version,
                   "unscored": {"empty": int(empty), "too_short": int(too_short), "non_english": int(non_english)}}
        rows.append({
            "metric": "value_coverage", "window_start": ws, "window_end": we, "model": _none(model),
            "deployment": _none(deployment), "segment": segment_json(attr, value),
            "value": k / n, "ci_low": float(lo), "ci_high": float(hi), "n": n, "numerator": float(k),
            "small_sample": n < min_n, "details": json.dumps(details),
        })
    return rows


def retired_rows(con, rows: list[dict], granularity: str, windows: list, metrics: tuple[str, ...]) -> list[dict]:
    """n = 0 rows for keys published before in these windows but absent now, so the `metrics` view drops them."""
    fresh = {(r["metric"], r["window_start"], r["model"], r["deployment"], r["segment"]) for r in rows}
    old = con.execute(load_sql("jobs/existing_keys.sql").sql,
                      {"family": "values", "granularity": granularity, "windows": windows, "all_metrics": False,
                       "metrics": list(metrics)}).fetchall()
    out = []
    for metric, ws, we, model, deployment, segment in old:
        if (metric, ws, model, deployment, segment) not in fresh:
            out.append({"metric": metric, "granularity": granularity, "window_start": ws, "window_end": we,
                        "model": model, "deployment": deployment, "segment": segment, "value": None, "n": 0,
                        "small_sample": True,
                        "details": json.dumps({"note": "no data left in this group after recomputation"})})
    return out


def window_sums(home, manifest: dict, windows: list[dt.datetime], granularity: str, attrs: list[str],
                scorer_version: str) -> tuple[list, dict]:
    """The rows of value_means.sql and coverage.sql for `windows`, from per-date sums extended with new turns."""
    frames, stats = [], {}
    for name, sql_file, tables, sums in PARTIALS:
        sql = load_sql(sql_file).sql
        # Everything the cached rows depend on besides the lake (confidence and min_n only shape the metric rows).
        identity = {"v": LOGIC_VERSION, "g": granularity, "a": attrs, "s": scorer_version, "sql": sql}

        def query(con, date_min: str, date_max: str, sql=sql):
            # Every window of these dates (a cached day must hold all of them), not only the touched ones.
            return con.execute(sql, {"granularity": granularity, "attributes": attrs, "scorer_version": scorer_version,
                                     "windows": date_windows(date_min, date_max, granularity),
                                     "date_min": date_min, "date_max": date_max}).df()

        ds = DateSums(home, name, identity, tables, sums)
        frames.append(ds.windows(manifest, windows, query))
        stats[name] = ds.stats
    return frames, stats


def write_metrics(home, rows: list[dict], job: str, run_id: str) -> int:
    """Append metric rows (family `values`) to metrics_log in one commit."""
    if not rows:
        return 0
    computed_at = utcnow()
    for r in rows:
        r.update(job=job, run_id=run_id, computed_at=computed_at, family="values")
    home.lake.append(METRICS_TABLE.name, pa.Table.from_pylist(rows, schema=METRICS_TABLE.schema))
    return len(rows)


def run_values(ctx: JobContext, scorer=None, batch_rows: int = BATCH_ROWS, min_parallel: int = MIN_PARALLEL) -> int:
    """Score pending turns, then recompute value_mean / value_coverage for touched windows; returns rows written."""
    home = ctx.home
    scorer = scorer or configured_scorer(home)
    scored = score_pending(ctx, scorer, batch_rows, min_parallel)
    cfg = home.config.metrics
    granularity = cfg.granularity
    manifest = home.lake.manifest()
    con = scoped_connect(home, manifest, None)  # lake views once the dates are known (scope_views below)
    try:
        attrs = attributes(home, con, manifest, cfg)
        fp = hashlib.sha256(json.dumps({"v": LOGIC_VERSION, "g": granularity, "a": attrs, "c": cfg.confidence,
                                        "s": scorer.version, "m": cfg.min_n}, sort_keys=True).encode()).hexdigest()[:16]
        delta = Delta.open(home, METRICS_WATERMARK_KEY, fp, manifest=manifest)
        dates = delta.dates(*INPUTS)
        # The windows to recompute hold turns of the new input files' dates, and every query below is bounded by
        # those windows: views over these partitions only, so a run costs the same whatever the history.
        if dates is not None:
            scope_views(con, home, manifest, *dates)
        windows = touched_windows(con, delta, INPUTS, granularity)
        if not windows:
            log.info("values: %d turns scored, no window to recompute", scored)
            delta.save(METRICS_WATERMARK_KEY, fp)
            return 0
        (means, cover), stats = window_sums(home, manifest, windows, granularity, attrs, scorer.version)
        rows = mean_rows(means, cfg.confidence, cfg.min_n, scorer.version)
        rows += coverage_rows(cover, cfg.confidence, cfg.min_n, scorer.version)
        for r in rows:
            r["granularity"] = granularity
        rows += retired_rows(con, rows, granularity, windows, METRIC_NAMES)
    finally:
        con.close()
    n = write_metrics(home, rows, "values", ctx.run_id)
    delta.save(METRICS_WATERMARK_KEY, fp)
    home.state.put(STATE_KEY, {"fingerprint": fp, "windows_last_run": len(windows),
                               "scorer_version": scorer.version, "partials": stats})
    log.info("values: %d turns scored, %d metric rows over %d windows (dates per path: %s)", scored, n,
             len(windows), stats)
    return n


JOBS = [Job("values", run_values, depends_on=("score", "languages"),
            help="Score replies on the value dimensions (with evidence) and compute value_mean / value_coverage.")]
