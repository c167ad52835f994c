"""value_mean / value_coverage row builders and the cached scorer equal their previous versions exactly.

mean_rows and coverage_rows read column lists instead of df.to_dict("records"); the reference below is the code as
it was before (commit 7c9db74). Frames carry the edge cases the SQL and monitor.partials produce: n of 0, 1 and 2,
a zero variance, missing model/deployment/segment (None and NaN), the refusal dimension, several windows, the
dtypes a frame has after a Parquet round trip, and window columns of object dtype.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os

import numpy as np
import pandas as pd
import pytest

import monitor.jobs.values as values_job
from monitor.home import Home
from monitor.jobs.values import configured_scorer, coverage_rows, mean_rows, segment_json
from monitor.partials import normalized
from monitor.stats import t_quantiles, wilson
from monitor.values.store import finite


# --- frozen reference (do not optimise) ------------------------------------------------------------------------

def _none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def ref_mean_rows(df, confidence, min_n, scorer_version):
    rows = []
    records = df.to_dict("records")
    quantiles = t_quantiles([int(rec["n"]) for rec in records], confidence)
    for rec in records:
        n = int(rec["n"])
        if n <= 0:
            continue
        mean = float(rec["total"]) / n
        var = max(float(rec["total_sq"]) - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.nan
        sd = math.sqrt(var) if n > 1 else math.nan
        # Since LOGIC_VERSION 2: no interval when every score is equal (rounding can leave a tiny sd).
        flat = n > 1 and (sd == 0 or sd <= 1e-6 * abs(mean))
        if n > 1 and not flat:
            half = quantiles[n] * sd / math.sqrt(n)
            lo, hi = max(mean - half, 0.0), mean + half  # since LOGIC_VERSION 3: cut at 0
        else:
            lo = hi = None
        details = {"dimension": rec["dimension"], "family": rec["family"], "ci": "t", "confidence": confidence,
                   "sd": finite(sd), "share_nonzero": int(rec["nonzero"]) / n, "scorer_version": scorer_version,
                   "unit": "refusal probability" if rec["dimension"] == "refusal" else "weighted matches per 100 tokens"}
        if flat:
            details["ci_note"] = "every score equal: no interval (a t interval would claim certainty)"
        rows.append({
            "metric": "value_mean", "window_start": rec["window_start"].to_pydatetime(),
            "window_end": rec["window_end"].to_pydatetime(), "model": _none(rec["model"]),
            "deployment": _none(rec["deployment"]),
            "segment": segment_json(rec["seg_attribute"], rec["seg_value"], rec["dimension"]),
            "value": mean, "ci_low": finite(lo), "ci_high": finite(hi), "n": n,
            "numerator": float(rec["nonzero"]), "small_sample": n < min_n, "details": json.dumps(details),
        })
    return rows


def ref_coverage_rows(df, confidence, min_n, scorer_version):
    rows = []
    records = df.to_dict("records")
    lows, highs = wilson([int(rec["scored"]) for rec in records], [int(rec["n"]) for rec in records], confidence) \
        if records else ([], [])
    for rec, lo, hi in zip(records, lows, highs):
        n, k = int(rec["n"]), int(rec["scored"])
        if n <= 0:
            continue
        details = {"ci": "wilson", "confidence": confidence, "scorer_version": scorer_version,
                   "unscored": {r: int(rec[r]) for r in ("empty", "too_short", "non_english")}}
        rows.append({
            "metric": "value_coverage", "window_start": rec["window_start"].to_pydatetime(),
            "window_end": rec["window_end"].to_pydatetime(), "model": _none(rec["model"]),
            "deployment": _none(rec["deployment"]), "segment": segment_json(rec["seg_attribute"], rec["seg_value"]),
            "value": k / n, "ci_low": float(lo), "ci_high": float(hi), "n": n, "numerator": float(k),
            "small_sample": n < min_n, "details": json.dumps(details),
        })
    return rows


# --- frames ----------------------------------------------------------------------------------------------------

def _keys(rng, n_rows):
    starts = [dt.datetime(2026, 11, 25) + dt.timedelta(hours=h) for h in (0, 1, 5, 23, 24)]
    ws = [starts[i] for i in rng.integers(0, len(starts), n_rows)]
    models = ["assistant", "assistant-b", None, float("nan")]
    attrs = [(None, None), (float("nan"), float("nan")), ("language", "hi"), ("language", "en"), ("plan", "pro")]
    rows = []
    for i in range(n_rows):
        attr, value = attrs[i % len(attrs)]
        rows.append({"window_start": ws[i], "window_end": ws[i] + dt.timedelta(hours=1),
                     "model": models[i % 4], "deployment": models[(i // 4) % 4],
                     "seg_attribute": attr, "seg_value": value})
    return rows


def mean_frame(seed=0, n_rows=600):
    rng = np.random.default_rng(seed)
    rows = _keys(rng, n_rows)
    dims = [("moralizing", "normative"), ("care_virtue", "moral"), ("refusal", "normative")]
    for i, r in enumerate(rows):
        n = int(rng.choice([0, 1, 2, 3, 40, 5000]))
        scores = rng.exponential(1.5, n) * (rng.random(n) < 0.6)
        if i % 9 == 0 and n:
            scores[:] = 2.5  # zero variance: total_sq - n * mean^2 may round below zero
        r.update(dimension=dims[i % 3][0], family=dims[i % 3][1], n=n, total=float(scores.sum()),
                 total_sq=float((scores * scores).sum()), nonzero=int((scores > 0).sum()))
    return pd.DataFrame(rows)


def coverage_frame(seed=0, n_rows=400):
    rng = np.random.default_rng(seed)
    rows = _keys(rng, n_rows)
    for r in rows:
        n = int(rng.choice([0, 1, 2, 7, 900]))
        bad = rng.multinomial(int(rng.integers(0, n + 1)), [0.2, 0.3, 0.5]) if n else [0, 0, 0]
        r.update(n=n, scored=n - int(sum(bad)), empty=int(bad[0]), too_short=int(bad[1]), non_english=int(bad[2]))
    return pd.DataFrame(rows)


def variants(frame):
    """The frame as built, after a Parquet round trip (as monitor.partials returns it), and with object windows."""
    as_objects = frame.copy()
    for col in ("window_start", "window_end"):
        as_objects[col] = pd.Series([pd.Timestamp(x) for x in frame[col]], dtype=object)
    return {"built": frame, "parquet": normalized(frame), "object_windows": as_objects, "empty": frame.iloc[0:0]}


@pytest.mark.parametrize("variant", ["built", "parquet", "object_windows", "empty"])
def test_mean_rows_equal_reference(variant):
    frame = variants(mean_frame(seed=1))[variant]
    got = mean_rows(frame, 0.95, 30, "values-x")
    assert got == ref_mean_rows(frame, 0.95, 30, "values-x")
    assert variant == "empty" or {type(r["window_start"]) for r in got} == {dt.datetime}


@pytest.mark.parametrize("variant", ["built", "parquet", "object_windows", "empty"])
def test_coverage_rows_equal_reference(variant):
    frame = variants(coverage_frame(seed=2))[variant]
    got = coverage_rows(frame, 0.9, 30, "values-x")
    assert got == ref_coverage_rows(frame, 0.9, 30, "values-x")
    assert variant == "empty" or len(got) > 100


def test_configured_scorer_is_kept_until_its_config_or_terms_file_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(values_job, "_SCORERS", {})
    terms = tmp_path / "kitchen.txt"
    terms.write_text("bread\noven\n", encoding="utf-8")
    plugin = (f'[[values.dimensions]]\nname = "kitchen_talk"\nfamily = "cultural"\n'
              f'terms_file = "{terms.as_posix()}"\n')
    (tmp_path / "monitor.toml").write_text(plugin)
    home = Home.open(tmp_path)
    first = configured_scorer(home)
    assert configured_scorer(home) is first
    text = ["Knead the dough, then bake the bread and the rolls in a hot oven for twenty minutes."]
    before = first.score(text).scores.loc[0, "kitchen_talk"]
    terms.write_text("bread\noven\nbake\ndough\n", encoding="utf-8")
    os.utime(terms, ns=(terms.stat().st_atime_ns, terms.stat().st_mtime_ns + 10**9))
    second = configured_scorer(home)
    assert second is not first
    assert second.score(text).scores.loc[0, "kitchen_talk"] == pytest.approx(before * 2)
    other = tmp_path / "other"
    other.mkdir()
    assert configured_scorer(Home.open(other)).version != second.version  # no plugins: another scorer


def test_value_mean_of_scores_all_equal_has_no_interval():
    w = dt.datetime(2026, 11, 25)
    frame = pd.DataFrame([
        {"window_start": w, "window_end": w + dt.timedelta(days=1), "model": None, "deployment": None,
         "seg_attribute": None, "seg_value": None, "dimension": d, "family": "normative", "n": n, "total": tot,
         "total_sq": sq, "nonzero": nz}
        for d, n, tot, sq, nz in (("moralizing", 790, 0.0, 0.0, 0),  # 790 zeros
                                  ("hedging", 5000, 12500.0, 31250.0, 5000),  # 5,000 scores of 2.5
                                  ("disclaimer", 4, 4.0, 8.0, 2))])  # 0, 0, 2, 2: mean 1, sd 1.1547
    rows = {json.loads(r["segment"])["dimension"]: r for r in mean_rows(frame, 0.95, 30, "values-x")}
    for dim, mean in (("moralizing", 0.0), ("hedging", 2.5)):
        r = rows[dim]
        # Not "0.000 (95% CI 0.000-0.000), n=790": nothing in 790 zeros bounds the mean above 0.
        assert r["value"] == mean and r["ci_low"] is None and r["ci_high"] is None and r["n"] in (790, 5000)
        assert "no interval" in json.loads(r["details"])["ci_note"]
    d = rows["disclaimer"]
    # t(0.975, 3) = 3.1824: half width 3.1824 * 1.1547 / 2 = 1.8374; 1 - 1.8374 < 0, and no mean of scores >= 0 is.
    assert d["ci_low"] == 0.0 and d["ci_high"] == pytest.approx(1 + 1.8374, abs=1e-4)
    assert "ci_note" not in json.loads(d["details"])
