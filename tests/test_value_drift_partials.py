"""value_drift's per-date sums kept in the cache and extended with new turns give the rows of a run from scratch.

A home filled by the real pipeline (real replies, the values job) goes through the changes the lake sees: new turns
in a day already computed, a new day, late turns for an old day, a re-score by a new classifier, a new scorer
version. After each step the `metrics` rows of the value_drift job are compared with those of a copy of the home
whose sums cache and watermark were deleted (every window recomputed from all rows), and the path DateSums took is
checked, so that the comparison cannot pass because nothing was extended.
"""
import datetime as dt
import json
import math
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import monitor.jobs.value_drift as V
from monitor.db import connect
from monitor.home import Home
from monitor.jobs import JobContext
from monitor.jobs.values import run_values
from monitor.partials import DateSums
from test_value_drift_paths import _same
from valuesim import START, hh_pairs, write_turns

DAYS = 9
MODELS = ["m1", "m2", None]
CONFIG = '[metrics]\ngranularity = "{g}"\n[values]\nmin_n = 12\n'
PLUGIN = '[[values.dimensions]]\nname = "kitchen_talk"\nfamily = "cultural"\nterms = ["bread", "oven"]\n'
NOW = START + dt.timedelta(days=DAYS + 1)


class Recording(DateSums):
    """DateSums that keeps the stats of its last rows() call."""

    last: dict | None = None

    def rows(self, *a, **k):
        try:
            return super().rows(*a, **k)
        finally:
            Recording.last = dict(self.stats or {})


def _add(home, prefix: str, day: int, count: int, hours: bool, seed: int, harm_version: str = "t1"):
    """`count` real replies on `day` (models, two segment attributes, a reply in two regions, unscored replies,
    a third without a classifier score), scored by the values job."""
    pairs = hh_pairs()
    rng = np.random.default_rng(seed)
    turns, segs, scores = [], [], []
    for j in range(count):
        prompt, reply = pairs[int(rng.integers(0, len(pairs)))]
        if j % 23 == 5:
            reply = "ok"  # too short: unscored
        if j % 7 == 0:
            reply += " Bake the bread in a hot oven."  # the plugin dimension, once it is configured
        sec = int(rng.integers(0, 3 * 3600 if hours else 86400))
        ts = START + dt.timedelta(days=day, seconds=sec)
        tid = f"{prefix}{j:04d}"
        turns.append({"turn_id": tid, "conversation_id": tid, "turn_index": 0, "ts": ts, "model": MODELS[j % 3],
                      "deployment": "prod", "user_message": prompt, "assistant_message": reply})
        date = ts.strftime("%Y-%m-%d")
        if j % 11:
            segs.append({"turn_id": tid, "attribute": "region", "value": ["eu", "us"][j % 2], "date": date})
            segs.append({"turn_id": tid, "attribute": "plan", "value": ["free", "pro"][j % 2 == 0 and j % 3 == 0],
                         "date": date})
        if j == 4:
            segs.append({"turn_id": tid, "attribute": "region", "value": "apac", "date": date})
        if j % 3:
            scores.append(_score(tid, j, ts, harm_version))
    write_turns(home, turns, segs, scores)
    run_values(JobContext(home, NOW))


def _score(tid: str, j: int, ts: dt.datetime, harm_version: str, shift: int = 0) -> dict:
    return {"turn_id": tid, "refusal": "compliance", "refusal_score": (j % 10) / 10 + 0.05,
            "prompt_harm": ["harmful", "benign"][(j + shift) % 2], "prompt_harm_score": 0.5,
            "prompt_harm_category": ["crime", None, "violence", None][(j + shift) % 4], "refusal_version": "t",
            "harm_version": harm_version, "backend": "t", "scored_at": ts + dt.timedelta(minutes=1 + shift),
            "date": ts.strftime("%Y-%m-%d")}


