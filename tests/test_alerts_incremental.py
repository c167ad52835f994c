"""The alerts job evaluates only what changed, and ends with exactly the alerts, audit entries and notifications
that a full evaluation after every step gives: two homes receive the same metric rows and the same human actions,
one runs the job (incremental), the other a full `evaluate` + `apply`, and their state tables are compared."""
import datetime as dt
import json
import random

import pyarrow as pa
import pytest

from monitor.alerts import lifecycle
from monitor.alerts.engine import STATE_KEY, apply, evaluate, evaluate_incremental
from monitor.home import Home
from monitor.jobs import JobContext
from monitor.jobs.alerts import run_alerts
from monitor.upkeep import prune_superseded_metrics
from test_alerts_engine import DAY0, make_home, rate_row

SPIKE = {"name": "spike", "metric": "over_refusal_rate", "kind": "test", "test": "beta_binomial", "any_segment": True,
         "use": "value", "alpha": 0.001, "reference_windows": 3, "min_reference_windows": 2, "min_reference_n": 100,
         "min_n": 50, "min_ratio": 1.5, "min_delta": 0.03, "critical_ratio": 3.0, "severity": "warning"}
JUMP = {"name": "jump", "metric": "under_refusal_rate", "kind": "relative", "max_ratio": 1.5, "any_segment": True,
        "reference_windows": 2, "min_reference_windows": 1, "min_reference_n": 50, "min_n": 20}
LEVEL = {"name": "level", "metric": "under_refusal_rate", "kind": "threshold", "op": ">", "value": 0.2,
         "critical_value": 0.4, "consecutive": 2, "any_segment": True, "min_n": 20}
DRIFT = {"name": "drift", "metric": "value_drift", "kind": "flag", "flag": "drift_detected", "any_segment": True,
         "min_n": 20}
CREEP = {"name": "creep", "metric": "turn_count", "kind": "cusum", "warmup": 3, "h": 2.0, "min_n": 0}
RULES = [SPIKE, JUMP, LEVEL, DRIFT, CREEP]
CHANNELS = [{"name": "file", "type": "log", "path": "alerts.jsonl"}]
HISTORY = "[alerts]\nhistory_days = 8\n"  # short, so that windows leave the history during the test


def _home(path, rules=RULES, history=HISTORY):
    home = make_home(path, rules, CHANNELS)
    toml = (home.root / "monitor.toml").read_text().replace("[alerts]\n", history, 1)
    (home.root / "monitor.toml").write_text(toml)
    return Home.open(home.root)


class Pair:
    """Two homes fed alike: `inc` runs the alerts job, `full` evaluates everything from scratch each time."""

    def __init__(self, tmp_path, rules=RULES, history=HISTORY):
        self.tmp = tmp_path
        self.inc = _home(tmp_path / "inc", rules, history)
        self.full = _home(tmp_path / "full", rules, history)
        self.version = 0

    def write(self, rows):
        self.version += 1
        for r in rows:  # a recomputation is newer than what it supersedes
            r["computed_at"] = DAY0 + dt.timedelta(days=400, seconds=self.version)
            r["run_id"] = f"r{self.version}"
        for home in (self.inc, self.full):
            home.lake.append("metrics_log", pa.Table.from_pylist(rows))

    def set_rules(self, rules):
        for name in ("inc", "full"):
            home = getattr(self, name)
            toml = make_home(self.tmp / "cfg" / name, rules, CHANNELS).root / "monitor.toml"
            (home.root / "monitor.toml").write_text(toml.read_text().replace("[alerts]\n", HISTORY, 1))
            setattr(self, name, Home.open(home.root))

    def act(self, fn, *args, **kw):
        for home in (self.inc, self.full):
            fn(home, *args, **kw)

    def run(self, now):
        run_alerts(JobContext(self.inc, now))
        apply(self.full, evaluate(self.full, now), now)
        assert snapshot(self.inc) == snapshot(self.full)
        return self.inc.state.get(STATE_KEY)


def snapshot(home):
    alerts = home.state.query("SELECT * FROM alerts ORDER BY id")
    outbox = home.state.query("SELECT * FROM notify_outbox ORDER BY id")
    audit = home.state.query("SELECT actor, action, target, details FROM audit_log ORDER BY id")
    return alerts, outbox, audit


def rows_for(day, rng=None, spike=(), under=0.1, drift=(), count=100, models=("m1", "m2")):
    """One window of every series: over-refusal per model and language, under-refusal, drift flags, turn counts."""
    out = []
    for model in models:
        for seg in (None, {"language": "hi"}, {"language": "en"}):
            key = (model, json.dumps(seg or {}, sort_keys=True))
            n = 400 if seg is None else 150
            rate = 0.3 if key in spike or model in spike else 0.1
            k = round(n * rate) + (rng.randint(-3, 3) if rng else 0)
            out.append(rate_row(day, k, n, model=model, segment=seg))
            out.append(rate_row(day, round(n * under), n, metric="under_refusal_rate", model=model, segment=seg))
        out.append(rate_row(day, 0, 100, metric="value_drift", model=model, segment={"dimension": "care"},
                            details={"drift_detected": model in drift, "p_value": 1e-6}))
        out.append(rate_row(day, count, count, metric="turn_count", model=model))
    return out


def at(day, hour=1):
    return DAY0 + dt.timedelta(days=day, hours=hour)


