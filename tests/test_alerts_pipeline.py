"""Pipeline-health alerts on a real lake and state: a silence of the input (per deployment, quiet hours, backfills,
a clock ahead), a job failing run after run (through the worker's groups and `monitor jobs run`), a jump in
quarantined input; each through the same lifecycle, incidents and notifications as the metric alerts."""
import datetime as dt
import json

import pytest

from monitor.alerts import lifecycle
from monitor.alerts.engine import STATE_KEY as EVALUATION_KEY
from monitor.alerts.pipeline import STATE_KEY, check, evaluate, expected_turns, turn_freshness
from monitor.alerts.rules import parse_rules
from monitor.home import Home
from monitor.ingest import ingest_paths
from monitor.notify.outbox import deliver_due

OUTAGE = dt.datetime(2026, 11, 27, 14, 2)  # the last turn before the collector broke
CONFIG = """[alerts]
dashboard_url = "https://mon.example"

[[notify.channels]]
name = "file"
type = "log"
path = "notifications.jsonl"
"""


@pytest.fixture
def clock(monkeypatch):
    """Set the time the ingest records as `ingested_at` and `ingested_files.finished_at` (the wall clock)."""
    def at(t: dt.datetime) -> None:
        monkeypatch.setattr("monitor.ingest.utcnow", lambda: t)
    return at


def make_home(tmp_path, extra=""):
    root = tmp_path / "home"
    root.mkdir(parents=True, exist_ok=True)
    (root / "monitor.toml").write_text(CONFIG + extra)
    return Home.open(root)


def traffic(path, deployments, start, end, every_min=5, hours=range(24), weekdays=range(7)):
    """A canonical log: one turn per deployment every `every_min` minutes in [start, end], at `hours` of the day
    on `weekdays` (0 = Monday)."""
    lines, t = [], start
    while t <= end:
        if t.hour in hours and t.weekday() in weekdays:
            for dep in deployments:
                stamp = t.isoformat() + "Z"
                lines.append(json.dumps({
                    "conversation_id": f"{dep}-{stamp}", "timestamp": stamp, "model": "assistant@1",
                    "messages": [{"role": "user", "content": f"question {dep} {stamp}"},
                                 {"role": "assistant", "content": f"answer {dep} {stamp}"}],
                    "metadata": {"deployment": dep}}))
        t += dt.timedelta(minutes=every_min)
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest(home, clock, path, at):
    clock(at)
    summary = ingest_paths(home, [path], fmt="canonical", now=at)
    assert summary.ingested > 0 or summary.quarantined > 0, summary.line()
    return summary


