"""value_drift from per-window sums (the default path) writes the same rows as the per-reply path it replaced."""
import datetime as dt
import json
import math
import shutil

import numpy as np
import pytest
from scipy import stats

import monitor.jobs.value_drift as V
from monitor.db import connect
from monitor.home import Home
from monitor.jobs import JobContext
from monitor.jobs.values import run_values
from monitor.values import drift as D
from valuesim import START, hh_pairs, write_turns

DAYS = 9
# Replies a day: day 2 is tiny (below min_n), the others vary; day 0 has no reference.
PER_DAY = [70, 60, 6, 55, 80, 50, 65, 75, 60]
MODELS = ["m1", "m2", None]


def _lake(root, toml: str, hours: bool = False) -> Home:
    """Real HH-RLHF replies over DAYS days: three models (one unnamed, one only on some days), two segment
    attributes (a reply with two regions, replies without segments), unscored replies, a third of the replies
    without a classifier score (no `refusal` dimension: partial replies), prompt-harm categories, a plugin
    dimension that is zero everywhere except in a few replies."""
    root.mkdir(parents=True)
    (root / "monitor.toml").write_text(toml)
    home = Home.open(root)
    pairs = hh_pairs()
    rng = np.random.default_rng(7)
    turns, segs, scores = [], [], []
    k = 0
    for day, count in enumerate(PER_DAY):
        for j in range(count):
            prompt, reply = pairs[int(rng.integers(0, len(pairs)))]
            if j % 23 == 5:
                reply = "ok"  # too short: unscored
            if day >= 6 and j % 9 == 0:
                reply += " Bake the bread in a hot oven."  # the plugin dimension appears late
            model = MODELS[j % 3] if not (day in (3, 4) and j % 3 == 1) else "m1"
            sec = int(rng.integers(0, 5400 if hours else 86400))
            ts = START + dt.timedelta(days=day, seconds=sec)
            tid = f"t{k:05d}"
            k += 1
            turns.append({"turn_id": tid, "conversation_id": tid, "turn_index": 0, "ts": ts, "model": model,
                          "deployment": "prod", "user_message": prompt, "assistant_message": reply})
            date = ts.strftime("%Y-%m-%d")
            if j % 11:
                segs.append({"turn_id": tid, "attribute": "region", "value": ["eu", "us"][j % 2], "date": date})
                segs.append({"turn_id": tid, "attribute": "plan", "value": ["free", "pro", "team"][j % 3],
                             "date": date})
            if j == 4:
                segs.append({"turn_id": tid, "attribute": "region", "value": "apac", "date": date})
            if j % 3:
                scores.append({"turn_id": tid, "refusal": "compliance", "refusal_score": float(rng.random()),
                               "prompt_harm": ["harmful", "benign"][j % 2], "prompt_harm_score": 0.5,
                               "prompt_harm_category": ["crime", None, "violence", None][j % 4],
                               "refusal_version": "t", "harm_version": "t", "backend": "t", "scored_at": ts,
                               "date": date})
    write_turns(home, turns, segs, scores)
    run_values(JobContext(home, START + dt.timedelta(days=DAYS)))
    return home


CONFIG = ('[metrics]\ngranularity = "{g}"\n[values]\nmin_n = 15\n{extra}'
          '[[values.dimensions]]\nname = "kitchen_talk"\nfamily = "cultural"\nterms = ["bread", "oven"]\n')


def _rows(home, force: bool, monkeypatch, queried: list | None = None) -> list[dict]:
    """The rows one run of the job writes, on the per-reply path (`force`) or the sums path."""
    monkeypatch.setattr(V, "FORCE_ROWS", force)
    used = []
    real, query = V.compute_from_sums, V._query_sums
    monkeypatch.setattr(V, "compute_from_sums", lambda *a, **k: used.append(1) or real(*a, **k))
    monkeypatch.setattr(V, "_query_sums", lambda *a, **k: (queried if queried is not None else []).append(a[2:4])
                        or query(*a, **k))
    ctx = JobContext(home, START + dt.timedelta(days=DAYS))
    V.run_value_drift(ctx)
    con = connect(home)
    try:
        df = con.execute("SELECT * EXCLUDE (run_id, computed_at) FROM metrics_log WHERE job = 'value_drift' "
                         "AND run_id = $r", {"r": ctx.run_id}).df()
    finally:
        con.close()
    assert bool(used) != force  # the path that was asked for ran
    return df.to_dict("records")


