"""One regression, one message: the scopes of an incident (rule, metric, window, direction) are notified together,
through real receivers on 127.0.0.1 (HTTP webhook, SMTP); a scope joining later is an update, a higher severity an
escalation; acknowledging, silencing and resolving work on the whole incident."""
import datetime as dt
import email
import json
from email import policy

from click.testing import CliRunner

from monitor.alerts import lifecycle
from monitor.alerts.engine import apply, evaluate
from monitor.cli import cli
from monitor.notify.outbox import deliver_due
from monitor.resources import load_sql
from monitor.state import _statements
from test_alerts_engine import DAY0, make_home, rate_row, write
from test_notify_delivery import receiver, smtp  # noqa: F401 (fixtures)

SPIKE = {"name": "spike", "metric": "over_refusal_rate", "kind": "relative", "reference_windows": 3,
         "min_reference_windows": 3, "min_reference_n": 100, "max_ratio": 2.0, "min_delta": 0.05,
         "critical_ratio": 5.0, "any_segment": True, "severity": "warning"}
DAY3 = DAY0 + dt.timedelta(days=3, hours=1)  # day 3 is the incident window; days 0-2 are the reference


def scope(day, k, n, model="m1", segment=None, deployment=None):
    return {**rate_row(day, k, n, model=model, segment=segment), "deployment": deployment}


SCOPES = [dict(model=None), dict(), dict(deployment="unknown"), dict(segment={"language": "hi"})]


def regression(day3_k=30):
    """All models, model m1, m1 in deployment 'unknown', m1 for Hindi: 10% for three days, then `day3_k` per 100."""
    return [scope(d, 10 if d < 3 else day3_k, 100, **s) for s in SCOPES for d in range(4)]


def home_with(tmp_path, channels, extra=""):
    home = make_home(tmp_path, [SPIKE], channels, extra=extra)
    write(home, regression())
    return home


def run(home, now):
    return apply(home, evaluate(home, now), now)


def outbox(home):
    return home.state.query("SELECT * FROM notify_outbox ORDER BY id")


def test_one_regression_is_one_message_listing_its_scopes_most_specific_first(tmp_path, receiver, smtp):
    ctl, handler = smtp
    home = home_with(tmp_path, [
        {"name": "hook", "type": "webhook", "url": receiver.url},
        {"name": "mail", "type": "email", "host": "127.0.0.1", "port": ctl.port, "from": "monitor@example.org",
         "to": ["oncall@example.org"], "security": "none"}])
    res = run(home, DAY3)
    assert res.new == 4 and res.notifications == 2  # four alert rows, one message per channel
    rows = lifecycle.list_alerts(home)
    assert len(rows) == 4 and {r["incident_key"] for r in rows} == {
        "spike|over_refusal_rate|day|2026-11-04T00:00:00Z|up"}
    rep = deliver_due(home, DAY3)
    assert rep.sent == 2 and rep.digests == 0
    [hook] = receiver.bodies
    assert hook["kind"] == "alert" and hook["incident_key"] == "spike|over_refusal_rate|day|2026-11-04T00:00:00Z|up"
    assert len(hook["alert_ids"]) == 4 and [a["id"] for a in hook["alerts"]] == hook["alert_ids"]
    lines = hook["text"].splitlines()
    assert lines[0] == "One incident, 4 scopes (over_refusal_rate, 2026-11-04, rule spike), most specific first:"
    # The segment, then the deployment, then the model, then all models; each with its evidence and link.
    assert lines[1].startswith("- over_refusal_rate, model m1, language=hi, 2026-11-04: 0.30 (95% CI 0.22-0.40, "
                               "n=100) vs reference 0.10 (n=300); rule spike (warning); https://mon.example/alerts")
    assert lines[2].startswith("- over_refusal_rate, model m1, deployment unknown, all traffic, 2026-11-04: 0.30")
    assert lines[3].startswith("- over_refusal_rate, model m1, all traffic, 2026-11-04: 0.30")
    assert lines[4].startswith("- over_refusal_rate, all models, all traffic, 2026-11-04: 0.30")
    assert lines[5] == f"Acknowledge them all: monitor alerts ack {hook['alert_ids'][0]} --incident --by NAME"
    assert [link for _, link in hook["links"]] == [
        f"https://mon.example/alerts?alert_id={i}" for i in hook["alert_ids"]]
    [(_, _, raw)] = handler.messages
    mail = email.message_from_string(raw, policy=policy.default)
    assert mail["Subject"] == "[WARNING] over_refusal_rate, m1, language=hi + 3 more scopes: spike"
    assert mail.get_content().count("\n- over_refusal_rate") == 4
    # The CLI contract: every alert keeps its own row and fields, with the incident it belongs to.
    out = CliRunner().invoke(cli, ["--home", str(home.root), "alerts", "list", "--json"])
    listed = json.loads(out.output)
    assert len(listed) == 4 and all({"id", "rule", "segment", "model", "value", "reference", "message",
                                     "incident_key"} <= set(a) for a in listed)


