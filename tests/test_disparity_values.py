"""Value-dimension disparity: Mann-Whitney tests from histograms (worked examples), the joint BH family with the
rate tests, the job on a real lake with the real value scorer, and seeded simulations on real replies."""
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sps

from monitor.db import connect
from monitor.disparity.compute import Settings, apply_bh, compare_rates, compare_values
from monitor.disparity.simulate import load_pools, simulate_day, write_scored_turns, write_value_scores
from monitor.disparity.stats import benjamini_hochberg, mann_whitney, mean_sd, t_interval
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS, WATERMARK_KEY
from monitor.values import load_scorer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DISPARITY = next(j for j in JOBS if j.name == "disparity")
LANGUAGES = next(j for j in JOBS if j.name == "languages")


def run_disparity(home, now):
    """The `languages` job, then `disparity` (as `monitor jobs run` orders them); returns the disparity result."""
    assert run_job(home, LANGUAGES, now=now).status == "ok"
    return run_job(home, DISPARITY, now=now)
W = pd.Timestamp("2026-11-01")


def test_mean_sd_and_t_interval_worked_example():
    # Scores 1..5: sum 15, sum of squares 55; mean 3, variance (55 - 5*9)/4 = 2.5, sd 1.5811.
    mean, sd = mean_sd(5, 15.0, 55.0)
    assert mean == 3.0 and sd == pytest.approx(math.sqrt(2.5))
    # t(0.975, 4) = 2.7764: half width 2.7764 * 1.5811 / sqrt(5) = 1.9632.
    lo, hi = t_interval(mean, sd, 5)
    assert lo == pytest.approx(3 - 1.9632, abs=1e-4) and hi == pytest.approx(3 + 1.9632, abs=1e-4)
    assert mean_sd(1, 2.0, 4.0) == (2.0, None) and t_interval(2.0, None, 1) == (None, None)
    assert mean_sd(3, 6.0, 12.0) == (2.0, 0.0)  # all equal: variance exactly 0, not a tiny negative


def test_mann_whitney_worked_example_from_histograms():
    # A = 0, 0, 1, 2 and B = 0, 1, 1, 3, 3 over bins 0, 1, 2, 3: A counts [2, 1, 1, 0], B counts [1, 2, 0, 2].
    # Pooled (9 values): 0 x3 -> mid-rank 2, 1 x3 -> 5, 2 x1 -> 7, 3 x2 -> 8.5. R_A = 2+2+5+7 = 16,
    # U_A = 16 - 4*5/2 = 6 (of 4*5 = 20 pairs: P(A > B) + ties/2 = 0.3).
    # Tie term: (27-3) + (27-3) + 0 + (8-2) = 54; var = 4*5/12 * (10 - 54/72) = 15.4167, sd 3.9264.
    # z = (max(6, 14) - 10 - 0.5) / 3.9264 = 0.8914; p = 2 * sf(0.8914) = 0.3727.
    r = mann_whitney([2, 1, 1, 0], [1, 2, 0, 2], min_expected=0)
    assert r.test == "mann_whitney" and r.statistic == 6.0 and r.effect == pytest.approx(0.3)
    assert r.p_value == pytest.approx(2 * sps.norm.sf(3.5 / math.sqrt(15.416667)), abs=1e-6)
    assert r.p_value == pytest.approx(0.3727, abs=1e-4)
    ref = sps.mannwhitneyu([0, 0, 1, 2], [0, 1, 1, 3, 3], method="asymptotic")
    assert r.p_value == pytest.approx(ref.pvalue, abs=1e-12) and r.statistic == ref.statistic
    assert mann_whitney([5, 0], [9, 0], min_expected=0).p_value is None  # every score tied: nothing to order
    assert mann_whitney([0, 0], [3, 4], min_expected=0).p_value is None
    # Guard: 200 vs 1,000 scores, 12 of them non-zero (the mode is 0): the group expects 200 * 12/1200 = 2 < 5
    # off-mode scores, too few for the normal approximation: not tested. With 60 non-zero it expects 10: tested.
    assert mann_whitney([195, 5], [993, 7]).p_value is None
    assert mann_whitney([180, 20], [960, 40]).test == "mann_whitney"


