"""Seeded simulations on real labelled replies (XSTest): a doubled over-refusal after a model update is flagged in
its window; 30 stable days with 8 groups give no more significant findings than the false discovery rate allows."""
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from monitor.db import connect
from monitor.disparity.simulate import load_pools, simulate_day, write_scored_turns
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
LANGS = ["en", "es", "fr", "de", "hi", "ar", "zh", "ja"]
START = dt.datetime(2026, 10, 1)
DISPARITY = next(j for j in JOBS if j.name == "disparity")


@pytest.fixture(scope="module")
def pools():
    return load_pools(DATA / "refusal" / "xstest_dev.jsonl")


def make_home(root: Path) -> Home:
    root.mkdir()
    (root / "monitor.toml").write_text("[disparity]\ndetect_language = false\nmin_n = 50\nfdr = 0.05\n")
    return Home.open(root)


def test_over_refusal_doubling_for_one_language_after_update_is_flagged(tmp_path, pools):
    home = make_home(tmp_path / "home")
    rng = np.random.default_rng(20261126)
    update = 20
    for d in range(26):
        day = START + dt.timedelta(days=d)
        after = d >= update
        rows = simulate_day(pools, rng, day, {g: 400 for g in LANGS}, 0.3,
                            lambda g: 0.20 if (after and g == "hi") else 0.10, lambda g: 0.10,
                            "v2" if after else "v1")
        write_scored_turns(home, rows, START + dt.timedelta(days=30))
    assert run_job(home, DISPARITY, now=START + dt.timedelta(days=30)).status == "ok"
    con = connect(home)
    df = con.execute("""SELECT window_start, model, segment, value, n, details FROM metrics
                        WHERE metric = 'over_refusal_disparity'""").df()
    df["lang"] = [json.loads(s)["language"] for s in df["segment"]]
    df["sig"] = [json.loads(d)["significant"] for d in df["details"]]
    first = df[(df["window_start"] == START + dt.timedelta(days=update)) & (df["lang"] == "hi")]
    assert len(first) == 2  # model v2 and all models
    for d in first["details"]:
        det = json.loads(d)
        assert det["significant"] and det["q_value"] < 0.05 and det["gap"] > 0.05 and det["min_n_ok"]
    # Flagged on most days after the update, and hi is not flagged before it.
    after = df[(df["window_start"] >= START + dt.timedelta(days=update)) & (df["lang"] == "hi") & df["model"].isna()]
    assert after["sig"].mean() >= 0.8
    before = df[(df["window_start"] < START + dt.timedelta(days=update)) & (df["lang"] == "hi")]
    assert not before["sig"].any()


def test_thirty_stable_days_stay_within_the_false_discovery_rate(tmp_path, pools):
    home = make_home(tmp_path / "home")
    rng = np.random.default_rng(99)
    for d in range(30):
        day = START + dt.timedelta(days=d)
        rows = simulate_day(pools, rng, day, {g: 150 for g in LANGS}, 0.3, lambda g: 0.12, lambda g: 0.15,
                            "v1" if d < 15 else "v2")
        write_scored_turns(home, rows, START + dt.timedelta(days=31))
    assert run_job(home, DISPARITY, now=START + dt.timedelta(days=31)).status == "ok"
    con = connect(home)
    df = con.execute("SELECT window_start, metric, model, details FROM metrics WHERE metric LIKE '%disparity'").df()
    det = [json.loads(d) for d in df["details"]]
    df["sig"] = [d["significant"] for d in det]
    df["nominal"] = [d["p_value"] is not None and d["p_value"] < 0.05 for d in det]
    tested = sum(d["p_value"] is not None for d in det)
    windows_with_finding = df[df["sig"]]["window_start"].nunique()
    # No true difference: every finding is false, so BH at 5% keeps P(any finding in a window) <= 0.05, about 1.5
    # windows of 30 expected; P(5 or more | Binomial(30, 0.05)) = 0.016.
    assert windows_with_finding <= 4
    assert tested > 500
    # Without the correction, about 5% of the tests would have "found" a disparity.
    assert df["nominal"].sum() > 3 * df["sig"].sum() and df["nominal"].sum() >= 0.02 * tested