def test_a_scope_joining_later_is_one_held_update_not_a_new_page(tmp_path, receiver):
    home = home_with(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url}],
                     extra="[notify]\ngroup_interval_minutes = 60\n")
    run(home, DAY3)
    assert deliver_due(home, DAY3).sent == 1
    # Two more languages cross the line on later recomputations of the same day, five minutes apart.
    for i, lang in enumerate(("es", "fr")):
        write(home, [scope(d, 10 if d < 3 else 30, 100, segment={"language": lang}) for d in range(4)])
        t = DAY3 + dt.timedelta(minutes=5 * (i + 1))
        assert run(home, t).notifications == 1
        assert deliver_due(home, t).sent == 0  # held: the incident was notified less than an hour ago
    [u1, u2] = [o for o in outbox(home) if o["kind"] == "update"]
    assert u1["next_attempt_at"] == u2["next_attempt_at"] == "2026-11-04T02:00:00Z"
    rep = deliver_due(home, DAY3 + dt.timedelta(minutes=61))
    assert rep.sent == 1 and rep.grouped == 2  # both joiners in one update
    [first, update] = receiver.bodies
    assert update["kind"] == "update" and update["incident_key"] == first["incident_key"]
    assert update["subject"] == "[UPDATE WARNING] over_refusal_rate, m1, language=es + 1 more scope: spike"
    assert update["text"].startswith("Update to an incident already notified (over_refusal_rate, 2026-11-04, "
                                     "rule spike): 2 more scopes, not paged again:")
    assert len(update["alert_ids"]) == 2 and len(lifecycle.list_alerts(home)) == 6


def test_a_joining_scope_of_higher_severity_pages_at_once_as_an_escalation(tmp_path, receiver):
    home = home_with(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url}])
    run(home, DAY3)
    deliver_due(home, DAY3)
    write(home, [scope(d, 10 if d < 3 else 60, 100, segment={"language": "es"}) for d in range(4)])  # ratio 6
    t = DAY3 + dt.timedelta(minutes=5)
    run(home, t)
    assert deliver_due(home, t).sent == 1
    esc = receiver.bodies[-1]
    assert esc["kind"] == "escalation" and esc["severity"] == "critical"
    assert esc["subject"] == "[ESCALATED CRITICAL] over_refusal_rate, m1, language=es: spike"


def test_the_next_day_of_an_ongoing_incident_pages_a_new_scope_as_an_update(tmp_path, receiver):
    home = home_with(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url}])
    run(home, DAY3)
    deliver_due(home, DAY3)
    # Day 4: the four scopes still breach (continuations, not paged); Spanish breaches for the first time.
    write(home, [scope(4, 30, 100, **s) for s in SCOPES])
    write(home, [scope(d, 10 if d < 4 else 30, 100, segment={"language": "es"}) for d in range(5)])
    t = DAY3 + dt.timedelta(days=1)
    assert run(home, t).notifications == 1
    [row] = [o for o in outbox(home) if o["id"] > 1]
    assert row["kind"] == "update" and row["incident_key"].endswith("2026-11-05T00:00:00Z|up")
    assert deliver_due(home, t).sent == 1 and receiver.bodies[-1]["kind"] == "update"


