"""The job_stuck rule: a run that hangs (never fails, never ends) pages through the pipeline-health lifecycle, with
the limit and the "in progress" test GET /readyz uses; the worker's health checks and notifications run while a job
of another group hangs; worker.max_run_s and its neighbours are strict."""
import contextlib
import datetime as dt
import fcntl
import json
import threading

import pytest

from monitor.alerts import lifecycle
from monitor.alerts.pipeline import check, evaluate
from monitor.alerts.rules import parse_rules
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.home import Home
from monitor.state import iso, utcnow
from monitor.worker.readiness import readiness
from monitor.worker.runs import running_jobs

T0 = dt.datetime(2026, 11, 27, 14, 0)  # the hung run starts
CONFIG = """[alerts]
dashboard_url = "https://mon.example"

[[alerts.rules]]
name = "job_stuck"
kind = "job_stuck"

[[notify.channels]]
name = "file"
type = "log"
path = "notifications.jsonl"
"""
STUCK_ONLY = parse_rules([{"name": "job_stuck", "kind": "job_stuck"}], "test")


def make_home(tmp_path, extra=""):
    root = tmp_path / "home"
    root.mkdir(parents=True, exist_ok=True)
    (root / "monitor.toml").write_text(CONFIG + extra)
    return Home.open(root)


def finished_runs(home, job, durations, end=T0):
    """Successful runs of `job` that took `durations` seconds each, the last ending at `end`."""
    with home.state.tx() as con:
        for d in durations:
            con.execute("INSERT INTO job_runs (job, started_at, finished_at, status, duration_s) VALUES "
                        "(?, ?, ?, 'ok', ?)", (job, iso(end - dt.timedelta(seconds=d)), iso(end), d))


def start_run(home, job, at=T0) -> int:
    with home.state.tx() as con:
        return con.execute("INSERT INTO job_runs (job, started_at, status) VALUES (?, ?, 'running')",
                           (job, iso(at))).lastrowid


def finish_run(home, run_id, at):
    with home.state.tx() as con:
        con.execute("UPDATE job_runs SET status='ok', finished_at=?, duration_s=1 WHERE id=?", (iso(at), run_id))


