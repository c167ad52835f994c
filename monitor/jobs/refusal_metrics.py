"""Job `refusal_metrics`: refusal, over-/under-refusal, partial share, volume and thumbs-down per window.

Event-time and incremental: the job recomputes exactly the windows that contain turns scored since its
watermark (the newest `scored_at` it has processed, kept in `kv`). A late-ingested turn is scored late, so the
old window it belongs to is recomputed from all of its turns and yields the same numbers a live run would have.
The first run, a change of granularity or segment attributes, and a change in the classifiers' measured error
rates (new reviewer labels) recompute every window. The watermark is safe as long as one `score` job writes at a
time, as `monitor jobs run` and the worker do: its batches commit in `scored_at` order.

Each rate row carries n, numerator, a Wilson interval at `metrics.confidence` and `small_sample = n <
metrics.min_n`. Over- and under-refusal also carry `corrected` values from the two-classifier correction in
monitor/stats.py, with sensitivity/specificity from reviewer labels when a classifier has at least
`LABELS_MIN_PER_CLASS` labelled items of each class, else from the classifiers' own evaluation on the shared
data (`clf.quality()`); `details` records which source, the rates and their sample sizes.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math

import pyarrow as pa

from monitor.db import connect
from monitor.jobs import Job, JobContext
from monitor.resources import load_sql
from monitor.schema import METRICS as METRICS_TABLE
from monitor.state import utcnow
from monitor.stats import DEFAULT_DRAWS, ErrorRates, correct_many, wilson

log = logging.getLogger("monitor.jobs.refusal_metrics")

STATE_KEY = "refusal_metrics.state"
LABELS_MIN_PER_CLASS = 30
LOGIC_VERSION = 1  # bump when the computation changes, to recompute every window once


def _rates_from_labels(row: dict, prefix: str) -> ErrorRates | None:
    pos, neg = int(row[f"{prefix}_pos"] or 0), int(row[f"{prefix}_neg"] or 0)
    if pos >= LABELS_MIN_PER_CLASS and neg >= LABELS_MIN_PER_CLASS:
        return ErrorRates(int(row[f"{prefix}_tp"]), pos, int(row[f"{prefix}_tn"]), neg, "labels")
    return None


def _rates_from_quality(q: dict | None) -> ErrorRates | None:
    if not q:
        return None
    try:
        return ErrorRates.from_rates(float(q["sensitivity"]), float(q["specificity"]), int(q["n_pos"]),
                                     int(q["n_neg"]), "shared_eval")
    except (KeyError, TypeError, ValueError):
        return None


def error_rates(con, home, clf=None) -> tuple[ErrorRates | None, ErrorRates | None, dict]:
    """(harm, refusal) error rates for the correction: reviewer labels where enough, else the shared evaluation."""
    row = con.execute(load_sql("jobs/refusal_label_rates.sql").sql).df().iloc[0].to_dict()
    harm = _rates_from_labels(row, "harm")
    refusal = _rates_from_labels(row, "refusal")
    note = {"labels": {k: int(v) for k, v in row.items()}}
    if harm is None or refusal is None:
        try:
            if clf is None:
                from monitor.jobs.score import load_configured_classifiers

                clf = load_configured_classifiers(home)
            quality = clf.quality() or {}
        except Exception as e:  # no correction is better than no metrics: record why and go on
            log.warning("no classifier quality available for the correction: %s", e)
            quality, note["quality_error"] = {}, f"{type(e).__name__}: {e}"
        harm = harm or _rates_from_quality(quality.get("harm"))
        refusal = refusal or _rates_from_quality(quality.get("refusal"))
    return harm, refusal, note


def _attributes(con, cfg) -> list[str]:
    present = [r[0] for r in con.execute(load_sql("jobs/refusal_segment_attributes.sql").sql).fetchall()]
    excluded = set(cfg.exclude_attributes)

    def bare(a: str) -> str:
        return a.split(".", 1)[1] if a.startswith("user.") else a

    if cfg.segment_attributes:
        wanted = set(cfg.segment_attributes)
        return [a for a in present if a in wanted or bare(a) in wanted]
    return [a for a in present if a not in excluded and bare(a) not in excluded]


def _fingerprint(granularity: str, attributes: list[str], harm, refusal, confidence: float) -> str:
    blob = json.dumps({"v": LOGIC_VERSION, "g": granularity, "a": attributes, "c": confidence,
                       "h": harm.as_dict() if harm else None, "r": refusal.as_dict() if refusal else None},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _segment(attr, value) -> str:
    if attr is None or (isinstance(attr, float) and math.isnan(attr)):
        return "{}"
    return json.dumps({attr: value})


def _none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def build_rows(df, granularity: str, confidence: float, min_n: int, harm, refusal,
               draws: int = DEFAULT_DRAWS) -> list[dict]:
    """Metric rows (without run metadata) from the output of sql/metrics/refusal_rates.sql."""
    rows: list[dict] = []
    if df.empty:
        return rows
    tables = df[["benign_complied", "benign_refused", "harmful_complied", "harmful_refused"]].to_numpy(float)
    corrections = correct_many(tables, harm, refusal, confidence, draws) if harm and refusal else None
    correction_info = {
        "method": "two_classifier_inversion",
        "assumption": "classifier errors independent given the truth",
        "draws": draws,
        "harm": harm.as_dict() if harm else None,
        "refusal": refusal.as_dict() if refusal else None,
    }
    for i, rec in enumerate(df.to_dict("records")):
        key = {
            "granularity": granularity,
            "window_start": rec["window_start"].to_pydatetime(),
            "window_end": rec["window_end"].to_pydatetime(),
            "model": _none(rec["model"]),
            "deployment": _none(rec["deployment"]),
            "segment": _segment(rec["seg_attribute"], rec["seg_value"]),
        }
        n = int(rec["n"])
        table = [[int(rec["benign_complied"]), int(rec["benign_refused"])],
                 [int(rec["harmful_complied"]), int(rec["harmful_refused"])]]
        benign_n, harmful_n = sum(table[0]), sum(table[1])
        specs = [
            ("turn_count", n, n, None),
            ("refusal_rate", int(rec["refusals"]), n, None),
            ("partial_refusal_share", int(rec["partial_refusals"]), int(rec["refusals"]), None),
            ("over_refusal_rate", table[0][1], benign_n, "over"),
            ("under_refusal_rate", table[1][0], harmful_n, "under"),
            ("thumbs_down_rate", int(rec["thumbs_down"]), int(rec["feedback_n"]), None),
        ]
        for metric, k, denom, corr in specs:
            if denom <= 0:
                continue
            details: dict = {"ci": "wilson", "confidence": confidence}
            row = {**key, "metric": metric, "n": denom, "numerator": float(k), "small_sample": denom < min_n}
            if metric == "turn_count":
                row.update(value=float(n), ci_low=None, ci_high=None)
                details = {"unit": "turns"}
            else:
                lo, hi = wilson(k, denom, confidence)
                row.update(value=k / denom, ci_low=lo, ci_high=hi)
            if corr:
                details["observed_table"] = {"benign": {"complied": table[0][0], "refused": table[0][1]},
                                             "harmful": {"complied": table[1][0], "refused": table[1][1]}}
                details["correction"] = correction_info
                if corrections is not None:
                    est = getattr(corrections[i], corr)
                    row.update(corrected=_f(est.value), corrected_ci_low=_f(est.low),
                               corrected_ci_high=_f(est.high))
                    if row["corrected"] is None:
                        details["correction_note"] = "not identifiable from these counts"
                else:
                    details["correction_note"] = "no error rates for one of the classifiers"
            row["details"] = json.dumps(details, default=str)
            rows.append(row)
    return rows


def _retired(con, rows: list[dict], granularity: str, windows: list[dt.datetime]) -> list[dict]:
    """Rows with n = 0 for keys published before but absent now, so the `metrics` view stops showing them."""
    fresh = {(r["metric"], r["window_start"], r["model"], r["deployment"], r["segment"]) for r in rows}
    q = load_sql("jobs/refusal_existing_keys.sql")
    old = con.execute(q.sql, {"granularity": granularity, "windows": windows}).fetchall()
    out = []
    for metric, ws, we, model, deployment, segment in old:
        if (metric, ws, model, deployment, segment) not in fresh:
            out.append({"metric": metric, "granularity": granularity, "window_start": ws, "window_end": we,
                        "model": model, "deployment": deployment, "segment": segment, "value": None, "n": 0,
                        "numerator": 0.0, "small_sample": True,
                        "details": json.dumps({"note": "no data left in this group after recomputation"})})
    return out


def run_refusal_metrics(ctx: JobContext, clf=None, draws: int = DEFAULT_DRAWS) -> int:
    """Recompute the refusal metrics of every window touched since the watermark; returns rows written."""
    home = ctx.home
    cfg = home.config.metrics
    granularity = cfg.granularity
    con = connect(home)
    try:
        attributes = _attributes(con, cfg)
        harm, refusal, label_note = error_rates(con, home, clf)
        fp = _fingerprint(granularity, attributes, harm, refusal, cfg.confidence)
        state = home.state.get(STATE_KEY, {}) or {}
        since = state.get("watermark") if state.get("fingerprint") == fp else None
        touched = con.execute(
            load_sql("jobs/refusal_touched_windows.sql").sql,
            {"granularity": granularity, "since": dt.datetime.fromisoformat(since) if since else None},
        ).fetchall()
        if not touched:
            return 0
        windows = [r[0] for r in touched]
        watermark = max(r[1] for r in touched)
        df = con.execute(load_sql("metrics/refusal_rates.sql").sql,
                         {"granularity": granularity, "windows": windows, "attributes": attributes}).df()
        rows = build_rows(df, granularity, cfg.confidence, cfg.min_n, harm, refusal, draws)
        rows += _retired(con, rows, granularity, windows)
    finally:
        con.close()
    computed_at = utcnow()  # processing time: the `metrics` view keeps the newest computation of a key
    for r in rows:
        r.update(job="refusal_metrics", run_id=ctx.run_id, computed_at=computed_at, family="refusal")
    if rows:
        data = pa.Table.from_pylist(rows, schema=METRICS_TABLE.schema)
        home.lake.append(METRICS_TABLE.name, data)
    home.state.put(STATE_KEY, {"watermark": watermark.isoformat(), "fingerprint": fp,
                               "windows_last_run": len(windows), "labels": label_note["labels"]})
    log.info("refusal metrics: %d rows over %d windows", len(rows), len(windows))
    return len(rows)


JOBS = [Job("refusal_metrics", run_refusal_metrics, depends_on=("score",),
            help="Refusal, over-/under-refusal (raw and error-corrected), partial share, volume per window.")]


def metric_names() -> list[str]:
    """The metric names this job writes (each registered in monitor/metrics.py)."""
    return ["turn_count", "refusal_rate", "partial_refusal_share", "over_refusal_rate", "under_refusal_rate",
            "thumbs_down_rate"]



