"""The fast paths of the alert engine give exactly what the plain ones gave: beta-binomial tails, details, series."""
import dataclasses
import datetime as dt
import json
import math

import pytest
from scipy.stats import betabinom

from monitor.alerts import engine
from monitor.alerts.engine import evaluate, group_series, load_history
from monitor.alerts.rules import parse_rules
from test_alerts_engine import DAY0, NOW, rate_row, write


def test_beta_binomial_tails_equal_scipy_bit_for_bit():
    cases = [(k, n, a, b) for n in (0, 1, 2, 7, 50, 270, 1500)
             for k in sorted({-2, -1, 0, 1, n // 3, n // 2, n - 1, n, n + 1})
             for a, b in ((0.5, 0.5), (3.2, 40.7), (120.5, 2200.25), (8000.5, 91000.5), (0.5000001, 1e6))]
    assert len(cases) > 250
    for k, n, a, b in cases:
        assert engine._betabinom_sf(k, n, a, b) == float(betabinom.sf(k, n, a, b)), (k, n, a, b)
        assert engine._betabinom_cdf(k, n, a, b) == float(betabinom.cdf(k, n, a, b)), (k, n, a, b)


@pytest.mark.parametrize("direction", ["up", "down", "both"])
def test_beta_binomial_p_value_is_the_scipy_one(direction):
    for k, n, K, N, phi, m in ((8, 270, 30, 1900, 1.0, 270), (60, 300, 150, 2100, 2.5, 300), (0, 40, 2, 400, 1.3, 80),
                               (40, 40, 380, 400, 4.0, 100), (13, 200, 90, 1400, 1.0, 200)):
        ref, conc = K / N, N
        if phi > 1:
            rho = (phi - 1) / max(m - 1, 1)
            conc = min(N, max((1 - rho) / rho, 1.0))
        a, b = ref * conc + 0.5, (1 - ref) * conc + 0.5
        up, down = float(betabinom.sf(k - 1, n, a, b)), float(betabinom.cdf(k, n, a, b))
        want = {"up": up, "down": down, "both": min(1.0, 2 * min(up, down))}[direction]
        assert engine._beta_binomial_p(k, n, K, N, direction, phi, m) == want


def _plain_details(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


@pytest.mark.parametrize("text", [
    '{"significant": true, "p_value": 1.2e-05, "gap": -0.0123, "q_value": 0.000123456789012345678}',
    '{"p_value": NaN, "statistic": Infinity, "drift_detected": true}',  # Python's json only
    '{"n": 123456789012345678901234567890, "significant": true}',  # beyond 64 bits: json keeps the integer
    '{"n": 18446744073709551615, "m": -9223372036854775808}',
    '{"a": 1, "a": 2, "name": "caf\\u00e9 \u00e9t\u00e9", "x": [1, 2.5, {"y": null}]}',
    "not json", "{", '"a string"',
])
def test_details_parse_like_json(text):
    got = engine._details(engine._Point({"details": text}, None, None, None, None, None, True))
    want = _plain_details(text)
    assert repr(got) == repr(want) and type(got) is type(want)


def _reference_groups(rows):
    out = {}
    for r in rows:
        seg = json.loads(r["segment"] or "{}") if isinstance(r["segment"], str) else (r["segment"] or {})
        sid = (r["metric"], r["granularity"], r["model"], r["deployment"], json.dumps(seg, sort_keys=True))
        out.setdefault(sid, []).append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r["window_start"])
    return out


def _home_with_mixed_history(home):
    rows = []
    for day in range(8):
        for model in ("m1", "m2"):
            # The same segment spelt two ways (disparity pairs are not written with sorted keys): one series.
            seg = {"language": "hi", "age_band": "18-24"}
            r = rate_row(day, 10 + 6 * day, 200, model=model, segment=seg)
            if day % 2:
                r["segment"] = json.dumps({"age_band": "18-24", "language": "hi"})
            rows.append(r)
            rows.append(rate_row(day, 30, 100, metric="value_mean", model=model))  # watched by no rule below
            rows.append(rate_row(day, 5 + day, 120, metric="refusal_disparity", model=model,
                                 segment={"gender": "f"},
                                 details={"significant": day >= 5, "q_value": 1e-4 if day >= 6 else 0.2,
                                          "gap": 0.08, "p_value": float("nan") if day == 3 else 1e-5}))
    for r in rows:
        r["deployment"] = None
    write(home, rows)


RULES = [
    {"name": "thr", "metric": "over_refusal_rate", "any_segment": True, "kind": "threshold", "op": ">",
     "value": 0.2, "consecutive": 2},
    {"name": "rel", "metric": "over_refusal_rate", "any_segment": True, "kind": "relative", "max_ratio": 1.2,
     "reference_windows": 3, "min_reference_windows": 2, "min_reference_n": 100},
    {"name": "bb", "metric": "over_refusal_rate", "any_segment": True, "kind": "test", "test": "beta_binomial",
     "alpha": 0.2, "direction": "both", "reference_windows": 3, "min_reference_windows": 2, "min_reference_n": 100},
    {"name": "cus", "metric": "over_refusal_rate", "any_segment": True, "kind": "cusum", "h": 1.0, "warmup": 3},
    {"name": "flag", "metric": "disparity", "any_segment": True, "kind": "flag", "q_max": 0.001},
]


def test_series_grouping_and_metric_filter_change_nothing(home):
    _home_with_mixed_history(home)
    everything = load_history(home)
    assert {r["metric"] for r in everything} == {"over_refusal_rate", "value_mean", "refusal_disparity"}
    watched = load_history(home, metrics=lambda m: m != "value_mean")
    assert watched == [r for r in everything if r["metric"] != "value_mean"]  # same rows, same order
    assert load_history(home, metrics=["refusal_disparity"]) == [r for r in everything
                                                                 if r["metric"] == "refusal_disparity"]
    assert load_history(home, metrics=[]) == []

    groups = group_series(everything)
    want = _reference_groups(everything)
    assert list(groups) == list(want) and groups == want
    hi = [sid for sid in groups if sid[0] == "over_refusal_rate"]
    assert [sid[4] for sid in hi] == ['{"age_band": "18-24", "language": "hi"}'] * 2 and len(groups[hi[0]]) == 8

    rules = parse_rules(RULES, "test")
    got = evaluate(home, NOW, rules=rules)
    # Handing in every row (the unwatched metric too) gives the same alerts as reading only the watched ones.
    again = evaluate(home, NOW, rules=rules, rows=everything)
    assert [dataclasses.asdict(a) for a in got] == [dataclasses.asdict(a) for a in again]
    assert got.recovered == again.recovered
    kinds = {a.rule for a in got}
    assert {"thr", "flag", "cus"} <= kinds, kinds
    thr = [a for a in got if a.rule == "thr" and a.model == "m1"]
    # Consecutive counts run across both spellings of the segment: it is one series.
    assert [a.evidence["consecutive"] for a in thr] == list(range(2, 2 + len(thr)))
    assert all(a.segment == {"age_band": "18-24", "language": "hi"} for a in thr)
    assert len({id(a.segment) for a in got}) == len({(a.rule, a.series_key) for a in got})  # no dict shared
    flags = [a for a in got if a.rule == "flag"]
    assert [a.window_start for a in flags if a.model == "m1"] == [DAY0 + dt.timedelta(days=d) for d in (6, 7)]
    assert all(not math.isnan(a.p_value) for a in flags)