def _rescore(home, day: int):
    """A new harm classifier re-scores the classified replies of `day` (latest `scores` rows change)."""
    con = connect(home)
    try:
        old = con.execute("SELECT turn_id, ts FROM scored_turns WHERE date = $d AND harm_version IS NOT NULL "
                          "ORDER BY turn_id", {"d": (START + dt.timedelta(days=day)).strftime("%Y-%m-%d")}).fetchall()
    finally:
        con.close()
    assert old
    with home.lake.transaction() as tx:
        tx.add("scores", pa.Table.from_pylist([_score(t, j, ts, "t2", shift=1) for j, (t, ts) in enumerate(old)]))


def _drift(home, run_id: str | None = None):
    """The value_drift rows of the `metrics` view (or of one run), by key."""
    con = connect(home)
    try:
        sql = "SELECT * FROM metrics" if run_id is None else "SELECT * FROM metrics_log"
        df = con.execute(sql + " WHERE family = 'values' AND metric IN ('value_drift', 'topic_drift', "
                               "'prompt_mix_drift')" + ("" if run_id is None else " AND run_id = $r"),
                         {} if run_id is None else {"r": run_id}).df()
    finally:
        con.close()
    out = {}
    for r in df.to_dict("records"):
        key = (r["metric"], r["granularity"], r["window_start"], r["model"] or "", r["segment"])
        assert key not in out
        out[key] = r
    return out


def _run(home, monkeypatch) -> tuple[str, dict]:
    monkeypatch.setattr(V, "DateSums", Recording)
    Recording.last = None
    ctx = JobContext(home, NOW)
    V.run_value_drift(ctx)
    return ctx.run_id, Recording.last


def _from_scratch(home, tmp_path, name: str, monkeypatch) -> dict:
    """The `metrics` rows after recomputing every window of a copy of `home` without the cache and watermark."""
    shutil.copytree(home.root, tmp_path / name)
    twin = Home.open(tmp_path / name)
    shutil.rmtree(twin.root / "cache" / "partials" / V.SUMS_NAME)
    twin.state.put(V.WATERMARK_KEY, {})
    run_id, stats = _run(twin, monkeypatch)
    assert stats["recomputed"] and not stats["extended"] and not stats["cached"]
    rows = _drift(twin)
    # Every key was rewritten by that run (recomputed or retired): no row left over from the copied history.
    assert rows and {r["run_id"] for r in rows.values()} == {run_id}
    return rows


def _check(home, tmp_path, name: str, monkeypatch):
    want = _from_scratch(home, tmp_path, name, monkeypatch)
    got = _drift(home)
    assert sorted(got) == sorted(want)
    bad = []
    for k in want:
        a, b = dict(got[k]), dict(want[k])
        da, db = json.loads(a.pop("details")), json.loads(b.pop("details"))
        for c in ("run_id", "computed_at", "job"):
            a.pop(c), b.pop(c)
        a = {c: (None if isinstance(v, float) and math.isnan(v) else v) for c, v in a.items()}
        b = {c: (None if isinstance(v, float) and math.isnan(v) else v) for c, v in b.items()}
        bad += _same(a, b, str(k)) + _same(da, db, str(k) + " details")
    assert not bad, bad[:10]
    return got