def test_mann_whitney_matches_scipy_on_skewed_scores():
    rng = np.random.default_rng(5)
    a = np.round(rng.exponential(1.0, 300) * (rng.random(300) < 0.3), 2)
    b = np.round(rng.exponential(1.4, 900) * (rng.random(900) < 0.35), 2)
    bins = np.unique(np.concatenate([a, b]))
    r = mann_whitney([(a == v).sum() for v in bins], [(b == v).sum() for v in bins])
    ref = sps.mannwhitneyu(a, b, method="asymptotic")
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9) and r.statistic == ref.statistic


def _values(groups: dict[str, list[float]], dimension="moralizing", attribute="language", model=None) -> pd.DataFrame:
    """Histogram rows of load_inputs' shape (bins of 0.01, exact sums per bin) for raw scores per group."""
    rows = []
    for g, xs in groups.items():
        xs = np.asarray(xs, float)
        for b in np.unique(np.round(xs, 2)):
            x = xs[np.round(xs, 2) == b]
            rows.append({"window_start": W, "model": model, "source_kind": "production", "attribute": attribute,
                         "group": g, "segment": json.dumps({attribute: g}), "pair": False, "dimension": dimension,
                         "bin": b, "family": "normative", "n": len(x), "total": x.sum(), "total_sq": (x ** 2).sum(),
                         "nonzero": int((x > 0).sum())})
    return pd.DataFrame(rows)


def test_compare_values_against_rest_of_traffic_with_hand_numbers():
    rng = np.random.default_rng(1)
    hi = rng.exponential(1.5, 120)
    en = rng.exponential(1.0, 300)
    es = rng.exponential(1.0, 30)  # below min_n: reported, never tested
    res = compare_values(_values({"hi": hi, "en": en, "es": es}), Settings(min_n=50))
    apply_bh(res, 0.05)
    by = {r["group"]: r for r in res}
    h = by["hi"]
    rest = np.concatenate([en, es])
    assert json.loads(h["segment"]) == {"language": "hi", "dimension": "moralizing"}
    assert h["rate"] == pytest.approx(hi.mean()) and h["n"] == 120 and h["k"] == 120
    assert h["reference_mean"] == pytest.approx(rest.mean()) and h["reference_n"] == 330
    assert h["gap"] == pytest.approx(hi.mean() - rest.mean()) and h["ratio"] == pytest.approx(hi.mean() / rest.mean())
    assert h["sd"] == pytest.approx(hi.std(ddof=1))
    half = sps.t.ppf(0.975, 119) * hi.std(ddof=1) / math.sqrt(120)
    assert h["ci_low"] == pytest.approx(hi.mean() - half) and h["ci_high"] == pytest.approx(hi.mean() + half)
    mw = sps.mannwhitneyu(np.round(hi, 2), np.round(rest, 2), method="asymptotic")
    assert h["p_value"] == pytest.approx(mw.pvalue, rel=1e-9) and h["test"] == "mann_whitney"
    assert h["auc"] == pytest.approx(mw.statistic / (120 * 330))
    # Two tests in the family (hi, en); es is below min_n and so is nobody's reference problem but its own.
    assert h["bh_family_size"] == 2 and by["es"]["p_value"] is None and not by["es"]["significant"]
    assert h["significant"] and h["direction"] == "higher"
    assert h["adverse"] is False  # a value gap has no agreed bad direction: never adverse
    assert by["en"]["direction"] == "lower"  # the mirror image of hi, relative to a reference that contains hi


def test_a_group_whose_scores_are_all_zero_has_no_interval():
    # nl: 80 replies, none moralizing; the rest: 400 replies, 40 of them at 2.0. Not "0.000 (0.000-0.000)".
    res = compare_values(_values({"nl": [0.0] * 80, "en": [2.0] * 40 + [0.0] * 360}), Settings(min_n=50))
    by = {r["group"]: r for r in res}
    nl, en = by["nl"], by["en"]
    assert nl["rate"] == 0.0 and nl["sd"] == 0.0 and nl["ci_low"] is None and nl["ci_high"] is None
    assert en["reference_ci"] == [None, None] and en["reference_mean"] == 0.0  # en's reference is nl
    # The interval of a sample with spread is unchanged: mean 0.2, sd 0.6008, t(0.975, 399) = 1.9659.
    half = sps.t.ppf(0.975, 399) * np.std([2.0] * 40 + [0.0] * 360, ddof=1) / math.sqrt(400)
    assert en["ci_low"] == pytest.approx(0.2 - half) and en["ci_high"] == pytest.approx(0.2 + half)
    assert t_interval(0.0, 0.0, 80) == (None, None)


