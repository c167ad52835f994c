"""refusal_metrics from per-date cached counts (monitor.partials.DateSums) equals a computation from scratch.

A home filled by the real pipeline (demo records ingested, languages detected, replies scored) goes through the
changes a deployment sees: new turns in a day already computed, a new day, late turns for an old day, a re-score
with a new classifier version, reviewer labels, and a switch to hour windows. After each step every refusal metric
row of the `metrics` view is compared with the rows built from refusal_rates.sql over all windows of the lake
through an unscoped connection (the job's old path), and the plain new-turns step must have extended a cached day.
"""
from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
import pytest

import monitor.jobs.refusal_metrics as rm
from monitor.db import connect
from monitor.demo import records
from monitor.home import Home
from monitor.incremental import date_bounds, metric_attributes, segment_attributes
from monitor.ingest import ingest_paths
from monitor.jobs import JobContext, run_all
from monitor.resources import load_sql
from monitor.schema import SCORES

NOW = dt.datetime(2026, 11, 20)
DRAWS = 40
FLOATS = ("value", "ci_low", "ci_high", "corrected", "corrected_ci_low", "corrected_ci_high", "numerator")


def _write(path, recs):
    with open(path, "w") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    return path


class _Spy(rm.DateSums):
    """DateSums that remembers the paths each run took."""

    seen: list[dict] = []

    def rows(self, *a, **k):
        out = super().rows(*a, **k)
        _Spy.seen.append(dict(self.stats))
        return out


def _run(home, tmp_path, recs, name):
    if recs:
        ingest_paths(home, [_write(tmp_path / f"{name}.jsonl", recs)])
    assert all(r.status == "ok" for r in run_all(home, only=["languages", "score"], now=NOW))
    _Spy.seen.clear()
    rm.run_refusal_metrics(JobContext(home, NOW), draws=DRAWS)
    return list(_Spy.seen)


def _expected(home) -> dict:
    """Rows of every window from an unscoped connection and refusal_rates.sql over all windows (no cache)."""
    cfg = home.config.metrics
    con = connect(home)
    try:
        attributes = metric_attributes(segment_attributes(home, con, home.lake.manifest()), cfg)
        corr = rm.corrector(con, home, cfg.granularity)
        windows = [r[0] for r in con.execute(
            "SELECT DISTINCT date_trunc($g, ts) FROM scored_turns WHERE refusal IS NOT NULL",
            {"g": cfg.granularity}).fetchall()]
        date_min, date_max = date_bounds(windows, cfg.granularity)
        df = con.execute(load_sql("metrics/refusal_rates.sql").sql,
                         {"granularity": cfg.granularity, "windows": windows, "attributes": attributes,
                          "date_min": date_min, "date_max": date_max}).df()
    finally:
        con.close()
    rows = rm.build_rows(df, cfg.granularity, cfg.confidence, cfg.min_n, corr, DRAWS)
    return {(r["metric"], r["window_start"], r["model"], r["deployment"], r["segment"]): r for r in rows}


def _published(home) -> dict:
    con = connect(home)
    try:
        df = con.execute("SELECT * FROM metrics WHERE family = 'refusal' AND granularity = $g AND n > 0",
                         {"g": home.config.metrics.granularity}).df()
    finally:
        con.close()
    out = {}
    for r in df.to_dict("records"):
        r = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        out[(r["metric"], r["window_start"].to_pydatetime(), r["model"], r["deployment"], r["segment"])] = r
    return out


def _check(home):
    want, got = _expected(home), _published(home)
    assert len(want) > 100
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert (int(g["n"]), bool(g["small_sample"])) == (int(w["n"]), bool(w["small_sample"])), key
        for c in FLOATS:
            a, b = g.get(c), w.get(c)
            b = None if b is None or (isinstance(b, float) and math.isnan(b)) else b
            if b is None:
                assert a is None, (key, c)
            else:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (key, c)
        assert json.loads(g["details"]) == json.loads(w["details"]), key


@pytest.mark.slow
def test_cached_counts_give_the_rows_of_a_full_computation(tmp_path, monkeypatch):
    monkeypatch.setattr(rm, "DateSums", _Spy)
    every = list(records())
    recs = every[::25]  # ~800 turns over the demo's 30 days
    days = sorted({r["timestamp"][:10] for r in recs})
    assert len(days) >= 6
    last, today, old = days[-2], days[-1], days[1]
    convs = sorted({r["conversation_id"] for r in recs})
    held = set(convs[::7])  # conversations held back: they arrive later, as new turns of computed days
    first = [r for r in recs if r["timestamp"][:10] < today and r["conversation_id"] not in held]
    home = Home.open(tmp_path / "h")

    assert _run(home, tmp_path, first, "first")[0]["recomputed"] >= 5
    _check(home)

    # New turns in a day already computed: its cached counts are extended with the new turns' counts only.
    seen = _run(home, tmp_path, [r for r in recs if r["timestamp"][:10] == last and r["conversation_id"] in held],
                "same_day")
    assert seen == [{"cached": 0, "extended": 1, "recomputed": 0}]
    _check(home)

    # A new day, then late turns for an old day.
    assert _run(home, tmp_path, [r for r in recs if r["timestamp"][:10] == today], "new_day")[0]["recomputed"] == 1
    _check(home)
    late = [r for r in recs if r["timestamp"][:10] == old and r["conversation_id"] in held]
    assert late
    _run(home, tmp_path, late, "late")
    _check(home)

    # A new classifier version re-scores some turns of the last day: that day is recomputed, not extended.
    con = connect(home)
    try:
        cur = con.execute("SELECT * FROM latest_scores WHERE date = $d ORDER BY turn_id LIMIT 25", {"d": last})
        old = [dict(zip([c[0] for c in cur.description], r)) for r in cur.fetchall()]
    finally:
        con.close()
    flipped = [{**r, "refusal": "compliance" if r["refusal"] != "compliance" else "full_refusal",
                "prompt_harm": "harmful" if r["prompt_harm"] == "benign" else "benign",
                "refusal_version": "v-next", "scored_at": r["scored_at"] + dt.timedelta(days=1)}
               for r in old]
    home.lake.append("scores", pa.Table.from_pylist(flipped, schema=SCORES.schema))
    assert _run(home, tmp_path, [], "rescore") == [{"cached": 0, "extended": 0, "recomputed": 1}]
    _check(home)

    # Reviewer labels: every window is recomputed (new error rates), from the cached counts.
    con = connect(home)
    try:
        labelled = con.execute("SELECT turn_id, refusal, prompt_harm FROM latest_scores ORDER BY turn_id "
                               "LIMIT 300").fetchall()
    finally:
        con.close()
    with home.state.tx() as c:
        for i, (tid, refusal, harm) in enumerate(labelled):
            c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                      (tid, "rev", "2026-11-20T10:00:00Z", refusal if i % 9 else "compliance",
                       harm if i % 11 else "harmful"))
    seen = _run(home, tmp_path, [], "labels")
    assert seen[0]["cached"] >= 5 and seen[0]["extended"] == 0
    _check(home)

    # Hour windows: a new identity recomputes the counts once, then new turns extend the cached day again.
    (home.root / "monitor.toml").write_text('[metrics]\ngranularity = "hour"\n')
    home = Home.open(tmp_path / "h")
    _run(home, tmp_path, [], "hour")
    _check(home)
    more = [r for r in every[1::25] if r["timestamp"][:10] == today]
    assert more
    seen = _run(home, tmp_path, more, "hour_more")
    assert seen == [{"cached": 0, "extended": 1, "recomputed": 0}]
    _check(home)
