"""baseline_model drift: the reweighted reference holds copies of replies, and a copy is not new evidence."""
import datetime as dt
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from monitor.jobs import value_drift as V
from monitor.values import drift as D

W = dt.datetime(2026, 11, 10)


def test_copying_every_reply_adds_no_evidence():
    ref = np.array([1.0] * 12 + [0.0] * 48)  # 20% of replies moralize
    cur = np.array([1.0] * 80 + [0.0] * 120)  # 40%
    effect, p, n_eff = D.mean_shift_weighted(ref, np.full(60, 5.0), cur)
    # Five copies of each of 60 replies are 60 replies' evidence: the same numbers as the 60 replies once.
    assert n_eff == pytest.approx(60)
    assert (effect, p) == pytest.approx(D.mean_shift(ref, cur), rel=1e-9)
    # The copies taken as 300 independent replies claim far more certainty.
    assert p > D.ALPHA and D.mean_shift(np.repeat(ref, 5), cur)[1] < p / 1000


def test_effective_n_is_kish():
    # Weights 4, 1, 1, 1, 1: (sum w)^2 / sum w^2 = 64 / 20 = 3.2.
    assert D.mean_shift_weighted([1.0, 0.0, 2.0, 0.0, 1.0], [4, 1, 1, 1, 1], [0.0, 1.0, 2.0])[2] == pytest.approx(3.2)


def _frame():
    """Baseline A: 990 bread replies (moralizing 0) and 10 crime replies, one moralizing (2.0). Model B: 150 of
    each topic, and on crime questions it moralizes in half its replies."""
    rows = []
    for i in range(990):
        rows.append(("A", "bread", 0.0))
    for i in range(10):
        rows.append(("A", "crime", 2.0 if i == 0 else 0.0))
    for i in range(150):
        rows.append(("B", "bread", 0.0))
        rows.append(("B", "crime", 2.0 if i % 2 else 0.0))
    return pd.DataFrame({"turn_id": [f"t{i}" for i in range(len(rows))], "window_start": W,
                         "model": [r[0] for r in rows], "topic": [r[1] for r in rows],
                         "prompt_category": "benign", "scored": True, "moralizing": [r[2] for r in rows]})


def _rows(min_n, frame=None, method=None):
    cfg = SimpleNamespace(reference="baseline_model", reference_days=7, baseline_model="A", baseline_start=None,
                          baseline_end=None)
    ref = V.Reference(cfg, "day")
    segs = pd.DataFrame(columns=["turn_id", "attribute", "value"])
    rows = V.compute(_frame() if frame is None else frame, segs, [W], ref, ["moralizing"], {"moralizing": "normative"},
                     method, None, min_n, "day")
    return [r for r in rows if r["metric"] == "value_drift"]


def test_baseline_model_counts_the_reference_by_its_effective_size():
    (row,) = _rows(min_n=100)
    d = json.loads(row["details"])
    # The 1,000 reference rows become 500 bread rows (500 of the 990 bread replies once) and 500 crime rows (the
    # 10 crime replies copied 50 times each): Kish n = 1000^2 / (500 + 10 x 50^2) = 39.2.
    w = np.array([1.0] * 500 + [50.0] * 10)
    kish = w.sum() ** 2 / (w ** 2).sum()
    assert d["reference"]["effective_n"] == pytest.approx(kish, abs=0.05) and kish == pytest.approx(39.2, abs=0.1)
    assert d["n_reference"] == round(kish) and d["reference"]["replies"] == 510 and d["reference"]["copies"] == 1000
    assert d["reference"]["reweighting"] == D.COPIES and d["reference"]["baseline_replies"] == 1000
    # 39 effective replies are below min_n: reported, not a verdict.
    assert row["small_sample"] and not d["drift_detected"]