@contextlib.contextmanager
def job_lock(home, job):
    """Hold the job's lock as a run in progress does (monitor.jobs._one_run_at_a_time)."""
    (home.root / ".locks").mkdir(exist_ok=True)
    with open(home.root / ".locks" / f"job-{job}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sent(home):
    path = home.root / "notifications.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_a_hung_run_pages_past_five_times_its_usual_duration_and_resolves_when_it_ends(tmp_path):
    home = make_home(tmp_path)
    # 20 runs of 100-290 s: the 95th percentile is 280.5 s, the limit 5 x that, 1,402.5 s (over the 600 s floor).
    finished_runs(home, "score", [100 + 10 * i for i in range(20)], end=T0 - dt.timedelta(minutes=5))
    run_id = start_run(home, "score")
    with job_lock(home, "score"):
        [cur] = running_jobs(home, T0 + dt.timedelta(minutes=10), ["score", "values"]).values()
        assert (cur.job, cur.run_id, cur.running_s, cur.limit_s, cur.stuck) == ("score", run_id, 600, 1402.5, False)
        assert check(home, T0 + dt.timedelta(seconds=1402)).new == 0
        at = T0 + dt.timedelta(minutes=30)
        res = check(home, at)
        assert res.new == 1 and res.notifications == 1
        [a] = lifecycle.list_alerts(home)
        assert (a["rule"], a["metric"], json.loads(a["segment"]), a["status"], a["severity"]) == (
            "job_stuck", "job_stuck", {"job": "score"}, "firing", "warning")
        assert a["window_start"] == "2026-11-27T14:00:00Z" and a["value"] == 0.5 and a["threshold"] == 0.39
        assert a["message"].startswith(
            "job_stuck, job=score: job score has been running for 30 min (since 2026-11-27 14:00 UTC; limit 23 min: "
            "5 x 280.5 s, the 95th percentile of its last 20 successful runs, at least worker.stuck_min_s 600 s); "
            "waiting for it: ")
        assert "alerts" in a["message"].split("waiting for it: ")[1] and "py-spy dump" in a["message"]
        ev = json.loads(a["evidence"])
        assert (ev["run_id"], ev["since"], ev["running_s"], ev["limit_s"]) == (run_id, "2026-11-27T14:00:00Z",
                                                                               1800.0, 1402.5)
        # /readyz judges the same run by the same limit.
        ready, body = readiness(home, None, at)
        assert not ready and body["jobs"]["score"]["running_since"] == "2026-11-27T14:00:00Z"
        assert body["jobs"]["score"]["stuck_after_s"] == 1402.5
        assert "job score: running for 1,800 s since 2026-11-27T14:00:00Z, stuck after 1,402 s (5 x 280.5 s, the " \
               "95th percentile of its last 20 successful runs, at least worker.stuck_min_s 600 s)" in body["reasons"]
        # Checked again while it hangs: one alert, no new page.
        again = check(home, at + dt.timedelta(minutes=5))
        assert (again.new, again.updated, again.notifications) == (0, 0, 0)
    finish_run(home, run_id, at + dt.timedelta(minutes=6))  # someone restarted the worker; the run ended
    assert check(home, at + dt.timedelta(minutes=7)).resolved == 1
    assert lifecycle.list_alerts(home)[0]["resolved_by"] == "worker"
    assert readiness(home, None, at)[1]["jobs"]["score"]["running_since"] is None


def test_a_running_row_left_by_a_dead_process_is_not_a_hung_run(tmp_path):
    home = make_home(tmp_path)
    start_run(home, "compact")  # the process was killed mid-run: nobody holds the job's lock
    late = T0 + dt.timedelta(hours=5)
    assert evaluate(home, late, rules=STUCK_ONLY) == ([], [])
    assert readiness(home, None, late)[1]["jobs"]["compact"]["running_since"] is None
    with job_lock(home, "compact"):  # the same row while a run holds the lock: stuck, after an hour (no history)
        [a], errors = evaluate(home, late, rules=STUCK_ONLY)
        assert errors == [] and a.threshold == 1.0
        assert "limit 60 min: 0 timed successful runs, too few for its usual duration: 3,600 s)" in a.message
    # A later run of the job supersedes the row, whether or not someone holds the lock.
    finished_runs(home, "compact", [3], end=late)
    with job_lock(home, "compact"):
        assert evaluate(home, late, rules=STUCK_ONLY) == ([], [])


def test_a_run_that_hangs_again_is_a_new_episode_and_the_old_one_resolves(tmp_path):
    home = make_home(tmp_path, "\n[worker]\nmax_run_s = {values = 900}\n")
    first = start_run(home, "values")
    with job_lock(home, "values"):
        assert check(home, T0 + dt.timedelta(minutes=16)).new == 1
        # The first run ends and a second one hangs before the next check (one check a minute; a long gap here).
        finish_run(home, first, T0 + dt.timedelta(minutes=17))
        start_run(home, "values", T0 + dt.timedelta(minutes=18))
        res = check(home, T0 + dt.timedelta(minutes=40))
        assert (res.new, res.resolved) == (1, 1)
    rows = lifecycle.list_alerts(home)
    assert sorted((r["window_start"], r["status"]) for r in rows) == [
        ("2026-11-27T14:00:00Z", "resolved"), ("2026-11-27T14:18:00Z", "firing")]
    assert "limit 15 min: worker.max_run_s.values)" in next(r for r in rows if r["status"] == "firing")["message"]


@pytest.mark.parametrize("worker, words", [
    ("max_run_s = {scoer = 600}", "'worker.max_run_s.scoer': no job is named 'scoer'; did you mean 'score'?"),
    ("max_run_s = {score = 0}", "'worker.max_run_s.score' must be a positive number of seconds, got 0"),
    ("max_run_s = {score = \"1h\"}", "'worker.max_run_s.score' must be float, got str '1h'"),
    ("stuck_factor = 0.5", "'worker.stuck_factor' must be at least 1, got 0.5"),
    ("stuck_min_s = -1", "'worker.stuck_min_s' must be positive, got -1"),
    ("max_run = {score = 600}", "unknown key 'worker.max_run'; did you mean 'max_run_s'?"),
])
def test_stuck_limits_in_the_config_are_strict(worker, words):
    import tomllib

    with pytest.raises(ConfigError) as e:
        parse_config(tomllib.loads(f"[worker]\n{worker}\n"), "monitor.toml")
    assert words in f"{e.value.message}; {e.value.hint}"


def test_a_job_stuck_rule_names_jobs_that_exist():
    with pytest.raises(ConfigError) as e:
        parse_rules([{"name": "s", "kind": "job_stuck", "jobs": "scroe"}], "test")
    assert "'scroe' matches no job" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_rules([{"name": "s", "kind": "job_stuck", "failures": 2}], "test")
    assert "is not a key of kind 'job_stuck' rules" in str(e.value)


def test_the_health_checks_and_notifications_run_while_a_job_of_another_group_hangs(tmp_path, monkeypatch):
    from monitor.jobs import Job, discover
    from monitor.worker import scheduler as ws

    home = make_home(tmp_path)
    started, release = threading.Event(), threading.Event()

    def hang(ctx):  # a run that never ends by itself (a deadlock, a request without a timeout)
        started.set()
        release.wait(120)
        return 0

    real = discover()
    monkeypatch.setattr(ws, "discover", lambda: {**real, "score": Job("score", hang)})
    monkeypatch.setattr(ws, "groups", lambda: {"jobs_interval_s": ["score"], "health_interval_s": ["pipeline_health"],
                                               "notify_interval_s": ["notify"]})
    chain = threading.Thread(target=ws.run_group, args=(str(home.root), None, "jobs_interval_s"))
    chain.start()
    try:
        assert started.wait(30)
        with home.state.tx() as con:  # the run started two hours ago: past the hour a job without history gets
            con.execute("UPDATE job_runs SET started_at=? WHERE job='score' AND status='running'",
                        (iso(utcnow() - dt.timedelta(hours=2)),))
        for group in ("health_interval_s", "notify_interval_s"):
            t = threading.Thread(target=ws.run_group, args=(str(home.root), None, group))
            t.start()
            t.join(30)
            assert not t.is_alive(), f"{group} waited behind the hung job"
        [a] = lifecycle.list_alerts(home, "firing")
        assert a["rule"] == "job_stuck" and "job score has been running for 2.0 h" in a["message"]
        [msg] = sent(home)
        assert msg["subject"] == "[WARNING] job_stuck, job=score: job_stuck"
    finally:
        release.set()
        chain.join(60)
    assert [r.status for r in ws.run_group(str(home.root), None, "health_interval_s")] == ["ok"]
    assert lifecycle.list_alerts(home)[0]["status"] == "resolved"


def test_the_watch_groups_have_an_executor_of_their_own(tmp_path):
    from monitor.worker import scheduler as ws

    home = make_home(tmp_path)
    sched = ws.build_scheduler(home)
    sched.start(paused=True)
    try:
        executors = {j.id: j.executor for j in sched.get_jobs()}
    finally:
        sched.shutdown(wait=False)
    assert executors["group-health_interval_s"] == executors["group-notify_interval_s"] == "watch"
    assert executors["group-jobs_interval_s"] == executors["group-ingest_interval_s"] == "default"
