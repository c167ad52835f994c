"""Rule kinds on worked examples, then the lifecycle: dedup, auto-resolve, ack/silence/escalation, audit, backfill."""
import datetime as dt
import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

from monitor.alerts import lifecycle
from monitor.alerts.engine import apply, evaluate
from monitor.alerts.rules import parse_rules
from monitor.home import Home
from monitor.stats import wilson

DAY0 = dt.datetime(2026, 11, 1)


def rate_row(day, k, n, metric="over_refusal_rate", model="m1", segment=None, corrected=None, details=None,
             small=None):
    ws = DAY0 + dt.timedelta(days=day)
    lo, hi = wilson(k, n)
    return {"metric": metric, "granularity": "day", "window_start": ws, "window_end": ws + dt.timedelta(days=1),
            "model": model, "segment": json.dumps(segment or {}), "value": k / n, "ci_low": float(lo),
            "ci_high": float(hi), "n": n, "numerator": float(k), "corrected": corrected,
            "small_sample": n < 30 if small is None else small, "details": json.dumps(details or {}),
            "job": "test", "run_id": "r1", "computed_at": ws + dt.timedelta(days=1), "family": "refusal"}


def write(home, rows):
    home.lake.append("metrics_log", pa.Table.from_pylist(rows))


def toml_value(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(v)


def make_home(tmp_path, rules, channels=None, defaults=False, extra=""):
    root = tmp_path / "home"
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"[alerts]\nuse_default_rules = {str(defaults).lower()}\ndashboard_url = \"https://mon.example\"\n"]
    toml = "\n".join(lines) + extra
    for r in rules:
        toml += "\n[[alerts.rules]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in r.items()) + "\n"
    for c in channels or []:
        toml += "\n[[notify.channels]]\n" + "\n".join(f"{k} = {toml_value(v)}" for k, v in c.items()) + "\n"
    (root / "monitor.toml").write_text(toml)
    return Home.open(root)


def rules(*items):
    return parse_rules(list(items), "test")


NOW = DAY0 + dt.timedelta(days=10, hours=1)