def sent(home):
    path = home.root / "notifications.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_silence_pages_once_for_every_deployment_it_hits_and_resolves_when_turns_flow_again(tmp_path, clock):
    home = make_home(tmp_path)
    home.state.put(EVALUATION_KEY, {"kept": True})  # the metric rules' saved evaluation: not theirs to drop
    log = traffic(tmp_path / "app-2026-11-27.jsonl", ["web", "api"], dt.datetime(2026, 11, 20, 0, 2), OUTAGE)
    ingest(home, clock, log, OUTAGE + dt.timedelta(minutes=3))
    assert check(home, dt.datetime(2026, 11, 27, 15, 0)).new == 0  # an hour of quiet is within the limit

    at = dt.datetime(2026, 11, 27, 20, 2)
    res = check(home, at)
    assert res.new == 3 and res.notifications == 1  # all traffic, web, api: one incident, one message
    rows = lifecycle.list_alerts(home)
    assert {(r["rule"], r["metric"], r["deployment"], r["status"], r["severity"]) for r in rows} == {
        ("no_data", "turn_freshness", d, "firing", "warning") for d in (None, "web", "api")}
    assert {r["incident_key"] for r in rows} == {"no_data|turn_freshness|minute|2026-11-27T14:02:00Z|"}
    whole = next(r for r in rows if r["deployment"] is None)
    assert whole["message"].startswith(
        "turn_freshness, all deployments: no new turn since 2026-11-27 14:02 UTC (6.0 h; limit 2h; about 144 turns "
        "expected in that time from the previous 7 days by hour of the day (busiest 15:00 UTC: 24.0 an hour; "
        "1.1 weeks of history, a weekly profile needs 2)); last input file ")
    assert f"{log.name} (done 14:05 UTC, " in whole["message"]
    assert "check the collector and the inbox folders" in whole["message"]
    assert whole["message"].endswith(f"rule no_data (warning); https://mon.example/alerts?alert_id={whole['id']}")
    ev = json.loads(whole["evidence"])
    assert ev["last_event"] == "2026-11-27T14:02:00Z" and ev["last_ingest"] == "2026-11-27T14:05:00Z"
    assert ev["silence_s"] == 6 * 3600 and ev["expected_turns"] == 144.0
    assert whole["value"] == 6.0 and whole["threshold"] == 2.0 and whole["reference"] == 144.0

    assert deliver_due(home, at).sent == 1
    [msg] = sent(home)
    assert msg["subject"] == "[WARNING] turn_freshness, deployment api + 2 more scopes: no_data"
    assert msg["incident_key"] == "no_data|turn_freshness|minute|2026-11-27T14:02:00Z|"
    assert sorted(msg["alert_ids"]) == sorted(r["id"] for r in rows)
    assert msg["text"].startswith("One incident, 3 scopes (turn_freshness, 2026-11-27 14:02Z, rule no_data)")
    # Checked again while the silence lasts: nothing changes, nothing is queued.
    again = check(home, at + dt.timedelta(minutes=10))
    assert (again.new, again.updated, again.notifications) == (0, 0, 0)
    assert home.state.get(EVALUATION_KEY) == {"kept": True}

    lifecycle.ack(home, whole["id"], "dana", "collector pod restarting", incident=True)
    assert {r["status"] for r in lifecycle.list_alerts(home)} == {"acknowledged"}
    # Turns flow again: every scope resolves itself.
    back = dt.datetime(2026, 11, 27, 20, 30)
    ingest(home, clock, traffic(tmp_path / "app-back.jsonl", ["web", "api"], dt.datetime(2026, 11, 27, 20, 12),
                                dt.datetime(2026, 11, 27, 20, 22)), back)
    assert check(home, back).resolved == 3
    assert {(r["status"], r["resolved_by"]) for r in lifecycle.list_alerts(home)} == {("resolved", "worker")}
    audit = home.state.query("SELECT details FROM audit_log WHERE action='alert.resolve'")
    assert len(audit) == 3 and all(json.loads(a["details"])["auto"] for a in audit)

    # Later only api stops: only its scope pages, a new incident, saying the other deployment still sends turns.
    late = dt.datetime(2026, 11, 27, 23, 55)
    ingest(home, clock, traffic(tmp_path / "web-only.jsonl", ["web"], dt.datetime(2026, 11, 27, 20, 27), late), late)
    res = check(home, late)
    [api] = [r for r in lifecycle.list_alerts(home) if r["status"] == "firing"]
    assert res.new == 1 and api["deployment"] == "api"
    assert api["incident_key"] == "no_data|turn_freshness|minute|2026-11-27T20:22:00Z|"
    assert ("turn_freshness, deployment api: no new turn since 2026-11-27 20:22 UTC (3.5 h; limit 2h; about 42 turns "
            in api["message"])
    assert "other deployments still send turns (newest 23:52 UTC); check the logging and the traffic of deployment " \
           "api" in api["message"]


