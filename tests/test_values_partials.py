"""The values job's metrics from cached per-date sums (monitor/partials.py) equal the old computation from scratch.

A home is filled with real replies and scored by the job itself; each step changes the lake or the config the way
production does (new turns in a computed day, a new day, late turns for an old day, a segment detected late, a
plugin dimension added then removed, hour granularity) and then compares every row of the `metrics` view (family
`values`) with value_means.sql / coverage.sql run over every window of the whole lake, as the job did before it
kept sums, through the same row builders. The job's record of which path each day took shows that the cheap path
(extending a day's sums with only the new turns) is the one taken when new turns arrive.
"""
import datetime as dt
import json
import math

import pyarrow as pa
import pytest

from monitor.db import connect
from monitor.home import Home
from monitor.incremental import metric_attributes
from monitor.jobs import JobContext
from monitor.jobs.values import STATE_KEY, configured_scorer, coverage_rows, mean_rows, run_values
from monitor.resources import load_sql
from valuesim import START, simulate, write_turns

PLUGIN = ('[[values.dimensions]]\nname = "kitchen_talk"\nfamily = "cultural"\n'
          'terms = ["bread", "oven", "flour", "bake*", "cook*"]\n')


def _traffic(day: int, per_day: int, seed: int, prefix: str, hours: tuple[int, int] = (0, 24)):
    """Real replies on one day with the edge cases the sums must carry: missing model and deployment, unscored
    replies, turns without a segment, a second attribute on some turns."""
    start = START + dt.timedelta(days=day)
    turns, segs = simulate(days=1, per_day=per_day, seed=seed, start=start, id_prefix=f"{prefix}{day}-")
    span = (hours[1] - hours[0]) * 3600
    for i, t in enumerate(turns):
        t["ts"] = start + dt.timedelta(hours=hours[0], seconds=(t["ts"] - start).seconds % span)
        t["model"] = ("assistant", "assistant-b", None)[i % 3]
        t["deployment"] = ("prod", "canary", "prod", None)[i % 4]
        if i % 17 == 0:
            t["assistant_message"] = ("", "ok", "Claro, aquí tienes una respuesta completa en español para ti.")[i % 3]
    out = []
    for i, (t, s) in enumerate(zip(turns, segs)):
        s["date"] = t["ts"].strftime("%Y-%m-%d")
        if i % 7:  # every 7th turn has no segment
            out.append(s)
        if i % 5 == 0:
            out.append({"turn_id": t["turn_id"], "attribute": "plan", "value": ("free", "pro")[i % 2],
                        "date": s["date"]})
    return turns, out


def _add(home, day, per_day, seed, prefix, hours=(0, 24)):
    turns, segs = _traffic(day, per_day, seed, prefix, hours)
    write_turns(home, turns, segs)
    return turns


def _open(root, granularity="day", plugin=False) -> Home:
    (root / "monitor.toml").write_text(f'[metrics]\ngranularity = "{granularity}"\n' + (PLUGIN if plugin else ""))
    return Home.open(root)


def _reference(home) -> dict:
    """Metric rows of every window computed from all rows at once, as the job did before it kept sums."""
    cfg = home.config.metrics
    scorer = configured_scorer(home)
    con = connect(home)
    try:
        present = [r[0] for r in con.execute("SELECT DISTINCT attribute FROM segments ORDER BY 1").fetchall()]
        windows = [r[0] for r in con.execute("SELECT DISTINCT date_trunc($g, ts) FROM turns ORDER BY 1",
                                             {"g": cfg.granularity}).fetchall()]
        params = {"granularity": cfg.granularity, "windows": windows, "attributes": metric_attributes(present, cfg),
                  "scorer_version": scorer.version, "date_min": "0001-01-01", "date_max": "9999-12-31"}
        means = con.execute(load_sql("values/value_means.sql").sql, params).df()
        cover = con.execute(load_sql("values/coverage.sql").sql, params).df()
    finally:
        con.close()
    rows = mean_rows(means, cfg.confidence, cfg.min_n, scorer.version)
    rows += coverage_rows(cover, cfg.confidence, cfg.min_n, scorer.version)
    return {(r["metric"], r["window_start"], r["model"], r["deployment"], r["segment"]): r for r in rows}


