"""topic_drift / prompt_mix_drift rows carry a 95% interval of the Jensen-Shannon distance, and it covers the truth."""
import datetime as dt
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import distance

from monitor.jobs import value_drift as V
from monitor.values import drift as D

W = dt.datetime(2026, 11, 10)


def _pair(k: int, dist: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two category mixes over k categories whose Jensen-Shannon distance is `dist` (to 1e-9)."""
    p = rng.dirichlet(np.full(k, 2.0))
    if dist == 0:
        return p, p.copy()
    other = p
    while distance.jensenshannon(p, other) < dist + 0.05:
        other = rng.dirichlet(np.full(k, 0.5))
    lo, hi = 0.0, 1.0
    for _ in range(60):  # the distance grows along the segment from p to `other`
        t = (lo + hi) / 2
        if distance.jensenshannon(p, (1 - t) * p + t * other) < dist:
            lo = t
        else:
            hi = t
    return p, (1 - lo) * p + lo * other


# (categories, reference replies, current replies, true distance): the topic taxonomy has 20 categories with
# `other` and `none`, prompt-harm categories a handful; 0.1 is the drift threshold.
CELLS = [(20, 100, 100, 0.0), (20, 700, 100, 0.1), (20, 300, 300, 0.25), (20, 3000, 1000, 0.05),
         (5, 100, 100, 0.2), (5, 700, 100, 0.1), (5, 300, 300, 0.0), (5, 3000, 1000, 0.3)]


def test_interval_covers_the_true_distance_of_known_mixes():
    rng = np.random.default_rng(20261201)
    reps = 150
    covered, plain = [], []
    for k, nr, nc, dist in CELLS:
        p, q = _pair(k, dist, rng)
        true = float(distance.jensenshannon(p, q))
        assert true == pytest.approx(dist, abs=1e-9)
        hits = naive = 0
        for _ in range(reps):
            rc, cc = rng.multinomial(nr, p), rng.multinomial(nc, q)
            lo, hi, _ = D.js_interval(rc, cc)
            hits += lo <= true <= hi
            # What a percentile interval of the resampled plug-in distances would say.
            used = (rc > 0) | (cc > 0)
            r, c = rc[used], cc[used]
            boot = np.sqrt(D._js_divergence(rng.multinomial(nr, r / nr, size=400).astype(float),
                                            rng.multinomial(nc, c / nc, size=400).astype(float)))
            naive += np.quantile(boot, 0.025) <= true <= np.quantile(boot, 0.975)
        covered.append(hits / reps)
        plain.append(naive / reps)
    # 95% nominal; 150 draws per cell give a standard error of 1.8 points.
    assert min(covered) >= 0.9, list(zip(CELLS, covered))
    assert np.mean(covered) >= 0.94, list(zip(CELLS, covered))
    # The plug-in bias is real: percentiles of resampled distances miss a true distance of 0 every time.
    assert plain[0] == 0.0 and plain[6] < 0.1, plain


def test_interval_is_deterministic_and_says_when_there_is_none():
    rc, cc = np.array([50, 30, 20]), np.array([40, 40, 20])
    assert D.js_interval(rc, cc) == D.js_interval(rc.astype(float), cc.astype(float))
    lo, hi, note = D.js_interval(rc, cc)
    assert 0 <= lo < hi < math.sqrt(math.log(2)) and note is None
    # Unused categories change nothing (the per-reply path never sees them, the per-window sums path does).
    assert D.js_interval(np.array([50, 0, 30, 20]), np.array([40, 0, 40, 20])) == (lo, hi, None)
    # Each side all in one category: every resample is the same, an interval would claim certainty.
    for rc, cc in (([10, 0], [0, 7]), ([10], [7])):
        assert D.js_interval(rc, cc)[:2] == (None, None) and "one category" in D.js_interval(rc, cc)[2]
    # Counts more alike than sampling makes them (1 or 2 replies per topic on both sides): the bias correction
    # overshoots to [0, 0], which would claim certainty too.
    lo, hi, note = D.js_interval([2] * 5 + [1] * 15, [1] * 15 + [2] * 5)
    assert (lo, hi) == (None, None) and "closer than resampling noise" in note


def _mix_rows(ref_topics, cur_topics):
    cfg = SimpleNamespace(reference="previous_days", reference_days=7, baseline_model=None, baseline_start=None,
                          baseline_end=None)
    topics = list(ref_topics) + list(cur_topics)
    frame = pd.DataFrame({"turn_id": [f"t{i}" for i in range(len(topics))],
                          "window_start": [W - dt.timedelta(days=1)] * len(ref_topics) + [W] * len(cur_topics),
                          "model": "A", "topic": topics, "prompt_category": "benign", "scored": True,
                          "moralizing": 0.0})
    segs = pd.DataFrame(columns=["turn_id", "attribute", "value"])
    rows = V.compute(frame, segs, [W], V.Reference(cfg, "day"), ["moralizing"], {"moralizing": "normative"}, None,
                     None, 100, "day")
    return {r["metric"]: r for r in rows if r["model"] is None and r["metric"] != "value_drift"}


def test_mix_drift_rows_carry_the_interval():
    rows = _mix_rows(["crime"] * 40 + ["cooking"] * 160, ["crime"] * 100 + ["cooking"] * 100)
    topic = rows["topic_drift"]
    d = json.loads(topic["details"])
    assert (topic["ci_low"], topic["ci_high"]) == pytest.approx(D.js_interval([160, 40], [100, 100])[:2])
    assert 0 < topic["ci_low"] < topic["value"] < topic["ci_high"] and d["ci"] == D.JS_INTERVAL
    # Every reply is `benign` on both sides: no interval, and the row says why.
    mix = rows["prompt_mix_drift"]
    assert mix["ci_low"] is None and mix["ci_high"] is None and "ci_note" in json.loads(mix["details"])


def test_small_sample_interval_lies_below_the_biased_distance():
    # 40 replies a side over 20 equally likely topics (a seeded draw): the sample distance is 0.23 by chance alone;
    # the interval is of the mixes' distance, reaches 0, and the row says why it is below the value.
    ref = [1, 3, 4, 1, 1, 1, 1, 2, 3, 4, 2, 2, 4, 1, 2, 1, 4, 0, 2, 1]
    cur = [0, 2, 3, 1, 4, 3, 1, 2, 2, 1, 3, 2, 4, 1, 1, 2, 3, 0, 3, 2]
    topics = lambda counts: [f"topic{i:02d}" for i, k in enumerate(counts) for _ in range(k)]  # noqa: E731
    topic = _mix_rows(topics(ref), topics(cur))["topic_drift"]
    assert topic["value"] == pytest.approx(0.2291, abs=1e-4)
    assert topic["small_sample"] and topic["ci_low"] == 0.0 < topic["ci_high"] < topic["value"]
    assert "biased upward" in json.loads(topic["details"])["ci_note"]