def test_baseline_model_p_value_is_that_of_the_effective_sample():
    (row,) = _rows(min_n=20)
    d = json.loads(row["details"])
    # Independent computation: the reference as 39 replies with its weighted mean, spread and non-zero share.
    w = np.array([1.0] * 500 + [50.0] * 10)
    x = np.array([0.0] * 500 + [2.0] + [0.0] * 9)
    n = round(w.sum() ** 2 / (w ** 2).sum())
    mean = (w * x).sum() / w.sum()
    m2 = n * (w * (x - mean) ** 2).sum() / w.sum()
    pos = round(n * w[x > 0].sum() / w.sum())
    cur = np.array([0.0] * 150 + [2.0 if i % 2 else 0.0 for i in range(150)])
    want = D.mean_shift_stats([n], [mean], [m2], [pos], [True], [300], [cur.mean()],
                              [((cur - cur.mean()) ** 2).sum()], [(cur > 0).sum()], [True])
    assert d["effect_size"] == pytest.approx(want[0][0], rel=1e-9)
    assert d["p_value"] == pytest.approx(want[1][0], rel=1e-9)
    # B moralizes more on crime questions, but one moralizing crime reply of A's copied 51 times is weak evidence
    # of how A answers them: not the p < 1e-4 the 1,000 copies taken as replies would claim.
    assert d["p_value"] > D.ALPHA and not d["drift_detected"]
    assert D.mean_shift(np.repeat(x, w.astype(int)), cur)[1] < D.ALPHA


def test_effect_interval_hand_numbers():
    # d = 0.5 from 100 and 100 replies: se = sqrt(200 / 10,000 + 0.25 / 400) = 0.14361; 95%: 0.5 -/+ 0.28148.
    lo, hi = D.effect_interval(0.5, 100, 100)
    assert lo == pytest.approx(0.21852, abs=1e-5) and hi == pytest.approx(0.78148, abs=1e-5)
    assert D.effect_interval(None, 100, 100) is None and D.effect_interval(0.5, 1, 100) is None


def _previous_days_rows(cur_scores, ref_scores):
    cfg = SimpleNamespace(reference="previous_days", reference_days=7, baseline_model=None, baseline_start=None,
                          baseline_end=None)
    scores = list(ref_scores) + list(cur_scores)
    frame = pd.DataFrame({"turn_id": [f"t{i}" for i in range(len(scores))],
                          "window_start": [W - dt.timedelta(days=1)] * len(ref_scores) + [W] * len(cur_scores),
                          "model": "A", "topic": "other", "prompt_category": "benign", "scored": True,
                          "moralizing": scores})
    segs = pd.DataFrame(columns=["turn_id", "attribute", "value"])
    rows = V.compute(frame, segs, [W], V.Reference(cfg, "day"), ["moralizing"], {"moralizing": "normative"}, None,
                     None, 100, "day")
    return next(r for r in rows if r["metric"] == "value_drift" and r["model"] is None)


def test_value_drift_rows_carry_an_interval_of_the_effect():
    # 0/1 scores: current 60 of 200 moralize, reference 30 of 200. d = 0.15 / pooled sd.
    row = _previous_days_rows([1.0] * 60 + [0.0] * 140, [1.0] * 30 + [0.0] * 170)
    d = json.loads(row["details"])
    c, r = np.array([1.0] * 60 + [0.0] * 140), np.array([1.0] * 30 + [0.0] * 170)
    sp = np.sqrt((199 * c.var(ddof=1) + 199 * r.var(ddof=1)) / 398)
    eff = 0.15 / sp
    se = np.sqrt(400 / 40000 + eff ** 2 / 800)
    assert d["effect_size"] == pytest.approx(eff, rel=1e-9)
    assert d["effect_size_ci"] == pytest.approx([eff - 1.959964 * se, eff + 1.959964 * se], rel=1e-6)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((eff - 1.959964 * se, eff + 1.959964 * se), rel=1e-6)
    # A shift whose interval spans 0: the interval of |d| starts at 0.
    row = _previous_days_rows([1.0] * 32 + [0.0] * 168, [1.0] * 30 + [0.0] * 170)
    d = json.loads(row["details"])
    assert d["effect_size_ci"][0] < 0 < d["effect_size_ci"][1]
    assert row["ci_low"] == 0.0 and row["ci_high"] == pytest.approx(max(abs(x) for x in d["effect_size_ci"]))
    assert row["ci_low"] <= row["value"] <= row["ci_high"]