def _more(home, hours: bool):
    """New replies on the last day and a late one on day 3, scored by the values job."""
    pairs = hh_pairs()
    turns = []
    for j in range(40):
        day = DAYS - 1 if j else 3
        ts = START + dt.timedelta(days=day, seconds=(j * 131) % (5400 if hours else 86400))
        turns.append({"turn_id": f"late{j}", "conversation_id": f"late{j}", "turn_index": 0, "ts": ts,
                      "model": MODELS[j % 3], "deployment": "prod", "user_message": pairs[j][0],
                      "assistant_message": pairs[900 + j][1]})
    write_turns(home, turns, [{"turn_id": t["turn_id"], "attribute": "region", "value": "eu",
                               "date": t["ts"].strftime("%Y-%m-%d")} for t in turns])
    run_values(JobContext(home, START + dt.timedelta(days=DAYS)))


def _same(a, b, path=""):
    """Differences between two rows / details (floats to 1e-9 relative)."""
    if isinstance(a, float) and isinstance(b, float):
        if (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
            return []
        return [(path, a, b)]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [(path, sorted(a), sorted(b))]
        return [x for k in a for x in _same(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [(path, a, b)]
        return [x for i, (p, q) in enumerate(zip(a, b)) for x in _same(p, q, f"{path}[{i}]")]
    return [] if a == b and type(a) is type(b) else [(path, a, b)]


def _compare(old: list[dict], new: list[dict]):
    key = lambda r: (r["metric"], r["window_start"], r["model"] or "", r["segment"])  # noqa: E731
    o, n = {key(r): r for r in old}, {key(r): r for r in new}
    assert len(o) == len(old) and len(n) == len(new)
    assert sorted(o) == sorted(n)
    bad = []
    for k in o:
        a, b = dict(o[k]), dict(n[k])
        da, db = json.loads(a.pop("details")), json.loads(b.pop("details"))
        a = {c: (None if isinstance(v, float) and math.isnan(v) else v) for c, v in a.items()}
        b = {c: (None if isinstance(v, float) and math.isnan(v) else v) for c, v in b.items()}
        bad += _same(a, b, str(k)) + _same(da, db, str(k) + " details")
    assert not bad, bad[:10]


@pytest.mark.parametrize("granularity,extra", [
    ("day", ""),
    ("hour", ""),
    ("day", "reference = \"baseline_window\"\nbaseline_start = \"2026-10-02\"\nbaseline_end = \"2026-10-04\"\n"),
])
def test_sums_path_writes_the_rows_of_the_per_reply_path(tmp_path, monkeypatch, granularity, extra):
    home = _lake(tmp_path / "a", CONFIG.format(g=granularity, extra=extra), hours=granularity == "hour")
    shutil.copytree(home.root, tmp_path / "b")
    twin = Home.open(tmp_path / "b")
    old, new = _rows(home, True, monkeypatch), _rows(twin, False, monkeypatch)
    _compare(old, new)
    details = [json.loads(r["details"]) for r in new]
    metrics = {r["metric"] for r in new}
    assert metrics == {"value_drift", "topic_drift", "prompt_mix_drift"}
    # The edge cases are there: groups below min_n, no reference, untestable dimensions, segments, three models.
    assert any(r["small_sample"] for r in new) and any(not r["small_sample"] for r in new)
    assert any(d.get("note") for d in details) and any(d.get("n_reference") == 0 for d in details)
    # Mix drift rows carry their interval (a seeded bootstrap of the counts: the same on both paths).
    cis = [(r["ci_low"], r["ci_high"]) for r in new if r["metric"] == "topic_drift" and not math.isnan(r["ci_low"])]
    assert cis and all(0 <= lo <= hi for lo, hi in cis)
    assert {r["model"] for r in new} >= {"m1", "m2", "unknown", None}
    segs = {tuple(sorted(k for k in json.loads(r["segment"]) if k != "dimension")) for r in new}
    assert ("region",) in segs and ("plan",) in segs
    # A segment below min_n (apac: one reply a day) has its rows on both paths, flagged, never a verdict.
    apac = [r for r in new if json.loads(r["segment"]).get("region") == "apac"]
    assert apac and all(r["small_sample"] and not json.loads(r["details"])["drift_detected"] for r in apac)
    # Replies without a classifier score have no `refusal` score: fewer of them than of any lexicon dimension.
    by = {(r["window_start"], r["model"], json.loads(r["segment"])["dimension"]): r["n"] for r in new
          if r["metric"] == "value_drift" and len(json.loads(r["segment"])) == 1}
    assert any(n < by[(w, m, "hedging")] for (w, m, dim), n in by.items() if dim == "refusal")
    kitchen = [d for d in details if d.get("dimension") == "kitchen_talk" and "p_value" in d]
    assert any(d["p_value"] == 1.0 and d["effect_size"] == 0.0 for d in kitchen)  # all zero on both sides
    # An incremental run after new and late replies: the sums path recomputes only the partitions whose files
    # changed (the others come from the previous run of this process) and still writes the per-reply rows.
    _more(home, granularity == "hour")
    _more(twin, granularity == "hour")
    queried = []
    old, new = _rows(home, True, monkeypatch), _rows(twin, False, monkeypatch, queried)
    assert new
    _compare(old, new)
    if not extra:
        assert queried and all(end - start <= dt.timedelta(days=1) for start, end in queried), queried


def test_sums_path_is_chosen_only_where_it_applies():
    class Cfg:
        drift_method, min_n, reference, reference_days = None, 100, "previous_days", 7
        baseline_start = baseline_end = baseline_model = None

    cfg = Cfg()
    ref = V.Reference(cfg, "day")
    w = dt.datetime(2026, 11, 3)
    assert V.uses_sums(cfg, ref, [ref.range(w)])
    cfg.drift_method = "ks"
    assert not V.uses_sums(cfg, ref, [ref.range(w)])  # an Evidently method needs the distributions
    cfg.drift_method = "mean_shift"
    assert V.uses_sums(cfg, ref, [ref.range(w)])
    cfg.reference, cfg.baseline_start, cfg.baseline_end = "baseline_window", "2026-11-01 12:00", "2026-11-02"
    ref = V.Reference(cfg, "day")
    assert not V.uses_sums(cfg, ref, [ref.range(w)])  # a reference cut inside a window
    cfg.reference, cfg.baseline_model = "baseline_model", "m1"
    assert not V.uses_sums(cfg, V.Reference(cfg, "day"), [(w, w)])  # reweighting needs the replies


def test_vectorised_fisher_equals_scipy_bit_for_bit():
    rng = np.random.default_rng(3)
    tables = [(0, 0, 0, 0), (0, 5, 0, 7), (5, 0, 7, 0), (1, 0, 0, 1), (3, 3, 3, 3), (2, 5, 5, 2), (50, 50, 50, 50)]
    tables += [(x, 20 - x, 10, 10) for x in range(21)]  # symmetric tables: ties at the cut
    for big in (False, True):
        for _ in range(150):
            nc, nr = (int(rng.integers(1, 400)), int(rng.integers(1, 3000))) if not big else \
                (int(rng.integers(1000, 40000)), int(rng.integers(1000, 30000)))
            pc = float(rng.choice([0.0, 0.001, 0.02, 0.3, 0.5, 1.0]))
            pr = min(1.0, pc * float(rng.choice([1.0, 1.5, 0.5, 3.0])))
            kc, kr = int(rng.binomial(nc, pc)), int(rng.binomial(nr, pr))
            tables.append((kc, nc - kc, kr, nr - kr))
    got = D.fisher_exact_two_sided(*np.array(tables).T)
    want = [stats.fisher_exact([[a, b], [c, d]])[1] for a, b, c, d in tables]
    assert list(got) == want


def test_mean_shift_from_sums_equals_mean_shift():
    rng = np.random.default_rng(5)
    cases = [(rng.exponential(1, 300) * (rng.random(300) < 0.1), rng.exponential(1, 80) * (rng.random(80) < 0.3)),
             (np.zeros(50), np.zeros(20)), (np.zeros(50), np.ones(20)), (rng.normal(0, 1, 40), rng.normal(1, 1, 30)),
             (rng.random(500), rng.random(200) + 0.01)]
    for r, c in cases:
        want = D.mean_shift(r, c)
        m2 = lambda x: float(((x - x.mean()) ** 2).sum())  # noqa: E731
        got = D.mean_shift_stats([len(r)], [r.mean()], [m2(r)], [(r > 0).sum()], [r.min() >= 0],
                                 [len(c)], [c.mean()], [m2(c)], [(c > 0).sum()], [c.min() >= 0])
        assert got[0][0] == pytest.approx(want[0], rel=1e-9, abs=1e-12)
        assert got[1][0] == pytest.approx(want[1], rel=1e-9, abs=1e-300)