def test_a_silence_at_hours_that_are_always_quiet_pages_nobody(tmp_path, clock):
    home = make_home(tmp_path)
    # Office-hours traffic, 08:00-19:55 every day: the last turn at 19:55.
    last = dt.datetime(2026, 11, 27, 19, 55)
    ingest(home, clock, traffic(tmp_path / "office.jsonl", ["web"], dt.datetime(2026, 11, 20, 8, 0), last,
                                hours=range(8, 20)), last + dt.timedelta(minutes=2))
    for now in (dt.datetime(2026, 11, 27, 23, 30), dt.datetime(2026, 11, 28, 8, 0), dt.datetime(2026, 11, 28, 9, 0)):
        assert evaluate(home, now)[0] == [], now  # 12 turns expected by 09:00, under 20
    [a], errors = evaluate(home, dt.datetime(2026, 11, 28, 10, 0))  # 25 expected by 10:00: the morning is missing
    assert errors == [] and a.reference == 25.0 and "(14.1 h; limit 2h; about 25 turns expected" in a.message
    # min_expected = 0: the silence alone decides, night or not.
    timer = parse_rules([{"name": "no_data", "kind": "no_data", "min_expected": 0}], "test")
    [a], _ = evaluate(home, dt.datetime(2026, 11, 27, 23, 30), rules=timer)
    assert a.reference is None and "(3.6 h; limit 2h)" in a.message


OFFICE = dict(hours=range(8, 20), weekdays=range(5))  # Monday to Friday, 08:00-19:55 UTC


def test_a_weekday_deployment_silent_at_the_weekend_pages_nobody_but_a_missing_monday_morning_does(tmp_path, clock):
    home = make_home(tmp_path)
    friday = dt.datetime(2026, 11, 27, 19, 55)  # five weeks of office traffic, from Monday 2026-10-26
    ingest(home, clock, traffic(tmp_path / "office.jsonl", ["web"], dt.datetime(2026, 10, 26, 8, 0), friday,
                                **OFFICE), friday + dt.timedelta(minutes=2))
    # By the hours of the day alone, Saturday 08:00-14:00 would expect about 51 turns (12 an hour on 5 days of 7).
    for now in (dt.datetime(2026, 11, 28, 14, 0), dt.datetime(2026, 11, 29, 23, 0), dt.datetime(2026, 11, 30, 8, 0)):
        assert evaluate(home, now) == ([], []), now
    [a], errors = evaluate(home, dt.datetime(2026, 11, 30, 10, 0))  # Monday 08:00-10:00 is missing: 24 turns
    assert errors == [] and a.reference == 25.0  # and 5 minutes of Friday 19:55
    assert a.severity == "warning"  # 2.1 h of a busy Monday missing, not 62 h: critical only after 24 busy hours
    assert ("(2.6 d; limit 2h; about 25 turns expected in that time from the same hours of the week over the "
            "previous 3.6 weeks (busiest Mon 08:00 UTC: 12.0 an hour)); ") in a.message  # from Monday 2 November
    ev = a.evidence
    assert (ev["profile"], ev["history_weeks"], ev["busiest_hour"]) == ("hour_of_week", 3.6, "Mon 08:00 UTC")
    assert (ev["silence_s"], ev["busy_silence_s"]) == (62 * 3600 + 5 * 60, 2 * 3600 + 5 * 60)
    [c], _ = evaluate(home, dt.datetime(2026, 12, 1, 20, 0))  # Monday and Tuesday 08:00-20:00: 24 busy hours
    assert c.severity == "critical" and c.evidence["busy_silence_s"] == 24 * 3600 + 5 * 60


def test_a_weekday_deployment_silent_on_a_tuesday_at_a_busy_hour_pages(tmp_path, clock):
    home = make_home(tmp_path)
    tuesday = dt.datetime(2026, 11, 24, 10, 0)
    ingest(home, clock, traffic(tmp_path / "office.jsonl", ["web"], dt.datetime(2026, 10, 26, 8, 0), tuesday,
                                **OFFICE), tuesday + dt.timedelta(minutes=2))
    assert evaluate(home, dt.datetime(2026, 11, 24, 11, 55)) == ([], [])  # within max_silence
    [a], _ = evaluate(home, dt.datetime(2026, 11, 24, 13, 30))
    # Tuesday 10:00-13:30 carried 12 turns an hour in each of the 4 weeks before: 42 expected.
    assert a.reference == 42.0 and ("no new turn since 2026-11-24 10:00 UTC (3.5 h; limit 2h; about 42 turns "
                                    "expected in that time from the same hours of the week over the previous 4 weeks "
                                    "(busiest Tue 10:00 UTC: 12.0 an hour)); ") in a.message
    # A lunch-time lull on the same weekday in the reference weeks would have made the same hours quiet.
    lull = parse_rules([{"name": "no_data", "kind": "no_data", "min_expected": 43}], "test")
    assert evaluate(home, dt.datetime(2026, 11, 24, 13, 30), rules=lull) == ([], [])


