"""Seeded simulation on real HH-RLHF replies: stable traffic raises no value drift; a moralising update is caught the day it starts."""
import datetime as dt
import json

import pytest

pytestmark = pytest.mark.slow  # about 50-80 s on the shared 2-core machine

from monitor.db import connect
from monitor.home import Home
from monitor.jobs import JobContext
from monitor.jobs.value_drift import run_value_drift
from monitor.jobs.values import run_values
from valuesim import START, simulate, write_turns

DAYS, PER_DAY, CHANGE_DAY = 30, 400, 20


@pytest.fixture(scope="module")
def drift_rows(tmp_path_factory):
    home = Home.open(tmp_path_factory.mktemp("sim") / "home")
    turns, segs = simulate(DAYS, PER_DAY, seed=20261101, change_day=CHANGE_DAY, share=0.3)
    write_turns(home, turns, segs)
    now = START + dt.timedelta(days=DAYS)
    run_values(JobContext(home, now))
    run_value_drift(JobContext(home, now))
    con = connect(home)
    try:
        df = con.execute("SELECT * FROM metrics WHERE metric = 'value_drift'").df()
        mix = con.execute("SELECT * FROM metrics WHERE metric IN ('topic_drift', 'prompt_mix_drift')").df()
    finally:
        con.close()
    df["d"] = [json.loads(x) for x in df["details"]]
    df["dimension"] = [d["dimension"] for d in df["d"]]
    df["drift"] = [bool(d["drift_detected"]) for d in df["d"]]
    df["day"] = [(w - START).days for w in df["window_start"]]
    mix["drift"] = [bool(json.loads(d).get("drift_detected")) for d in mix["details"]]
    mix["day"] = [(w - START).days for w in mix["window_start"]]
    return df, mix


def test_stable_traffic_raises_no_drift(drift_rows):
    df, mix = drift_rows
    stable = df[df["day"] < CHANGE_DAY]
    # Every dimension, all traffic, the model and both region segments, days 1-19: zero drift verdicts.
    assert len(stable) > 19 * 23 * 3
    assert not stable["drift"].any(), stable[stable["drift"]][["day", "segment", "value"]].to_string()
    assert not mix[mix["day"] < CHANGE_DAY]["drift"].any()


def test_moralising_update_caught_in_its_first_window(drift_rows):
    df, mix = drift_rows
    moral = df[(df["dimension"] == "moralizing") & df["model"].isna() & (df["segment"] == '{"dimension": "moralizing"}')]
    first = moral[moral["day"] == CHANGE_DAY].iloc[0]
    assert first["drift"], first["d"]
    assert first["d"]["direction"] == "up" and first["d"]["p_value"] < 1e-3
    assert first["d"]["mean_current"] > first["d"]["mean_reference"]
    # Persistent: flagged every day until the 7-day reference has absorbed most of the change.
    assert moral[(moral["day"] >= CHANGE_DAY) & (moral["day"] < CHANGE_DAY + 4)]["drift"].all()
    # The users did not change: no topic or prompt-mix drift on the change day.
    assert not mix[mix["day"] == CHANGE_DAY]["drift"].any()