def _published(home) -> tuple[dict, set]:
    """The latest values rows of the configured granularity: those with data by key, and the retired keys."""
    con = connect(home)
    try:
        cur = con.execute("SELECT * FROM metrics WHERE family = 'values' AND granularity = $g",
                          {"g": home.config.metrics.granularity})
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()
    key = lambda r: (r["metric"], r["window_start"], r["model"], r["deployment"], r["segment"])  # noqa: E731
    return {key(r): r for r in rows if r["n"] > 0}, {key(r) for r in rows if r["n"] == 0}


def _close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


def check(home) -> set:
    """Every published values row of the configured granularity equals the from-scratch computation."""
    want = _reference(home)
    got, retired = _published(home)
    assert len(want) > 50
    assert set(got) == set(want)
    assert not retired & set(want)
    for k, w in want.items():
        g = got[k]
        for c in ("window_end", "n", "small_sample"):
            assert g[c] == w[c], (k, c)
        for c in ("value", "ci_low", "ci_high", "numerator"):
            assert _close(g[c], w[c]), (k, c, g[c], w[c])
        assert _close(json.loads(g["details"]), json.loads(w["details"])), k
    return retired


def paths(home) -> dict:
    """Which path each cached query took per date in the job's last run (monitor.partials.DateSums.stats)."""
    return {name: {p: n for p, n in s.items() if n} for name, s in home.state.get(STATE_KEY)["partials"].items()}


def both(**stats) -> dict:
    return {"values.means": stats, "values.coverage": stats}


@pytest.mark.slow
def test_metrics_from_cached_sums_equal_a_computation_from_scratch(tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    home = _open(root)
    for day in range(3):
        _add(home, day, 120, seed=day, prefix="a")
    assert run_values(JobContext(home, START)) > 0
    check(home)
    assert paths(home) == both(recomputed=3)

    # New turns in a day already computed: its cached sums plus the new turns' sums (the path that must be cheap).
    _add(home, 2, 60, seed=20, prefix="b")
    assert run_values(JobContext(home, START)) > 0
    check(home)
    assert paths(home) == both(extended=1)

    # A new day: nothing cached for it yet.
    _add(home, 3, 90, seed=30, prefix="c")
    run_values(JobContext(home, START))
    check(home)
    assert paths(home) == both(recomputed=1)

    # Late turns for an old day extend that day's sums.
    _add(home, 0, 25, seed=40, prefix="late")
    run_values(JobContext(home, START))
    check(home)
    assert paths(home) == both(extended=1)

    # A segment detected late for an old turn (it had none) changes that turn's contribution: recomputed.
    with connect(home) as con:
        tid = con.execute("SELECT t.turn_id FROM turns t ANTI JOIN segments s USING (turn_id) "
                          "WHERE t.date = '2026-10-02' ORDER BY 1 LIMIT 1").fetchone()[0]
    home.lake.append("segments", pa.Table.from_pylist([{"turn_id": tid, "attribute": "region", "value": "eu",
                                                        "date": "2026-10-02"}]))
    run_values(JobContext(home, START))
    check(home)
    assert paths(home) == both(recomputed=1)

    # A plugin dimension: a new scorer version re-scores every turn and every cached day is recomputed.
    home = _open(root, plugin=True)
    run_values(JobContext(home, START))
    check(home)
    assert paths(home) == both(recomputed=4)
    assert any(json.loads(k[4]).get("dimension") == "kitchen_talk" for k in _published(home)[0])
    _add(home, 3, 30, seed=50, prefix="d")
    run_values(JobContext(home, START))
    check(home)
    assert paths(home) == both(extended=1)

    # The plugin removed: the old version's scores count again and the plugin's keys are retired (n = 0 rows).
    home = _open(root)
    run_values(JobContext(home, START))
    retired = check(home)
    assert paths(home) == both(recomputed=4)
    assert retired and all(json.loads(k[4]).get("dimension") == "kitchen_talk" for k in retired)

    # Hour granularity: each cached day holds all its hours; the job publishes the hours with new turns.
    home = _open(root, granularity="hour")
    run_values(JobContext(home, START))
    check(home)
    assert paths(home) == both(recomputed=4)
    _add(home, 3, 40, seed=60, prefix="e", hours=(13, 15))
    ctx = JobContext(home, START)
    run_values(ctx)
    check(home)
    assert paths(home) == both(extended=1)
    with connect(home) as con:
        hours = con.execute("SELECT DISTINCT hour(window_start) FROM metrics_log WHERE run_id = $r ORDER BY 1",
                            {"r": ctx.run_id}).fetchall()
    assert [h[0] for h in hours] == [13, 14]  # only the touched hours are written

    # Nothing new: nothing written, nothing computed.
    assert run_values(JobContext(home, START)) == 0