def test_too_little_history_for_a_weekly_profile_judges_by_the_hours_of_the_day(tmp_path, clock):
    home = make_home(tmp_path)
    friday = dt.datetime(2026, 11, 27, 19, 55)  # office traffic since Wednesday 2026-11-18: 1.4 weeks
    ingest(home, clock, traffic(tmp_path / "office.jsonl", ["web"], dt.datetime(2026, 11, 18, 8, 0), friday,
                                **OFFICE), friday + dt.timedelta(minutes=2))
    [a], _ = evaluate(home, dt.datetime(2026, 11, 28, 14, 0))  # the old behaviour: Saturday's morning is missing
    # The 7 days before Friday 19:55 read from their first turn, Monday 08:00 (as before: the days the scope has
    # existed, counted whole): 5 office days, 12 turns an hour at 08:00-19:55, on any day.
    assert a.reference == 1 + 6 * 12
    assert ("about 73 turns expected in that time from the previous 7 days by hour of the day (busiest 08:00 UTC: "
            "12.0 an hour; 1.4 weeks of history, a weekly profile needs 2)); ") in a.message
    assert (a.evidence["profile"], a.evidence["history_weeks"]) == ("hour_of_day", 1.4)
    # One week is enough when the rule says so; no weekly profile at all when it says reference_weeks = 0.
    one = parse_rules([{"name": "no_data", "kind": "no_data", "min_weeks": 1}], "test")
    assert evaluate(home, dt.datetime(2026, 11, 28, 14, 0), rules=one) == ([], [])
    daily = parse_rules([{"name": "no_data", "kind": "no_data", "reference_weeks": 0}], "test")
    [b], _ = evaluate(home, dt.datetime(2026, 11, 28, 14, 0), rules=daily)
    assert b.message == a.message.replace("; 1.4 weeks of history, a weekly profile needs 2", "")


@pytest.mark.parametrize("keys, words", [
    ({"min_weeks": 5}, "'r[0].min_weeks' must be between 1 and reference_weeks (4), got 5: the weekly profile could "
                       "never be used"),
    ({"min_weeks": 0.5}, "a week's pattern cannot be told from less than a week"),
    ({"reference_weeks": 53}, "'r[0].reference_weeks' must be between 0 (hours of the day only) and 52, got 53"),
])
def test_weekly_profile_settings_are_checked(keys, words):
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        parse_rules([{"name": "no_data", "kind": "no_data", **keys}], "test", "r")
    assert words in str(e.value)
    assert parse_rules([{"name": "n", "kind": "no_data", "reference_weeks": 0, "min_weeks": 9}], "t")[0].params[
        "reference_weeks"] == 0  # no weekly profile: min_weeks is not used