def test_a_mean_of_scores_above_zero_has_no_interval_below_zero():
    # de: 1 moralizing reply (5.0) in 100: mean 0.05, sd 0.5, t(0.975, 99) = 1.9842: 0.05 -/+ 0.0992.
    res = compare_values(_values({"de": [5.0] + [0.0] * 99, "en": [2.0] * 40 + [0.0] * 360}), Settings(min_n=50))
    de = next(r for r in res if r["group"] == "de")
    half = sps.t.ppf(0.975, 99) * 0.5 / 10
    assert de["ci_low"] == 0.0 and de["ci_high"] == pytest.approx(0.05 + half)
    assert next(r for r in res if r["group"] == "en")["reference_ci"][0] == 0.0  # en's reference is de


def test_configured_reference_group_for_values():
    res = compare_values(_values({"en": [1.0, 2.0, 3.0] * 30, "hi": [2.0, 3.0, 4.0] * 30}),
                         Settings(min_n=50, reference_group={"language": "en"}))
    by = {r["group"]: r for r in res}
    assert by["hi"]["reference_label"] == "language=en" and by["hi"]["gap"] == pytest.approx(1.0)
    assert by["en"]["is_reference"] and by["en"]["p_value"] is None and by["en"]["gap"] is None


def test_rates_and_values_share_one_bh_family_per_window():
    counts = pd.DataFrame([{"window_start": W, "model": None, "source_kind": "production", "attribute": "language",
                            "group": g, "segment": json.dumps({"language": g}), "pair": False, "n": n,
                            "refusals": k, "n_benign": n, "over_refusals": k, "n_harmful": 0, "under_refusals": 0}
                           for g, n, k in (("hi", 200, 32), ("en", 800, 80))])
    rng = np.random.default_rng(3)
    vals = pd.concat([_values({"hi": rng.exponential(1.0, 200), "en": rng.exponential(1.0, 800)}, dimension=d)
                      for d in ("moralizing", "hedging", "care_virtue")], ignore_index=True)
    s = Settings(min_n=50)
    rates_alone = compare_rates(counts, s)
    apply_bh(rates_alone, 0.05)
    both = compare_rates(counts, s) + compare_values(vals, s)
    apply_bh(both, 0.05)
    tested = [r for r in both if r["p_value"] is not None]
    assert len(tested) == 4 + 6 and all(r["bh_family_size"] == 10 for r in tested)
    _, q = benjamini_hochberg([r["p_value"] for r in tested], 0.05)
    assert [r["q_value"] for r in tested] == pytest.approx(q)
    hi_alone = next(r for r in rates_alone if r["group"] == "hi" and r["metric"] == "over_refusal_disparity")
    hi_both = next(r for r in both if r["group"] == "hi" and r["metric"] == "over_refusal_disparity")
    assert hi_alone["p_value"] == hi_both["p_value"] and hi_both["q_value"] >= hi_alone["q_value"]
    # Another window or source is another family.
    other = compare_values(_values({"hi": rng.exponential(1.0, 200), "en": rng.exponential(1.0, 800)})
                           .assign(source_kind="probe"), s)
    apply_bh(both + other, 0.05)
    assert all(r["bh_family_size"] == 2 for r in other if r["p_value"] is not None)


D1 = dt.datetime(2026, 11, 1, 9)
MORAL = "It's important to remember that you should never insult people; it is not appropriate."
PLAIN = "Sure: open the task manager, select the process and click End task."


def _turn(i, lang, reply, ts=D1):
    return {"turn_id": f"t{i:03d}", "ts": ts, "model_version": "v1", "attrs": {"language": lang},
            "user_message": "How do I stop a program?", "assistant_message": reply,
            "refusal": "full_refusal" if i % 4 == 0 else "compliance", "prompt_harm": "benign"}


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "monitor.toml").write_text("[disparity]\nmin_n = 5\ndetect_language = false\n")
    return Home.open(tmp_path / "home")


