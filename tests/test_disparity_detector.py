"""Detector fairness as metric rows: per-group precision and recall of the refusal classifier from reviewer labels
in state.sqlite, over a rolling 30 days, written by the disparity job only when labels exist and something changed."""
import datetime as dt
import json

import pytest

from monitor.db import connect
from monitor.disparity.quality import detector_window
from monitor.disparity.simulate import write_scored_turns
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS

DISPARITY = next(j for j in JOBS if j.name == "disparity")
NOW = dt.datetime(2026, 11, 20, 15, 30)
RECENT = dt.datetime(2026, 11, 10, 9)
OLD = dt.datetime(2026, 10, 1, 9)  # more than 30 days before NOW: outside the window


def turn(i, ts, refusal, lang):
    return {"turn_id": f"t{i}", "ts": ts, "model_version": "v1", "attrs": {"language": lang},
            "user_message": "How can I kill a Python process?", "assistant_message": "reply", "refusal": refusal,
            "prompt_harm": "benign"}


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "monitor.toml").write_text("[disparity]\nmin_n = 3\ndetect_language = false\n")
    return Home.open(tmp_path / "home")


def label(home, turn_id, value, at="2026-11-15T00:00:00Z", reviewer="ann"):
    with home.state.tx() as c:
        c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label) VALUES (?, ?, ?, ?)",
                  (turn_id, reviewer, at, value))


def rows(home):
    con = connect(home)
    try:
        df = con.execute("SELECT metric, granularity, window_start, window_end, model, segment, value, ci_low, "
                         "ci_high, n, numerator, small_sample, details FROM metrics "
                         "WHERE metric LIKE 'refusal_detector_%'").df()
    finally:
        con.close()
    df["group"] = [json.loads(s)["language"] for s in df["segment"]]
    return df.set_index(["metric", "group"])


def test_window_is_thirty_days_ending_with_the_day_of_the_run():
    assert detector_window(NOW) == (dt.datetime(2026, 10, 22), dt.datetime(2026, 11, 21))


def test_precision_and_recall_rows_per_group_from_labels(home):
    # (classifier says, reviewer says): hi: TP, FP, FN, TP  en: TP, TN, TP   old hi turn: FP (outside the window)
    data = [(1, RECENT, "full_refusal", "hi", "full_refusal"), (2, RECENT, "full_refusal", "hi", "compliance"),
            (3, RECENT, "compliance", "hi", "partial_refusal"), (4, RECENT, "partial_refusal", "hi", "full_refusal"),
            (5, RECENT, "full_refusal", "en", "full_refusal"), (6, RECENT, "compliance", "en", "compliance"),
            (7, RECENT, "full_refusal", "en", "partial_refusal"), (8, OLD, "full_refusal", "hi", "compliance"),
            (9, RECENT, "compliance", "en", None)]  # t9 is not labelled
    write_scored_turns(home, [turn(i, ts, pred, lang) for i, ts, pred, lang, _ in data], RECENT)
    # No labels yet: no detector rows.
    assert run_job(home, DISPARITY, now=NOW).status == "ok"
    assert rows(home).empty
    for i, *_, truth in data:
        if truth:
            label(home, f"t{i}", truth)
    r = run_job(home, DISPARITY, now=NOW)
    assert r.status == "ok" and r.rows == 4
    df = rows(home)
    p_hi = df.loc[("refusal_detector_precision", "hi")]
    assert p_hi["value"] == pytest.approx(2 / 3) and p_hi["n"] == 3 and p_hi["numerator"] == 2  # t8 is too old
    assert 0 < p_hi["ci_low"] < 2 / 3 < p_hi["ci_high"] < 1 and not p_hi["small_sample"]
    r_hi = df.loc[("refusal_detector_recall", "hi")]
    assert r_hi["value"] == pytest.approx(2 / 3) and r_hi["n"] == 3
    p_en = df.loc[("refusal_detector_precision", "en")]
    assert p_en["value"] == 1.0 and p_en["n"] == 2 and p_en["small_sample"]  # n 2 < min_n 3
    assert p_en["ci_high"] == 1.0
    d = json.loads(p_hi["details"])
    assert (d["tp"], d["fp"], d["fn"], d["tn"], d["n_labelled"]) == (2, 1, 1, 0, 4)
    assert d["reference_value"] == 1.0 and d["reference_n"] == 2 and d["gap"] == pytest.approx(2 / 3 - 1)
    assert d["adverse"] is False and "30 days" in d["window"]
    assert p_hi["granularity"] == "30d" and p_hi["model"] is None
    assert (p_hi["window_start"], p_hi["window_end"]) == (dt.datetime(2026, 10, 22), dt.datetime(2026, 11, 21))


def test_detector_rows_are_rewritten_only_when_labels_scores_or_the_day_change(home):
    write_scored_turns(home, [turn(1, RECENT, "full_refusal", "hi"), turn(2, RECENT, "compliance", "hi")], RECENT)
    label(home, "t1", "full_refusal")
    assert run_job(home, DISPARITY, now=NOW).rows > 0
    assert run_job(home, DISPARITY, now=NOW + dt.timedelta(hours=1)).rows == 0  # nothing changed
    # A reviewer disagrees with the classifier on t2: the recall of hi drops to 1/2.
    label(home, "t2", "partial_refusal", at="2026-11-20T16:00:00Z", reviewer="bob")
    assert run_job(home, DISPARITY, now=NOW + dt.timedelta(hours=2)).rows > 0
    assert rows(home).loc[("refusal_detector_recall", "hi"), "value"] == 0.5
    # The next day is a new rolling window, written even without new labels.
    assert run_job(home, DISPARITY, now=NOW + dt.timedelta(days=1)).rows > 0
    con = connect(home)
    starts = {r[0] for r in con.execute("SELECT DISTINCT window_start FROM metrics "
                                        "WHERE metric = 'refusal_detector_recall'").fetchall()}
    assert starts == {dt.datetime(2026, 10, 22), dt.datetime(2026, 10, 23)}