def test_a_backfill_does_not_hide_a_silence_by_event_time(tmp_path, clock):
    home = make_home(tmp_path)
    ingest(home, clock, traffic(tmp_path / "live.jsonl", ["web"], dt.datetime(2026, 11, 20, 0, 2), OUTAGE),
           OUTAGE + dt.timedelta(minutes=3))
    assert evaluate(home, dt.datetime(2026, 11, 27, 15, 0))[0] == []  # the worker checks every minute
    # The collector is broken, but someone re-ingests last month's archive at 19:30.
    ingest(home, clock, traffic(tmp_path / "archive-2026-10.jsonl", ["web"], dt.datetime(2026, 10, 20, 0, 0),
                                dt.datetime(2026, 10, 22, 0, 0)), dt.datetime(2026, 11, 27, 19, 30))
    now = dt.datetime(2026, 11, 27, 20, 2)
    [a], _ = evaluate(home, now)
    assert "no new turn since 2026-11-27 14:02 UTC (6.0 h;" in a.message
    assert "turns are still ingested (last at 19:30 UTC) but none newer: old logs (a backfill, a replay) arrive, " \
           "live traffic does not" in a.message
    assert "/archive-2026-10.jsonl (done 19:30 UTC, 577 new turns of 577 records)" in a.message
    # By ingest time the input is not silent.
    by_ingest = parse_rules([{"name": "no_data", "kind": "no_data", "clock": "ingest"}], "test")
    assert evaluate(home, now, rules=by_ingest)[0] == []


def test_a_turn_stamped_ahead_of_its_ingest_counts_at_its_ingest_time(tmp_path, clock):
    home = make_home(tmp_path)
    ingest(home, clock, traffic(tmp_path / "live.jsonl", ["web"], dt.datetime(2026, 11, 20, 0, 0),
                                dt.datetime(2026, 11, 27, 13, 0)), dt.datetime(2026, 11, 27, 13, 1))
    # A host whose clock runs 45 minutes ahead sends one turn at 14:05 (within ingest.max_future_minutes).
    ingest(home, clock, traffic(tmp_path / "skewed.jsonl", ["web"], dt.datetime(2026, 11, 27, 14, 50),
                                dt.datetime(2026, 11, 27, 14, 50)), dt.datetime(2026, 11, 27, 14, 5))
    [a], _ = evaluate(home, dt.datetime(2026, 11, 27, 16, 10))
    assert "no new turn since 2026-11-27 14:05 UTC (2.1 h;" in a.message  # not 14:50: 1.3 h, no alert


def test_freshness_reads_the_new_files_only(tmp_path, clock):
    home = make_home(tmp_path)
    ingest(home, clock, traffic(tmp_path / "a.jsonl", ["web"], dt.datetime(2026, 11, 20), dt.datetime(2026, 11, 21)),
           dt.datetime(2026, 11, 21, 0, 5))
    assert turn_freshness(home) == {("production", "web"): ["2026-11-21T00:00:00Z", "2026-11-21T00:05:00Z"]}
    version = home.lake.manifest()["version"]
    assert home.state.get(STATE_KEY)["v"] == version
    old = home.lake.files("turns")
    ingest(home, clock, traffic(tmp_path / "b.jsonl", ["web", "api"], dt.datetime(2026, 11, 22),
                                dt.datetime(2026, 11, 22, 1)), dt.datetime(2026, 11, 22, 1, 5))
    # The files read before are unreadable now (a disk error, say): the next call never opens them.
    saved = {p: p.read_bytes() for p in old}
    for p in old:
        p.write_bytes(b"not parquet")
    assert turn_freshness(home) == {("production", "web"): ["2026-11-22T01:00:00Z", "2026-11-22T01:05:00Z"],
                                    ("production", "api"): ["2026-11-22T01:00:00Z", "2026-11-22T01:05:00Z"]}
    for p, data in saved.items():
        p.write_bytes(data)
    # The probes' own traffic and the demo data are not production traffic: the default rule does not watch them.
    clock(dt.datetime(2026, 11, 22, 3, 5))
    ingest_paths(home, [traffic(tmp_path / "p.jsonl", ["web"], dt.datetime(2026, 11, 22, 2),
                                dt.datetime(2026, 11, 22, 3))], fmt="canonical", source="probe")
    seen = turn_freshness(home)
    assert seen[("probe", "web")][0] == "2026-11-22T03:00:00Z"
    rule = parse_rules([{"name": "no_data", "kind": "no_data", "min_expected": 0}], "test")
    [w] = [a for a in evaluate(home, dt.datetime(2026, 11, 22, 4, 0), rules=rule)[0] if a.deployment == "web"]
    assert "since 2026-11-22 01:00 UTC" in w.message