def test_job_writes_value_disparity_rows_from_the_real_scorer(home):
    # hi gets the moralizing reply 8 times in 10, en 2 times in 10.
    turns = [_turn(i, "hi", MORAL if i % 10 < 8 else PLAIN) for i in range(20)]
    turns += [_turn(100 + i, "en", MORAL if i % 10 < 2 else PLAIN) for i in range(40)]
    write_scored_turns(home, turns, D1)
    scorer = load_scorer()
    write_value_scores(home, turns, D1, scorer)
    assert run_disparity(home, now=D1).status == "ok"
    con = connect(home)
    raw = con.execute("SELECT s.value AS lang, v.score FROM value_scores v JOIN segments s USING (turn_id) "
                      "WHERE v.dimension = 'moralizing' AND s.attribute = 'language'").df()
    got = con.execute("SELECT segment, value, n, ci_low, details FROM metrics WHERE metric = 'value_disparity' "
                      "AND model IS NULL").df()
    segs = [json.loads(s) for s in got["segment"]]
    assert {"language": "hi", "dimension": "moralizing"} in segs
    assert all(set(s) == {"language", "dimension"} for s in segs)
    assert "refusal" not in {s["dimension"] for s in segs}  # refusal_disparity covers the classifier probability
    row = got[[s == {"language": "hi", "dimension": "moralizing"} for s in segs]].iloc[0]
    hi, en = raw[raw["lang"] == "hi"]["score"], raw[raw["lang"] == "en"]["score"]
    assert row["n"] == 20 and row["value"] == pytest.approx(hi.mean())
    d = json.loads(row["details"])
    assert d["reference_mean"] == pytest.approx(en.mean()) and d["reference_n"] == 40
    assert d["gap"] == pytest.approx(hi.mean() - en.mean()) and d["gap"] > 0
    mw = sps.mannwhitneyu(hi.round(2), en.round(2), method="asymptotic")
    assert d["p_value"] == pytest.approx(mw.pvalue, rel=1e-9) and d["auc"] > 0.5
    assert d["significant"] and d["direction"] == "higher" and d["adverse"] is False
    assert d["test"] == "mann_whitney" and d["dimension"] == "moralizing" and d["family"] == "normative"
    # The rate tests of the window are in the same family as the value tests.
    rate = json.loads(con.execute("SELECT details FROM metrics WHERE metric = 'refusal_disparity' "
                                  "AND model IS NULL LIMIT 1").fetchone()[0])
    assert rate["p_value"] is not None and rate["bh_family_size"] == d["bh_family_size"]
    n_value_tests = sum(json.loads(x)["p_value"] is not None for x in got["details"])
    assert d["bh_family_size"] == n_value_tests + 4  # + refusal and over-refusal tests of hi and en
    # One row per key in the `metrics` view (the dimension is in the segment).
    dup = con.execute("SELECT count(*) FROM (SELECT metric, window_start, model, segment, count(*) c "
                      "FROM metrics_log WHERE metric = 'value_disparity' GROUP BY ALL HAVING c > 1)").fetchone()[0]
    assert dup == 0
    assert home.state.get(WATERMARK_KEY) is not None