def test_ack_silence_and_resolve_act_on_the_whole_incident(tmp_path, receiver):
    home = home_with(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url}])
    run(home, DAY3)
    deliver_due(home, DAY3)
    base = ["--home", str(home.root), "alerts"]
    out = CliRunner().invoke(cli, base + ["ack", "1", "--by", "dana"])
    assert out.exit_code == 0 and [a["status"] for a in lifecycle.list_alerts(home)].count("acknowledged") == 1
    out = CliRunner().invoke(cli, base + ["silence", "1", "--incident", "--for", "6h", "--by", "dana"])
    assert out.exit_code == 0, out.output
    assert "and 3 more alert(s) of its incident" in out.output
    assert {a["status"] for a in lifecycle.list_alerts(home)} == {"silenced"}
    via = [json.loads(r["details"]) for r in home.state.query(
        "SELECT details FROM audit_log WHERE action='alert.silence' ORDER BY id")]
    assert len(via) == 4 and [d.get("via") for d in via] == [None, 1, 1, 1]
    # A scope joining a silenced incident is silenced with it: nobody is paged.
    write(home, [scope(d, 10 if d < 3 else 30, 100, segment={"language": "es"}) for d in range(4)])
    t = DAY3 + dt.timedelta(minutes=5)
    assert run(home, t).notifications == 0
    joined = lifecycle.list_alerts(home)[0]
    assert joined["status"] == "silenced" and joined["silenced_until"] == lifecycle.get_alert(home, 1)["silenced_until"]
    shown = json.loads(CliRunner().invoke(cli, base + ["show", str(joined["id"]), "--json"]).output)
    assert len(shown["incident"]) == 4
    out = CliRunner().invoke(cli, base + ["resolve", "2", "--incident", "--by", "dana", "--note", "rolled back"])
    assert out.exit_code == 0 and {a["status"] for a in lifecycle.list_alerts(home)} == {"resolved"}
    again = CliRunner().invoke(cli, base + ["ack", "2", "--incident", "--by", "dana"])
    assert again.exit_code == 1 and "no other alert of its incident" in again.stderr


def test_a_first_page_still_pending_carries_the_scopes_that_joined_it(tmp_path, receiver):
    home = home_with(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url}])
    run(home, DAY3)  # not delivered yet (the notify job runs after)
    write(home, [scope(d, 10 if d < 3 else 30, 100, segment={"language": "es"}) for d in range(4)])
    t = DAY3 + dt.timedelta(minutes=1)
    run(home, t)
    rep = deliver_due(home, t)
    assert rep.sent == 1 and rep.grouped == 2
    [msg] = receiver.bodies
    assert msg["kind"] == "alert" and len(msg["alert_ids"]) == 5


def test_the_migration_gives_stored_alerts_the_key_the_engine_gives(tmp_path):
    threshold = {"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": "<", "value": 0.5,
                 "any_segment": True}
    cusum = {"name": "c", "metric": "over_refusal_rate", "kind": "cusum", "warmup": 3, "h": 1,
             "direction": "both"}
    flag = {"name": "f", "metric": "value_drift", "kind": "flag", "any_segment": True}
    home = make_home(tmp_path, [SPIKE, threshold, cusum, flag])
    write(home, regression() + [rate_row(3, 0, 100, metric="value_drift", segment={"dimension": "care"},
                                         details={"drift_detected": True})])
    run(home, DAY3)
    before = home.state.query("SELECT id, rule, incident_key FROM alerts ORDER BY id")
    assert {r["rule"] for r in before} == {"spike", "t", "c", "f"}
    assert {r["incident_key"].rsplit("|", 1)[1] for r in before} == {"up", "down", "both", ""}
    [update] = [s for s in _statements(load_sql("state/050_incidents.sql").sql) if s.startswith("UPDATE alerts")]
    with home.state.tx() as con:
        con.execute("UPDATE alerts SET incident_key=NULL")
        con.execute(update)
    assert home.state.query("SELECT id, rule, incident_key FROM alerts ORDER BY id") == before
