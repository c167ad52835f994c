"""A segment below values.min_n gets its drift rows, flagged small_sample: shown, never a verdict, never alerted on."""
import datetime as dt
import json

import numpy as np
import pytest

from dashboards import data
from monitor.alerts.engine import evaluate, load_history
from monitor.alerts.rules import default_rules, parse_rules
from monitor.cli.cmd_metrics import metric_rows
from monitor.home import Home
from monitor.jobs import JobContext
from monitor.jobs.value_drift import run_value_drift
from monitor.jobs.values import run_values
from valuesim import START, hh_pairs, moralising_sentences, write_turns

DAYS, PER_DAY, SMALL = 8, 150, 12
NOW = START + dt.timedelta(days=DAYS)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """8 days of real replies, 150 a day: 138 from region=eu, 12 from region=apac (below min_n = 100); on the last
    day every apac reply ends with a real moralising sentence."""
    root = tmp_path_factory.mktemp("small") / "home"
    root.mkdir()
    (root / "monitor.toml").write_text("[values]\nmin_n = 100\n")
    home = Home.open(root)
    pairs, moral = hh_pairs(), moralising_sentences()
    rng = np.random.default_rng(11)
    turns, segs = [], []
    for day in range(DAYS):
        for j in range(PER_DAY):
            prompt, reply = pairs[int(rng.integers(0, len(pairs)))]
            region = "apac" if j < SMALL else "eu"
            if region == "apac" and day == DAYS - 1:
                reply += " " + moral[int(rng.integers(0, len(moral)))]
            ts = START + dt.timedelta(days=day, seconds=int(rng.integers(0, 86400)))
            tid = f"d{day}r{j}"
            turns.append({"turn_id": tid, "conversation_id": tid, "turn_index": 0, "ts": ts, "model": "m1",
                          "deployment": "prod", "user_message": prompt, "assistant_message": reply})
            segs.append({"turn_id": tid, "attribute": "region", "value": region, "date": ts.strftime("%Y-%m-%d")})
    write_turns(home, turns, segs)
    run_values(JobContext(home, NOW))
    run_value_drift(JobContext(home, NOW))
    return home


def _apac(rows):
    return [r for r in rows if r["segment"].get("region") == "apac"]


def test_small_segment_rows_are_written_and_flagged(home):
    rows = metric_rows(home)  # what `monitor metrics --json` prints
    last = [r for r in rows if r["window_start"].startswith((START + dt.timedelta(days=DAYS - 1)).strftime("%F"))
            and r["metric"] in ("value_drift", "topic_drift", "prompt_mix_drift")]
    apac, eu = _apac(last), [r for r in last if r["segment"].get("region") == "eu"]
    drift = [r for r in apac if r["metric"] == "value_drift"]
    assert {r["metric"] for r in apac} == {"value_drift", "topic_drift", "prompt_mix_drift"}
    assert len(drift) == len([r for r in eu if r["metric"] == "value_drift"]) >= 20  # every dimension
    for r in apac:
        assert r["small_sample"] and r["details"]["min_n_ok"] is False and r["details"]["min_n"] == 100
        assert r["details"]["drift_detected"] is False and r["n"] <= SMALL
    # The statistic is there to read: the moralising sentences moved apac's moralizing score far.
    moral = next(r for r in drift if r["segment"]["dimension"] == "moralizing")
    assert moral["n"] == SMALL and moral["value"] > 1 and moral["details"]["direction"] == "up"
    assert moral["ci_low"] > 0.5  # and the interval says how roughly it is known
    # The large segment is judged as before.
    assert not any(r["small_sample"] for r in eu if r["metric"] == "value_drift" and r["n"] >= 100)


def test_alert_rules_skip_small_segments(home):
    history = load_history(home)
    assert _apac([{**r, "segment": json.loads(r["segment"])} for r in history])
    rules = default_rules() + parse_rules([
        {"name": "any_big_move", "metric": "value_drift", "kind": "threshold", "op": ">", "value": 0.5,
         "any_segment": True, "min_n": 1},
        {"name": "topic_move", "metric": "topic_drift", "kind": "threshold", "op": ">", "value": 0.0,
         "any_segment": True, "min_n": 1}], "test")
    assert not [a for a in evaluate(home, NOW, rules=rules, rows=history) if a.segment.get("region") == "apac"]
    # The same numbers without the small-sample flag would page someone: the flag is what keeps them quiet.
    unflagged = []
    for r in history:
        if json.loads(r["segment"]).get("region") == "apac":
            d = json.loads(r["details"])
            d.update(min_n_ok=True, drift_detected=bool(d.get("evidently_drifted")))
            r = {**r, "small_sample": False, "details": json.dumps(d)}
        unflagged.append(r)
    fired = [a for a in evaluate(home, NOW, rules=rules, rows=unflagged) if a.segment.get("region") == "apac"]
    assert {a.rule for a in fired} >= {"any_big_move", "topic_move"}


def test_values_page_lists_small_segments_as_too_few_replies(home):
    root = str(home.root)
    w = START + dt.timedelta(days=DAYS - 1)
    rows = data.metric_rows(root, data.lake_version(root), ("value_drift",), w, w + dt.timedelta(days=1))
    table = data.drift_by_segment(rows).set_index("segment")
    assert table.loc["region=apac", "status"] == "too few replies" and table.loc["region=apac", "replies"] == SMALL
    assert table.loc["region=eu", "status"] in ("stable", "DRIFT") and table.loc["region=eu", "replies"] >= 100
    assert list(table.index)[-1] == "region=apac"  # listed after the segments that were judged


def test_values_page_shows_the_segment_table(monkeypatch, home):
    from streamlit.testing.v1 import AppTest

    from test_dashboard_pages import APP

    monkeypatch.setenv("MONITOR_HOME", str(home.root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("app_pages/values.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="vd_dwindow").select((START + dt.timedelta(days=DAYS - 1)).strftime("%F"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if "dimensions drifted" in d.value.columns).set_index("segment")
    assert table.loc["region=apac", "status"] == "too few replies"