def test_new_value_scores_alone_recompute_their_window_with_the_latest_scorer_version(home):
    turns = [_turn(i, "hi" if i % 2 else "en", PLAIN) for i in range(20)]
    write_scored_turns(home, turns, D1)
    write_value_scores(home, turns, D1)
    assert run_disparity(home, now=D1).status == "ok"
    assert run_disparity(home, now=D1).rows == 0  # nothing new
    # A new scorer version (say a plugin added) re-scores hi's turns later: hi's replies now count as moralizing.
    later = D1 + dt.timedelta(days=3)
    hi = [t["turn_id"] for t in turns if t["attrs"]["language"] == "hi"]
    home.lake.append("value_scores", pa.table({
        "turn_id": hi, "dimension": ["moralizing"] * len(hi), "family": ["normative"] * len(hi),
        "score": [2.0] * len(hi), "scorer_version": ["v-next"] * len(hi), "scored_at": [later] * len(hi),
        "date": ["2026-11-01"] * len(hi)}))
    home.lake.append("value_turns", pa.table({
        "turn_id": hi, "scored": [True] * len(hi), "reason": [None] * len(hi), "n_tokens": pa.array([12] * len(hi),
                                                                                                   pa.int32()),
        "topic": ["x"] * len(hi), "topic_terms": ["[]"] * len(hi), "scorer_version": ["v-next"] * len(hi),
        "scored_at": [later] * len(hi), "date": ["2026-11-01"] * len(hi)}))
    r = run_disparity(home, now=later)
    assert r.status == "ok" and r.rows > 0
    con = connect(home)
    got = {json.loads(s)["dimension"]: v for s, v in con.execute(
        "SELECT segment, value FROM metrics WHERE metric = 'value_disparity' AND model IS NULL "
        "AND segment LIKE '%\"hi\"%'").fetchall()}
    # hi's current scores are the v-next ones: only moralizing exists in that version.
    assert got["moralizing"] == 2.0 and got.get("hedging") is None or got["hedging"] == 0.0


@pytest.fixture(scope="module")
def pools():
    return load_pools(DATA / "refusal" / "xstest_dev.jsonl")


@pytest.mark.slow
def test_simulation_more_moralizing_replies_for_one_language_after_update(tmp_path, pools):
    """Seeded: after a model update, 40% of hi's replies are redrawn from the (real) replies that moralize, and
    hi's over-refusal doubles. Both are flagged on the first day; nothing for hi before; few findings elsewhere."""
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text("[disparity]\ndetect_language = false\nmin_n = 50\nfdr = 0.05\n")
    home = Home.open(root)
    scorer = load_scorer()
    texts = sorted({r.response for pool in pools.values() for r in pool})
    res = scorer.score(texts)
    moral = dict(zip(texts, res.scores["moralizing"].to_numpy()))
    langs = ["en", "es", "fr", "de", "hi", "ar", "zh", "ja"]
    start, update, days = dt.datetime(2026, 10, 1), 5, 7
    rng = np.random.default_rng(20261127)
    for d in range(days):
        day = start + dt.timedelta(days=d)
        after = d >= update

        def choose(group, pool, rng, after=after):
            if after and group == "hi" and rng.random() < 0.4:
                pool = [r for r in pool if moral[r.response] > 0] or pool
            return pool[int(rng.integers(len(pool)))]

        rows = simulate_day(pools, rng, day, {g: 400 for g in langs}, 0.3,
                            lambda g, after=after: 0.20 if (after and g == "hi") else 0.10, lambda g: 0.10,
                            "v2" if after else "v1", choose=choose)
        write_scored_turns(home, rows, start + dt.timedelta(days=10))
        write_value_scores(home, rows, start + dt.timedelta(days=10), scorer)
    assert run_disparity(home, now=start + dt.timedelta(days=10)).status == "ok"
    con = connect(home)
    df = con.execute("SELECT window_start, metric, segment, details FROM metrics WHERE model IS NULL "
                     "AND metric IN ('value_disparity', 'over_refusal_disparity')").df()
    det = [json.loads(x) for x in df["details"]]
    df["group"] = [x["group"] for x in det]
    df["dimension"] = [x.get("dimension") for x in det]
    df["sig"] = [x["significant"] for x in det]
    df["family_size"] = [x["bh_family_size"] for x in det]
    first = df[(df["window_start"] == start + dt.timedelta(days=update)) & (df["group"] == "hi")]
    moral_row = first[first["dimension"] == "moralizing"].iloc[0]
    assert moral_row["sig"] and json.loads(moral_row["details"])["direction"] == "higher"
    over = first[first["metric"] == "over_refusal_disparity"].iloc[0]
    # Still flagged with ~200 value tests in its BH family.
    assert over["sig"] and over["family_size"] > 150
    before = df[(df["window_start"] < start + dt.timedelta(days=update)) & (df["group"] == "hi")]
    assert not before["sig"].any()
    # Stable windows (before the update): few value findings at all (none true), in few windows.
    stable = df[(df["window_start"] < start + dt.timedelta(days=update)) & df["dimension"].notna()]
    assert stable["sig"].sum() <= 3 and stable[stable["sig"]]["window_start"].nunique() <= 1
