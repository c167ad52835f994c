"""Detector fairness: the refusal classifier's precision and recall per group, from reviewer labels.

An English-tuned classifier that misses refusals in Hindi makes Hindi speakers look better served than they are;
one that mistakes Hindi disclaimers for refusals invents an over-refusal disparity. Before trusting a group's
disparity, compare the classifier's quality on that group with the others here.
"""
from __future__ import annotations

import pandas as pd

from monitor.db import connect
from monitor.disparity.stats import wilson
from monitor.resources import load_sql


def detector_quality_by_group(home, attribute: str, min_n: int | None = None, con=None) -> pd.DataFrame:
    """Per group of `attribute`: labelled turns, confusion counts, precision and recall with Wilson intervals."""
    own = con is None
    con = con or connect(home)
    try:
        df = con.execute(load_sql("disparity/detector_quality.sql").sql, {"attribute": attribute}).df()
    finally:
        if own:
            con.close()
    min_n = home.config.disparity.min_n if min_n is None else min_n
    conf = home.config.metrics.confidence
    for c in ("n", "tp", "fp", "fn", "tn"):
        df[c] = df[c].astype("int64")
    pred_pos = df["tp"] + df["fp"]
    true_pos = df["tp"] + df["fn"]
    df["precision"] = (df["tp"] / pred_pos.where(pred_pos > 0)).astype(float)
    df["recall"] = (df["tp"] / true_pos.where(true_pos > 0)).astype(float)
    df["precision_low"], df["precision_high"] = wilson(df["tp"].to_numpy(), pred_pos.to_numpy(), conf)
    df["recall_low"], df["recall_high"] = wilson(df["tp"].to_numpy(), true_pos.to_numpy(), conf)
    df["small_sample"] = df["n"] < min_n
    df.insert(0, "attribute", attribute)
    return df.rename(columns={"value": "group"})
