"""The default rules on 30 days of simulated traffic built from real labelled replies (XSTest, HH-RLHF).

Stable traffic: 4 models x (all traffic + 4 languages) + all models, over- and under-refusal, 3 value dimensions
and language disparity per model: about 2,700 metric rows, ~1,700 series-windows tested. At most one false alert.
Incident traffic: the same plus over-refusal doubling for one model, doubling in one language for another, and
a model that starts moralising, all from day 20: each caught in the day-20 window.
"""
import datetime as dt

import pytest

from monitor.alerts.engine import apply, evaluate
from monitor.alerts.simulate import Incident, Scenario, simulate
from monitor.home import Home

START = dt.datetime(2026, 10, 1)
NOW = START + dt.timedelta(days=30, hours=1)


def _run(tmp_path, shared_data, scenario):
    home = Home.open(tmp_path / "home")
    table = simulate(shared_data, scenario)
    home.lake.append("metrics_log", table)
    alerts = evaluate(home, NOW)
    return home, table, alerts


@pytest.mark.parametrize("seed", [7, 11])
def test_stable_traffic_raises_at_most_one_false_alert_in_30_days(tmp_path, shared_data, seed):
    home, table, alerts = _run(tmp_path, shared_data, Scenario(seed=seed))
    series = {(r["metric"], r["model"], r["segment"]) for r in table.select(["metric", "model", "segment"]).to_pylist()}
    assert table.num_rows > 2500 and len(series) >= 90  # several models and groups, not a toy
    assert len(alerts) <= 1, [a.message for a in alerts]


def test_incidents_are_caught_in_the_window_they_start(tmp_path, shared_data):
    incidents = [Incident("assistant-a", 20), Incident("assistant-b", 20, language="hi"),
                 Incident("assistant-c", 20, kind="moralizing")]
    home, _, alerts = _run(tmp_path, shared_data, Scenario(seed=7, incidents=incidents))
    day20 = START + dt.timedelta(days=20)
    first = {}
    for a in alerts:
        key = (a.rule, a.model, tuple(sorted(a.segment.items())))
        first[key] = min(first.get(key, a.window_start), a.window_start)
    assert first[("over_refusal_spike", "assistant-a", ())] == day20
    assert first[("over_refusal_spike", "assistant-b", (("language", "hi"),))] == day20
    assert first[("disparity", "assistant-b", (("language", "hi"),))] == day20
    assert first[("value_drift", "assistant-c", (("dimension", "moralizing"),))] == day20
    # Nothing fires before the incidents start, and the untouched model stays quiet throughout.
    assert min(first.values()) == day20
    assert not [k for k in first if k[1] == "assistant-d"]
    [a] = [a for a in alerts if a.rule == "over_refusal_spike" and a.model == "assistant-a" and not a.segment
           and a.window_start == day20]
    assert a.value > 1.6 * a.reference and a.p_value < 1e-4 and "vs reference" in a.message
    # Applied live at the end of day 20, the incident pages once per series and the ongoing days do not.
    res = apply(home, evaluate(home, day20 + dt.timedelta(days=1, hours=1)), day20 + dt.timedelta(days=1, hours=1))
    assert res.new >= 4