@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_extended_sums_give_the_rows_of_a_recomputation(tmp_path, monkeypatch, granularity):
    hours = granularity == "hour"
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text(CONFIG.format(g=granularity))
    home = Home.open(root)
    for day in range(DAYS - 1):
        _add(home, f"d{day}-", day, [50, 40, 8, 45, 60, 35, 50, 55][day], hours, seed=day)
    # First run: every date computed from all its rows and cached.
    _, stats = _run(home, monkeypatch)
    assert stats["recomputed"] and not stats["extended"]
    rows = _check(home, tmp_path, "s0", monkeypatch)
    details = [json.loads(r["details"]) for r in rows.values()]
    assert any(d.get("drift_detected") is not None for d in details)
    assert {r["model"] for r in rows.values()} >= {"m1", "m2", "unknown", None}
    assert any(r["small_sample"] for r in rows.values()) and any(not r["small_sample"] for r in rows.values())

    # New turns in the last day, already computed: its sums are extended with them; the other dates are cached.
    _add(home, "more-", DAYS - 2, 30, hours, seed=100)
    _, stats = _run(home, monkeypatch)
    assert stats["extended"] == 1 and not stats["recomputed"] and stats["cached"], stats
    _check(home, tmp_path, "s1", monkeypatch)

    # A new day: computed from its rows (nothing cached for it); the reference days are cached.
    _add(home, "new-", DAYS - 1, 45, hours, seed=101)
    _, stats = _run(home, monkeypatch)
    assert stats["recomputed"] == 1 and stats["cached"] and not stats["extended"], stats
    _check(home, tmp_path, "s2", monkeypatch)

    # Late turns for an old day: that day extended; the windows referencing it recomputed from cached sums.
    _add(home, "late-", 3, 20, hours, seed=102)
    _, stats = _run(home, monkeypatch)
    assert stats["extended"] == 1 and not stats["recomputed"], stats
    _check(home, tmp_path, "s3", monkeypatch)

    # A new harm classifier re-scores day 4 and new turns arrive that day: the re-scored turns change that day's
    # prompt mix, so the day is recomputed, not extended.
    _rescore(home, 4)
    _add(home, "after-rescore-", 4, 15, hours, seed=103)
    _, stats = _run(home, monkeypatch)
    assert stats["recomputed"] == 1 and not stats["extended"], stats
    _check(home, tmp_path, "s4", monkeypatch)

    # A new scorer version (a plugin dimension): every reply re-scored, every cached date stale.
    (root / "monitor.toml").write_text(CONFIG.format(g=granularity) + PLUGIN)
    home = Home.open(root)
    run_values(JobContext(home, NOW))
    _, stats = _run(home, monkeypatch)
    assert stats["recomputed"] and not stats["extended"] and not stats["cached"], stats
    rows = _check(home, tmp_path, "s5", monkeypatch)
    assert any(json.loads(r["segment"]).get("dimension") == "kitchen_talk" for r in rows.values())

    # And extending works under the new identity.
    _add(home, "last-", DAYS - 1, 25, hours, seed=104)
    _, stats = _run(home, monkeypatch)
    assert stats["extended"] == 1 and not stats["recomputed"], stats
    _check(home, tmp_path, "s6", monkeypatch)


def test_an_infinite_score_sends_the_job_to_the_per_reply_path():
    class Cfg:
        drift_method, min_n, reference, reference_days = None, 5, "previous_days", 1
        baseline_start = baseline_end = baseline_model = None

    days = [dt.datetime(2026, 10, 1), dt.datetime(2026, 10, 2)]
    key = {"model": "m1", "attribute": None, "value": None}

    def frames(infinite: int):
        sums = pd.DataFrame([{"window_start": w, **key, "dimension": d, "n_complete": n_c, "n_partial": None,
                              "n_nonzero": n_nz, "total": tot, "total_sq": sq, "positive": n_nz, "negative": 0,
                              "infinite": infinite if (w, d) == (days[1], "hedging") else 0}
                             for w in days for d, n_c, n_nz, tot, sq in ((None, 20, None, None, None),
                                                                         ("hedging", None, 6, 9.0, 17.5))])
        counts = pd.DataFrame([{"window_start": w, **key, "kind": "prompt_category", "category": "crime", "n": 20,
                                "n_scored": 20} for w in days])
        return sums, counts

    ref = V.Reference(Cfg(), "day")
    rows = V.compute_from_sums(*frames(0), [days[1]], ref, ["hedging"], {"hedging": "epistemic"}, 0.2, 5, "day")
    drift = [r for r in rows if r["metric"] == "value_drift"]
    assert len(drift) == 2 and all(json.loads(r["details"])["p_value"] == 1.0 for r in drift)  # same both days
    assert V.compute_from_sums(*frames(1), [days[1]], ref, ["hedging"], {"hedging": "epistemic"}, 0.2, 5,
                               "day") is None


def test_a_zero_effect_has_no_direction_whatever_its_rounding():
    """The cached sums and a recomputation agree on an effect to ~1e-15, not on the sign of a zero: CI once saw
    'down' on one path and no direction on the other for a dimension with the same mean on both sides."""
    from monitor.jobs.value_drift import _direction

    assert [_direction(x) for x in (-1e-17, 0.0, 3e-16, None)] == [None] * 4
    assert (_direction(0.01), _direction(-0.01)) == ("up", "down")