def test_incremental_equals_full_through_a_scripted_sequence(tmp_path):
    p = Pair(tmp_path)
    for day in range(8):
        p.write(rows_for(day))
    state = p.run(at(7, 20))
    assert state["full"] is True and state["tails"]

    # New data for today only: the series with a new row are evaluated, from today's window on.
    p.write(rows_for(8))
    state = p.run(at(8))
    assert state["full"] is False
    # Today's window recomputed with more turns: a spike on m1 opens alerts (and pages).
    p.write(rows_for(8, spike=("m1",), under=0.3, drift=("m2",)))
    p.run(at(8, 3))
    assert p.inc.state.query("SELECT count(*) AS c FROM notify_outbox")[0]["c"] > 0

    # Someone acknowledges an alert; the spike goes on the next day (the ack carries over), severity rises.
    [a] = [r for r in lifecycle.list_alerts(p.inc, "firing") if r["rule"] == "spike" and r["segment"] == "{}"
           and r["model"] == "m1"]
    p.act(lifecycle.ack, a["id"], by="ana", now=at(8, 4))
    p.write(rows_for(9, spike=("m1",), under=0.5, drift=("m2",)))
    p.run(at(9))
    # Silence one, let the silence expire later.
    s = [r for r in lifecycle.list_alerts(p.inc, "firing") if r["rule"] == "drift"][0]
    p.act(lifecycle.silence, s["id"], by="bo", until=at(10, 12), now=at(9, 2))

    # Late data: an old window (day 5) is recomputed with a spike: a backfill alert, not paged.
    p.write(rows_for(5, spike=("m2",)))
    state = p.run(at(9, 5))
    assert state["full"] is False
    assert any(r["backfill"] for r in lifecycle.list_alerts(p.inc))

    # Upkeep drops superseded metric rows and compacts the files: nothing the alerts see changes.
    dropped = []  # recomputations are stamped DAY0 + 400 days: prune as if long after them
    p.act(lambda home: dropped.append(prune_superseded_metrics(home, at(1000), 0, force=True)))
    assert dropped[0] > 0
    p.act(lambda home: home.lake.compact("metrics_log", min_files=2))
    state = p.run(at(9, 7))
    assert state["full"] is False and state["evaluated"] == 0

    # The series recover: alerts resolve by themselves.
    p.write(rows_for(10))
    p.run(at(10, 13))
    assert not [r for r in lifecycle.list_alerts(p.inc) if r["status"] != "resolved" and r["model"] == "m1"
                and r["rule"] == "spike"]

    # Days pass without data: windows leave the 8-day history, references shrink, nothing new is read.
    p.run(at(12))
    state = p.run(at(14, 2))
    assert state["full"] is False
    p.write(rows_for(14, spike=("m2",), drift=("m1",)))
    p.run(at(14, 3))

    # A new series appears, and a manual resolve.
    p.write(rows_for(14, models=("m3",), spike=("m3",)))
    p.run(at(14, 4))
    open_ = [r for r in lifecycle.list_alerts(p.inc) if r["status"] == "firing"]
    p.act(lifecycle.resolve, open_[0]["id"], by="cy", now=at(14, 5))
    p.run(at(14, 6))

    # A rule change makes the next run a full one.
    p.set_rules([{**SPIKE, "alpha": 0.01}, JUMP, LEVEL, DRIFT, CREEP])
    state = p.run(at(15))
    assert state["full"] is True
    p.write(rows_for(15, spike=("m1",)))
    state = p.run(at(15, 2))
    assert state["full"] is False


@pytest.mark.parametrize("seed,history", [(1, HISTORY), (2, HISTORY), (3, HISTORY),
                                          (4, "[alerts]\nhistory_days = 0\n")])  # 0: all history
def test_incremental_equals_full_on_random_sequences(tmp_path, seed, history):
    rng = random.Random(seed)
    p = Pair(tmp_path, history=history)
    for day in range(6):
        p.write(rows_for(day, rng))
    now = at(5, 12)
    p.run(now)
    keys = [(m, json.dumps(s or {}, sort_keys=True)) for m in ("m1", "m2") for s in (None, {"language": "hi"})]
    for step in range(22):
        now += dt.timedelta(hours=rng.choice([1, 3, 9, 24, 30]))
        today = (now - DAY0).days
        what = rng.random()
        spike = tuple(k for k in keys if rng.random() < 0.3)
        kw = {"spike": spike, "under": rng.choice([0.1, 0.1, 0.3, 0.5]),
              "drift": tuple(m for m in ("m1", "m2") if rng.random() < 0.3)}
        if what < 0.55:
            p.write(rows_for(today, rng, **kw))
        elif what < 0.75:
            p.write(rows_for(max(0, today - rng.randint(1, 9)), rng, **kw))  # late data, maybe out of reach
        elif what < 0.85:
            p.write(rows_for(today, rng, models=(rng.choice(["m1", "m3"]),), **kw))
        firing = lifecycle.list_alerts(p.inc, "firing")
        if firing and rng.random() < 0.3:
            p.act(lifecycle.ack, rng.choice(firing)["id"], by="ana", now=now)
        elif firing and rng.random() < 0.2:
            p.act(lifecycle.silence, rng.choice(firing)["id"], by="bo", until=now + dt.timedelta(hours=20), now=now)
        state = p.run(now)
        assert state["full"] is False
    assert len(lifecycle.list_alerts(p.inc)) > 3  # the sequence did exercise alerts


def test_a_full_apply_elsewhere_drops_the_state(tmp_path):
    home = _home(tmp_path)
    home.lake.append("metrics_log", pa.Table.from_pylist(rows_for(0) + rows_for(1)))
    alerts, state = evaluate_incremental(home, at(1))
    apply(home, alerts, at(1), remember=state)
    assert home.state.get(STATE_KEY)["full"] is True
    apply(home, evaluate(home, at(1, 2)), at(1, 2))
    assert home.state.get(STATE_KEY) is None  # the next job run evaluates everything
