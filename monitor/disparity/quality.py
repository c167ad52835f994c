"""Detector fairness: the refusal classifier's precision and recall per group, from reviewer labels.

An English-tuned classifier that misses refusals in Hindi makes Hindi speakers look better served than they are;
one that mistakes Hindi disclaimers for refusals invents an over-refusal disparity. Before trusting a group's
disparity, compare the classifier's quality on that group with the others here.

Labels are sparse, so the metric rows (`refusal_detector_precision`, `refusal_detector_recall`) do not follow the
day/hour windows of the other metrics: each covers the labelled turns of a rolling 30 days of event time ending
with the day of the run (granularity `30d`, window_start = that day - 29 days, window_end = the next midnight).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pandas as pd

from monitor.db import connect, scoped_manifest
from monitor.disparity.stats import wilson
from monitor.incremental import range_dates
from monitor.resources import load_sql

DETECTOR_DAYS = 30
DETECTOR_GRANULARITY = "30d"
DETECTOR_METRICS = ("refusal_detector_precision", "refusal_detector_recall")
DETECTOR_TABLES = ("turns", "scores", "segments")  # the lake tables detector_counts.sql reads


def detector_quality_by_group(home, attribute: str, min_n: int | None = None, con=None,
                              start: dt.datetime | None = None, end: dt.datetime | None = None) -> pd.DataFrame:
    """Per group of `attribute`: labelled turns, confusion counts, precision and recall with Wilson intervals."""
    own = con is None
    con = con or connect(home)
    try:
        df = detector_counts(con, [attribute], start, end).drop(columns="attribute")
    finally:
        if own:
            con.close()
    min_n = home.config.disparity.min_n if min_n is None else min_n
    conf = home.config.metrics.confidence
    pred_pos = df["tp"] + df["fp"]
    true_pos = df["tp"] + df["fn"]
    df["precision"] = (df["tp"] / pred_pos.where(pred_pos > 0)).astype(float)
    df["recall"] = (df["tp"] / true_pos.where(true_pos > 0)).astype(float)
    df["precision_low"], df["precision_high"] = wilson(df["tp"].to_numpy(), pred_pos.to_numpy(), conf)
    df["recall_low"], df["recall_high"] = wilson(df["tp"].to_numpy(), true_pos.to_numpy(), conf)
    df["small_sample"] = df["n"] < min_n
    df.insert(0, "attribute", attribute)
    return df


def detector_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The rolling window of the detector metrics: 30 days of event time ending with the day of `now`."""
    end = now.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None) + dt.timedelta(days=1)
    return end - dt.timedelta(days=DETECTOR_DAYS), end


def detector_counts(con, attributes: list[str], start: dt.datetime | None,
                    end: dt.datetime | None) -> pd.DataFrame:
    """Per attribute and group: labelled turns of [start, end) and their confusion counts, in one query."""
    date_min, date_max = range_dates(start, end)
    df = con.execute(load_sql("disparity/detector_counts.sql").sql,
                     {"attributes": list(attributes), "start": start, "end": end, "date_min": date_min,
                      "date_max": date_max}).df()
    for c in ("n", "tp", "fp", "fn", "tn"):
        df[c] = df[c].astype("int64")
    return df.rename(columns={"value": "group"})


def detector_rows(home, con, attributes: list[str], now: dt.datetime, min_n: int) -> list[dict]:
    """metrics_log rows (without job fields) of precision and recall per attribute and group over the window."""
    start, end = detector_window(now)
    conf = home.config.metrics.confidence
    if not attributes:
        return []
    counts = detector_counts(con, attributes, start, end)  # one scan of the window for every attribute
    rows = []
    for attr in attributes:
        q = counts[counts["attribute"] == attr]
        if q.empty:
            continue
        tot = q[["n", "tp", "fp", "fn", "tn"]].sum()
        for r in q.itertuples(index=False):
            for metric, k, n, k_all, n_all in (
                ("refusal_detector_precision", r.tp, r.tp + r.fp, tot.tp, tot.tp + tot.fp),
                ("refusal_detector_recall", r.tp, r.tp + r.fn, tot.tp, tot.tp + tot.fn),
            ):
                k, n = int(k), int(n)
                if n == 0:  # no predicted (precision) or true (recall) refusal in the group: undefined
                    continue
                lo, hi = wilson(k, n, conf)
                k_ref, n_ref = int(k_all) - k, int(n_all) - n
                ref = k_ref / n_ref if n_ref else None
                ref_ci = list(wilson(k_ref, n_ref, conf)) if n_ref else None
                details = {
                    "attribute": attr, "group": r.group, "n_labelled": int(r.n), "tp": int(r.tp), "fp": int(r.fp),
                    "fn": int(r.fn), "tn": int(r.tn), "reference_label": "rest of labelled traffic",
                    "reference_value": ref, "reference_n": n_ref, "reference_ci": ref_ci,
                    "gap": None if ref is None else k / n - ref, "ci": "wilson", "confidence": conf,
                    "window": f"turns of the {DETECTOR_DAYS} days ending {(end - dt.timedelta(days=1)).date()}",
                    "truth": "latest reviewer refusal_label per turn (refused = full or partial refusal)",
                    "prediction": "latest_scores.refusal", "min_n": min_n, "adverse": False,
                }
                rows.append({
                    "metric": metric, "granularity": DETECTOR_GRANULARITY, "window_start": start,
                    "window_end": end, "model": None, "deployment": None, "segment": json.dumps({attr: r.group}),
                    "value": k / n, "ci_low": lo, "ci_high": hi, "n": n, "numerator": float(k),
                    "small_sample": n < min_n, "details": json.dumps(details, default=str), "family": "disparity",
                })
    return rows


def window_manifest(manifest: dict, now: dt.datetime) -> dict:
    """The manifest restricted to the detector tables' files of the event dates of the window of `now`."""
    scoped = scoped_manifest(manifest, *range_dates(*detector_window(now)))
    return {**scoped, "tables": {t: scoped["tables"].get(t, []) for t in DETECTOR_TABLES}}


def label_fingerprint(con) -> tuple[str, list[str]]:
    """The hash of every turn's latest refusal label and the turns that have one (con holds `labels`)."""
    rows = con.execute(load_sql("disparity/label_fingerprint.sql").sql).fetchall()
    digest = hashlib.sha256("\n".join(f"{t}\t{label}" for t, label in rows).encode()).hexdigest()[:32]
    return digest, [t for t, _ in rows]