# -- each kind on a worked example ------------------------------------------------------------------------
def test_threshold_with_and_without_ci(home):
    # 45/300 = 0.15, Wilson 95% CI 0.114-0.195: above 0.12 by value and by CI; above 0.14 by value only.
    write(home, [rate_row(0, 45, 300)])
    plain = rules({"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.14})
    ci = rules({"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.14,
                "require_ci": True})
    ci_low = rules({"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.11,
                    "require_ci": True})
    assert len(evaluate(home, NOW, rules=plain)) == 1
    assert len(evaluate(home, NOW, rules=ci)) == 0
    [a] = evaluate(home, NOW, rules=ci_low)
    assert a.threshold == 0.11 and a.value == pytest.approx(0.15) and a.n == 300
    assert a.message.startswith("over_refusal_rate, model m1, all traffic, 2026-11-01: 0.15 (95% CI 0.11-0.19, n=300) > 0.11")


def test_min_n_and_small_sample_are_never_alerted(home):
    write(home, [rate_row(0, 20, 25), rate_row(1, 30, 60)])
    r = rules({"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.1,
               "min_n": 50})
    assert [a.window_start.day for a in evaluate(home, NOW, rules=r)] == [2]  # day 0 has n=25 < 50


def test_relative_pooled_reference(home):
    # Reference = previous 3 windows pooled: (10+12+8)/(100*3) = 0.10; today 25/100 -> ratio 2.5, delta 0.15.
    write(home, [rate_row(0, 10, 100), rate_row(1, 12, 100), rate_row(2, 8, 100), rate_row(3, 25, 100)])
    r = rules({"name": "rel", "metric": "over_refusal_rate", "kind": "relative", "reference_windows": 3,
               "min_reference_n": 300, "max_ratio": 2.0, "min_delta": 0.1})
    [a] = evaluate(home, NOW, rules=r)
    assert a.reference == pytest.approx(0.10) and a.reference_n == 300 and a.window_start.day == 4
    assert a.evidence["ratio"] == pytest.approx(2.5) and a.threshold == pytest.approx(0.20)
    assert "vs reference 0.10 (n=300)" in a.message
    r2 = rules({"name": "rel", "metric": "over_refusal_rate", "kind": "relative", "reference_windows": 3,
                "min_reference_n": 300, "max_ratio": 3.0})
    assert evaluate(home, NOW, rules=r2) == []


def test_statistical_tests_give_the_textbook_p_values(home):
    from scipy.stats import fisher_exact

    write(home, [rate_row(0, 30, 300), rate_row(1, 30, 300), rate_row(2, 30, 300), rate_row(3, 50, 300)])
    base = {"name": "t", "metric": "over_refusal_rate", "kind": "test", "reference_windows": 3,
            "min_reference_n": 900, "alpha": 0.01}
    [z] = evaluate(home, NOW, rules=rules({**base, "test": "z"}))
    # pooled p = 140/1200; se = sqrt(p(1-p)(1/300+1/900)) = 0.0214; z = (50/300 - 90/900)/se = 3.11 -> p 9.2e-4
    assert z.p_value == pytest.approx(9.2e-4, rel=0.02) and z.reference == pytest.approx(0.1)
    [f] = evaluate(home, NOW, rules=rules({**base, "test": "fisher"}))
    assert f.p_value == pytest.approx(fisher_exact([[50, 250], [90, 810]], alternative="greater")[1])
    [b] = evaluate(home, NOW, rules=rules({**base, "test": "beta_binomial"}))
    assert b.p_value > z.p_value * 0.5  # exact tail with reference uncertainty: same order, not anti-conservative
    assert evaluate(home, NOW, rules=rules({**base, "test": "z", "alpha": 1e-4})) == []
    assert evaluate(home, NOW, rules=rules({**base, "test": "z", "min_ratio": 2.0})) == []  # ratio 1.67


def test_overdispersed_reference_widens_the_test(home):
    # Reference days swing 5%..15% (far beyond binomial noise at n=1000); 15.5% today is not unusual for them.
    ks = [50, 150, 60, 140, 155]
    write(home, [rate_row(i, k, 1000) for i, k in enumerate(ks)])
    base = {"name": "t", "metric": "over_refusal_rate", "kind": "test", "test": "z", "reference_windows": 4,
            "min_reference_n": 1000, "alpha": 0.001}
    plain = evaluate(home, NOW, rules=rules({**base, "overdispersion": False}))
    assert DAY0 + dt.timedelta(days=4) in [a.window_start for a in plain]
    assert evaluate(home, NOW, rules=rules(base)) == []


def test_cusum_catches_slow_creep_that_no_single_day_shows(home):
    # 10% for 10 days, then +0.5 points a day: no day is far from yesterday, the sum of excesses is.
    rows = [rate_row(d, 100 + (5 * (d - 9) if d >= 10 else (d % 3) - 1), 1000) for d in range(20)]
    write(home, rows)
    cus = rules({"name": "creep", "metric": "over_refusal_rate", "kind": "cusum", "k": 0.5, "h": 5,
                 "warmup": 10, "min_n": 100})
    alerts = evaluate(home, DAY0 + dt.timedelta(days=21), rules=cus)
    first = min(a.window_start for a in alerts)
    assert DAY0 + dt.timedelta(days=11) <= first <= DAY0 + dt.timedelta(days=15)
    spike = rules({"name": "s", "metric": "over_refusal_rate", "kind": "relative", "reference_windows": 1,
                   "min_reference_n": 1, "min_reference_windows": 1, "max_ratio": 1.2})
    assert evaluate(home, DAY0 + dt.timedelta(days=21), rules=spike) == []  # day over day it never jumps 20%
    ph = rules({"name": "ph", "metric": "over_refusal_rate", "kind": "page_hinkley", "delta": 0.002,
                "lambda": 0.05, "warmup": 10, "min_n": 100})
    assert evaluate(home, DAY0 + dt.timedelta(days=21), rules=ph)
    flat = [rate_row(d, 100 + (d % 3) - 1, 1000, model="flat") for d in range(20)]
    write(home, flat)
    assert all(a.model != "flat" for a in evaluate(home, DAY0 + dt.timedelta(days=21), rules=cus + ph))


def test_flag_reads_the_verdict_with_extra_strictness(home):
    drift = lambda day, p, dim: {**rate_row(day, 0, 300, metric="value_drift", segment={"dimension": dim}),
                                 "value": p, "ci_low": None, "ci_high": None, "numerator": None,
                                 "details": json.dumps({"dimension": dim, "statistic": p, "method": "ks",
                                                        "threshold": 0.05, "drift_detected": p < 0.05})}
    disp = lambda q, gap: {**rate_row(0, 60, 300, metric="over_refusal_disparity", segment={"language": "hi"}),
                           "details": json.dumps({"attribute": "language", "group": "hi", "gap": gap, "p_value": q,
                                                  "q_value": q, "significant": q < 0.05, "min_n_ok": True})}
    write(home, [drift(0, 0.01, "care"), drift(0, 1e-6, "fairness"), disp(1e-5, 0.09)])
    loose = rules({"name": "d", "metric": "value_drift", "kind": "flag", "any_segment": True})
    strict = rules({"name": "d", "metric": "value_drift", "kind": "flag", "any_segment": True, "p_max": 1e-4})
    assert len(evaluate(home, NOW, rules=loose)) == 2
    [a] = evaluate(home, NOW, rules=strict)
    assert a.segment == {"dimension": "fairness"} and "statistic 1e-06 (ks, threshold 0.050)" in a.message
    dr = rules({"name": "disp", "metric": "disparity", "kind": "flag", "any_segment": True, "q_max": 0.001,
                "min_abs_gap": 0.05})
    [d] = evaluate(home, NOW, rules=dr)
    assert "language=hi" in d.message and "gap 0.09" in d.message and "significant" in d.message
    big_gap = rules({"name": "disp", "metric": "disparity", "kind": "flag", "any_segment": True,
                     "min_abs_gap": 0.1})
    assert evaluate(home, NOW, rules=big_gap) == []


def test_corrected_value_is_used_when_present(home):
    row = rate_row(0, 30, 300)
    row.update(corrected=0.25, corrected_ci_low=0.2, corrected_ci_high=0.3)
    write(home, [row])
    r = rules({"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.15,
               "require_ci": True})
    [a] = evaluate(home, NOW, rules=r)
    assert a.value == 0.25 and a.ci_low == 0.2
    as_value = rules({"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.15,
                      "use": "value"})
    assert evaluate(home, NOW, rules=as_value) == []  # the raw 0.10 is below


def test_consecutive_windows(home):
    write(home, [rate_row(d, k, 100) for d, k in enumerate([30, 10, 30, 30, 30])])
    r = rules({"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.2,
               "consecutive": 2})
    assert [a.window_start.day for a in evaluate(home, NOW, rules=r)] == [4, 5]


# -- lifecycle --------------------------------------------------------------------------------------------
THRESH = {"name": "too_high", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.2,
          "critical_value": 0.4, "severity": "warning"}


def run(home, now):
    return apply(home, evaluate(home, now), now)


def audit(home, action=None):
    rows = home.state.query("SELECT * FROM audit_log ORDER BY id")
    return [r for r in rows if action is None or r["action"] == action]


def outbox(home):
    return home.state.query("SELECT * FROM notify_outbox ORDER BY id")


def test_lifecycle_dedup_autoresolve_and_audit(tmp_path):
    home = make_home(tmp_path, [THRESH], [{"name": "log", "type": "log"}])
    write(home, [rate_row(0, 10, 100), rate_row(1, 30, 100)])
    now = DAY0 + dt.timedelta(days=2, hours=1)
    r1 = run(home, now)
    assert r1.new == 1 and r1.notifications == 1
    r2 = run(home, now)  # same windows again: deduplicated, nothing new, nothing re-sent
    assert r2.new == 0 and r2.updated == 0 and len(outbox(home)) == 1
    [a] = lifecycle.list_alerts(home)
    assert a["status"] == "firing" and a["message"].endswith("; https://mon.example/alerts?alert_id=1")
    # Day 2 breaches too: a continuation of the same incident, recorded but not paged again.
    write(home, [rate_row(2, 32, 100)])
    r3 = run(home, now + dt.timedelta(days=1))
    assert r3.new == 1 and r3.notifications == 0
    lifecycle.ack(home, 2, "dana", "looking")
    # Day 3 recovers: every open alert of the series resolves itself.
    write(home, [rate_row(3, 12, 100)])
    r4 = run(home, now + dt.timedelta(days=2))
    assert r4.resolved == 2
    assert {a["status"] for a in lifecycle.list_alerts(home)} == {"resolved"}
    actions = [r["action"] for r in audit(home)]
    assert actions == ["alert.fire", "alert.fire", "alert.ack", "alert.resolve", "alert.resolve"]
    assert json.loads(audit(home, "alert.resolve")[0]["details"])["auto"] is True


def test_ack_carries_over_and_escalation_renotifies(tmp_path):
    home = make_home(tmp_path, [THRESH], [{"name": "log", "type": "log"}])
    write(home, [rate_row(0, 30, 100)])
    run(home, DAY0 + dt.timedelta(days=1, hours=1))
    lifecycle.ack(home, 1, "dana", "on it")
    write(home, [rate_row(1, 31, 100), rate_row(2, 50, 100)])
    run(home, DAY0 + dt.timedelta(days=3, hours=1))
    rows = {a["id"]: a for a in lifecycle.list_alerts(home)}
    assert rows[2]["status"] == "acknowledged" and rows[2]["acknowledged_by"] == "dana"
    assert rows[3]["severity"] == "critical"
    kinds = [o["kind"] for o in outbox(home)]
    assert kinds == ["alert", "escalation"]  # day 1 (same severity) paged nobody; day 2 escalated
    assert outbox(home)[1]["subject"].startswith("[ESCALATED CRITICAL]")


def test_silence_suppresses_then_expires_back_to_firing(tmp_path):
    home = make_home(tmp_path, [THRESH], [{"name": "log", "type": "log"}])
    write(home, [rate_row(0, 30, 100)])
    t = DAY0 + dt.timedelta(days=1, hours=1)
    run(home, t)
    lifecycle.silence(home, 1, "dana", until=t + dt.timedelta(hours=6), now=t)
    write(home, [rate_row(1, 50, 100)])  # escalates while silenced: still no notification
    run(home, t + dt.timedelta(hours=2))
    assert [a["status"] for a in lifecycle.list_alerts(home)] == ["silenced", "silenced"]
    assert len(outbox(home)) == 1
    run(home, t + dt.timedelta(hours=7))
    assert [a["status"] for a in lifecycle.list_alerts(home)] == ["firing", "firing"]
    assert len(audit(home, "alert.unsilence")) == 2
    with pytest.raises(Exception, match="not in the future"):
        lifecycle.silence(home, 1, "dana", until=t, now=t + dt.timedelta(hours=8))


def test_backfill_is_recorded_but_never_notified(tmp_path):
    home = make_home(tmp_path, [THRESH], [{"name": "log", "type": "log"}])
    write(home, [rate_row(d, 30, 100) for d in range(5)])
    now = DAY0 + dt.timedelta(days=5, hours=1)
    run(home, now)
    alerts = sorted(lifecycle.list_alerts(home), key=lambda a: a["window_start"])
    assert [a["backfill"] for a in alerts] == [1, 1, 1, 0, 0]  # windows ending > 2 windows before now
    assert "; backfill" in alerts[0]["message"]
    # Nobody is paged for the old windows; the incident still breaching in a live window pages once.
    sent_for = [json.loads(o["alert_ids"]) for o in outbox(home)]
    assert sent_for == [[alerts[3]["id"]]]
    home2 = make_home(tmp_path / "b", [THRESH], [{"name": "log", "type": "log"}])
    write(home2, [rate_row(d, 30, 100) for d in range(5)])
    apply(home2, evaluate(home2, now, backfill=True), now)
    assert all(a["backfill"] == 1 for a in lifecycle.list_alerts(home2)) and outbox(home2) == []


def test_cli_list_json_and_actions(tmp_path):
    from monitor.cli import cli

    home = make_home(tmp_path, [THRESH])
    write(home, [rate_row(0, 30, 100, segment={"language": "hi"}, model=None), rate_row(0, 35, 100)])
    r = {**THRESH, "any_segment": True}
    home = make_home(tmp_path, [r])
    run(home, DAY0 + dt.timedelta(days=1, hours=1))
    runner = CliRunner()
    base = ["--home", str(home.root)]
    out = runner.invoke(cli, base + ["alerts", "list", "--json"])
    assert out.exit_code == 0, out.output
    items = json.loads(out.output)
    assert len(items) == 2
    for key in ("id", "rule", "metric", "segment", "model", "window_start", "window_end", "value", "reference",
                "threshold", "severity", "status", "message", "backfill", "n", "ci_low", "ci_high", "p_value"):
        assert all(key in i for i in items), key
    by_seg = {json.dumps(i["segment"]): i for i in items}
    assert by_seg['{"language": "hi"}']["model"] is None and by_seg["{}"]["model"] == "m1"
    assert items[0]["window_start"] == "2026-11-01T00:00:00Z" and items[0]["window_end"] == "2026-11-02T00:00:00Z"
    aid = str(items[0]["id"])
    assert runner.invoke(cli, base + ["alerts", "ack", aid, "--by", "dana", "--note", "x"]).exit_code == 0
    assert runner.invoke(cli, base + ["alerts", "assign", aid, "--to", "lee", "--by", "dana"]).exit_code == 0
    assert runner.invoke(cli, base + ["alerts", "comment", aid, "--by", "lee", "--text", "hi locale"]).exit_code == 0
    assert runner.invoke(cli, base + ["alerts", "silence", aid, "--for", "2h", "--by", "lee"]).exit_code == 0
    assert runner.invoke(cli, base + ["alerts", "resolve", aid, "--by", "lee"]).exit_code == 0
    again = runner.invoke(cli, base + ["alerts", "resolve", aid, "--by", "lee"])
    assert again.exit_code == 1 and "already resolved" in again.output
    st = json.loads(runner.invoke(cli, base + ["alerts", "list", "--status", "resolved", "--json"]).output)
    assert [i["id"] for i in st] == [int(aid)] and st[0]["assigned_to"] == "lee"
    acts = [a["action"] for a in audit(home) if a["target"] == f"alert:{aid}"]
    assert acts == ["alert.fire", "alert.ack", "alert.assign", "alert.comment", "alert.silence", "alert.resolve"]
    rules_out = runner.invoke(cli, base + ["alerts", "rules"])
    assert "too_high" in rules_out.output and "monitor.toml" in rules_out.output


def test_jobs_alerts_then_notify(tmp_path):
    from monitor.jobs import run_job
    from monitor.jobs.alerts import JOBS, UPSTREAM

    jobs = {j.name: j for j in JOBS}
    assert set(jobs["alerts"].depends_on) <= set(UPSTREAM)
    # notify runs after the jobs that queue messages, and is not skipped when they fail (order only)
    assert jobs["notify"].depends_on == () and jobs["notify"].after == ("alerts", "pipeline_health")
    assert jobs["notify"].interval == "notify_interval_s"
    home = make_home(tmp_path, [THRESH], [{"name": "file", "type": "log"}])
    write(home, [rate_row(0, 30, 100)])
    now = DAY0 + dt.timedelta(days=1, hours=1)
    assert run_job(home, jobs["alerts"], now).status == "ok"
    r = run_job(home, jobs["notify"], now)
    assert r.status == "ok" and r.rows == 1
    assert len((home.root / "notifications.jsonl").read_text().splitlines()) == 1