def test_expected_turns_follow_the_hours_of_the_day():
    rate = [0.0] * 8 + [10.0] * 12 + [0.0] * 4  # 10 an hour from 08:00 to 20:00
    t = dt.datetime(2026, 11, 27, 19, 30)
    assert expected_turns(rate, t, t + dt.timedelta(hours=12)) == 5.0  # 19:30-20:00, then the night
    assert expected_turns(rate, t, t + dt.timedelta(hours=14)) == 20.0  # and 08:00-09:30
    assert expected_turns(rate, t, t + dt.timedelta(days=9)) == pytest.approx(9 * 120)


def test_expected_turns_follow_the_hours_of_the_week():
    day = [0.0] * 8 + [10.0] * 12 + [0.0] * 4
    rate = day * 5 + [0.0] * 48  # 10 an hour from 08:00 to 20:00, Monday to Friday
    friday = dt.datetime(2026, 11, 27, 19, 30)
    assert expected_turns(rate, friday, friday + dt.timedelta(hours=60)) == 5.0  # 19:30-20:00, then the weekend
    assert expected_turns(rate, friday, friday + dt.timedelta(hours=62)) == 20.0  # and Monday 08:00-09:30
    assert expected_turns(rate, friday, friday + dt.timedelta(days=9)) == pytest.approx(5 * 120 + 2 * 600 / 7)


def failing_runs(home, job_name, n, error="lake manifest is corrupt"):
    from monitor.errors import StorageError
    from monitor.jobs import Job, run_job

    def boom(ctx):
        raise StorageError(error)
    for _ in range(n):
        assert run_job(home, Job(job_name, boom)).status == "failed"


def test_a_job_failing_run_after_run_pages_through_the_worker_even_while_the_lake_is_broken(tmp_path):
    from monitor.worker.scheduler import groups, run_group

    home = make_home(tmp_path)
    assert groups()["health_interval_s"] == ["pipeline_health"]
    (home.root / "lake" / "_manifest.json").write_text("{not json")  # every job reading the lake fails
    for _ in range(3):
        [r] = run_group(str(home.root), None, "jobs_interval_s", only=["score"])
        assert r.status == "failed" and "corrupt" in r.message
    [health] = run_group(str(home.root), None, "health_interval_s")
    # The job's own no_data check cannot read the lake: it fails, after the job-failure check paged.
    assert health.status == "failed" and "pipeline check no_data failed" in health.message
    [a] = lifecycle.list_alerts(home, "firing")
    assert (a["rule"], a["metric"], json.loads(a["segment"])) == ("job_failures", "job_failures", {"job": "score"})
    assert a["message"].startswith("job_failures, job=score: job score failed its last 3 runs (first at ")
    assert "lake manifest" in a["message"] and "is corrupt" in a["message"]
    assert "skipped while it fails: " in a["message"] and "alerts" in a["message"].split("skipped while it fails: ")[1]
    assert "monitor jobs run score" in a["message"]
    [notify] = run_group(str(home.root), None, "notify_interval_s")
    assert notify.status == "ok" and notify.rows == 1
    [msg] = sent(home)
    assert msg["subject"] == "[WARNING] job_failures, job=score: job_failures"
    # A fourth failure changes nothing; a success resolves it.
    run_group(str(home.root), None, "jobs_interval_s", only=["score"])
    run_group(str(home.root), None, "health_interval_s")
    assert len(lifecycle.list_alerts(home)) == 1
    (home.root / "lake" / "_manifest.json").unlink()
    assert run_group(str(home.root), None, "jobs_interval_s", only=["score"])[0].status == "ok"
    assert run_group(str(home.root), None, "health_interval_s")[0].status == "ok"
    assert lifecycle.list_alerts(home)[0]["status"] == "resolved"