def test_stratify_sample_downsamples_and_never_copies():
    ref = _frame()
    ref = ref[ref["model"] == "A"]
    cur = pd.Series(["bread"] * 150 + ["crime"] * 150)
    out, dropped = D.stratify_sample(ref, cur, "topic", "k")
    # The 10 crime replies at half the mix allow a reference of 20: all 10 crime replies and 10 of the 990 bread.
    assert dropped == 0.0 and out.index.is_unique and set(out.index) <= set(ref.index)
    assert out["topic"].value_counts().to_dict() == {"bread": 10, "crime": 10}
    assert out.equals(D.stratify_sample(ref, cur, "topic", "k")[0])  # seeded
    # A 70/30 mix: crime allows 10 / 0.3 = 33 replies; 23 bread and 10 crime.
    out, _ = D.stratify_sample(ref, pd.Series(["bread"] * 70 + ["crime"] * 30), "topic", "k")
    assert out["topic"].value_counts().to_dict() == {"bread": 23, "crime": 10}
    out, dropped = D.stratify_sample(ref, pd.Series(["bread"] * 3 + ["cars"]), "topic", "k")
    assert dropped == 0.25 and set(out["topic"]) == {"bread"} and len(out) == 990


def test_evidently_method_gets_a_reference_without_copies():
    (row,) = _rows(min_n=100, method="t_test")
    d = json.loads(row["details"])
    # Not 1,000 rows of which 500 are 10 crime replies copied: 20 distinct replies, the reference the baseline's
    # 10 crime replies can support at B's half-crime mix, and too few for a verdict.
    assert d["reference"]["reweighting"] == D.SAMPLED and d["reference"]["baseline_replies"] == 1000
    assert d["n_reference"] == d["reference"]["n"] == 20 and "copies" not in d["reference"]
    assert row["small_sample"] and not d["drift_detected"] and d["engine"] == "evidently"


def _no_change_frame(rng) -> pd.DataFrame:
    """Baseline A: 900 bread and 60 crime replies; model B: 150 of each. Both models answer each topic alike
    (moralizing above 0 in 10% of bread replies, 40% of crime replies, exponential sizes): no change at all."""
    parts = []
    for model, topic, n in (("A", "bread", 900), ("A", "crime", 60), ("B", "bread", 150), ("B", "crime", 150)):
        p, scale = (0.1, 1.0) if topic == "bread" else (0.4, 2.0)
        parts.append(pd.DataFrame({"model": model, "topic": topic,
                                   "moralizing": np.where(rng.random(n) < p, rng.exponential(scale, n), 0.0)}))
    f = pd.concat(parts, ignore_index=True)
    return f.assign(turn_id=[f"t{i}" for i in range(len(f))], window_start=W, prompt_category="benign", scored=True)


def test_no_change_simulation_evidently_false_alarms_at_the_nominal_rate():
    # Evidently's t-test at p < 0.05 (its default threshold), 150 seeded comparisons with nothing changed.
    rng = np.random.default_rng(2026)
    reps, sampled, copied = 150, 0, 0
    for i in range(reps):
        f = _no_change_frame(rng)
        (row,) = _rows(min_n=50, frame=f, method="t_test")
        d = json.loads(row["details"])
        assert not row["small_sample"] and d["n_reference"] == 120  # 60 crime + 60 bread, all distinct
        sampled += d["drift_detected"]
        # The reference of copies (60 crime replies 8 times each) as the job built it before, taken as 960 replies.
        strat, _ = D.stratify(f[f["model"] == "A"], f[f["model"] == "B"]["topic"], "topic", str(i))
        cur = f[f["model"] == "B"]["moralizing"]
        copied += D.column_drift(strat["moralizing"], cur, "num", "t_test").drift_detected
    # 5% expected (standard error 1.8 points): 4.0% (6 of 150); the copies gave 21% (32 of 150).
    assert sampled / reps <= 0.08, sampled / reps
    assert copied / reps >= 0.15, copied / reps