def test_jobs_failing_together_are_one_incident_and_two_failures_are_not_enough(tmp_path):
    home = make_home(tmp_path)
    failing_runs(home, "score", 3)
    failing_runs(home, "values", 2)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    assert check(home, now).new == 1
    failing_runs(home, "values", 1)
    res = check(home, now)
    assert res.new == 1 and res.notifications == 1
    rows = lifecycle.list_alerts(home)
    assert len(rows) == 2 and len({r["incident_key"] for r in rows}) == 1
    [first, update] = home.state.query("SELECT kind FROM notify_outbox ORDER BY id")
    assert (first["kind"], update["kind"]) == ("alert", "update")  # the second job joins the incident


def test_monitor_jobs_run_delivers_the_page_while_the_metric_chain_fails(tmp_path):
    from monitor.jobs import run_all

    home = make_home(tmp_path, '\n[ingest]\ninbox_dirs = []\n')
    (home.root / "lake" / "_manifest.json").write_text("{not json")
    for _ in range(3):
        results = {r.job: r for r in run_all(home)}
    assert results["alerts"].status in ("failed", "skipped") and results["score"].status == "failed"
    # notify runs after alerts and pipeline_health, but is not skipped when they fail: the page goes out now.
    assert results["notify"].status == "ok" and results["notify"].rows == 1
    [msg] = sent(home)
    assert "job_failures" in msg["subject"] and "score" in msg["text"]


def bad_records(path, n):
    """A log whose producer renamed its fields (`ts`, `msgs`): a format change upstream."""
    path.write_text("".join(json.dumps({"conversation_id": f"c{i}", "ts": "2026-11-27T14:00:00Z",
                                        "msgs": [{"role": "user", "content": "hi"}]}) + "\n" for i in range(n)))
    return path


def test_a_jump_in_quarantined_input_pages_and_a_hand_resolve_starts_counting_again(tmp_path, clock):
    home = make_home(tmp_path)
    t = dt.datetime(2026, 11, 27, 14, 0)
    ingest(home, clock, traffic(tmp_path / "good.jsonl", ["web"], t - dt.timedelta(hours=2), t), t)  # 25 turns
    assert check(home, t).new == 0
    assert check(home, t).resolved == 0
    bad_at = t + dt.timedelta(minutes=20)
    ingest(home, clock, bad_records(tmp_path / "format_change.jsonl", 60), bad_at)
    res = check(home, bad_at)
    [a] = lifecycle.list_alerts(home)
    assert res.new == 1 and res.notifications == 1 and a["rule"] == "quarantine_share"
    assert a["message"].startswith("quarantine_share, all input: 71% of the 85 input records read since "
                                   "2026-11-27 13:20 UTC were quarantined (60; limit 10%; 2 file(s)); most often: ")
    assert "most often: messages: missing messages (60); latest: " in a["message"]
    assert "/format_change.jsonl (60 of 60 quarantined)" in a["message"]
    assert "monitor quarantine list" in a["message"]
    reasons = json.loads(a["evidence"])["reasons"]
    assert reasons and reasons[0]["records"] == 60
    # The same stretch above the line: one alert.
    assert check(home, bad_at + dt.timedelta(minutes=5)).new == 0
    lifecycle.resolve(home, a["id"], "dana", "producer rolled back", now=bad_at + dt.timedelta(minutes=5))
    assert check(home, bad_at + dt.timedelta(minutes=6)).new == 0  # the old bad file does not page again
    ingest(home, clock, bad_records(tmp_path / "format_change_2.jsonl", 55), bad_at + dt.timedelta(minutes=30))
    assert check(home, bad_at + dt.timedelta(minutes=30)).new == 1
    # Good input again: the share falls back under the line and the alert resolves itself.
    good_at = bad_at + dt.timedelta(minutes=40)
    ingest(home, clock, traffic(tmp_path / "good-2.jsonl", ["web"], good_at - dt.timedelta(hours=12), good_at,
                                every_min=1), good_at)
    assert check(home, good_at).resolved == 1
