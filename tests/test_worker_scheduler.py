"""The worker's schedule: one persistent job per interval group, no duplicates across restarts, retries."""
import datetime as dt

from monitor.jobs import discover
from monitor.worker import scheduler as ws


def test_groups_cover_every_job_in_dependency_order():
    groups = ws.groups()
    names = [n for g in groups.values() for n in g]
    assert sorted(names) == sorted(discover())
    chain = groups["jobs_interval_s"]
    assert chain.index("score") < chain.index("refusal_metrics") < chain.index("alerts")
    assert groups["ingest_interval_s"] == ["ingest_inbox"]
    assert "notify" in groups["notify_interval_s"] and "compact" in groups["compact_interval_s"]


def test_restart_does_not_duplicate_jobs(home):
    for _ in range(2):  # two "starts" of the worker on the same persistent store
        sched = ws.build_scheduler(home)
        sched.start(paused=True)
        ids = sorted(j.id for j in sched.get_jobs())
        sched.shutdown(wait=False)
    assert ids == sorted(f"group-{k}" for k in ws.groups())
    assert (home.root / "scheduler.sqlite").exists()


def test_jobs_reference_functions_by_text(home):
    sched = ws.build_scheduler(home)
    sched.start(paused=True)
    try:
        job = sched.get_job("group-jobs_interval_s")
        assert job.func_ref == "monitor.worker.scheduler:run_group"
        assert job.coalesce is True and job.max_instances == 1
        # Due immediately at start-up: a restarted worker catches up at once.
        assert job.next_run_time <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)
    finally:
        sched.shutdown(wait=False)


def test_failed_job_is_retried_and_others_still_run(home, monkeypatch):
    import monitor.jobs as jobs_mod

    calls = []
    real = jobs_mod.discover()

    def boom(ctx):
        raise RuntimeError("disk on fire")

    def fine(ctx):
        calls.append("fine")
        return 1

    fake = {
        "a_fails": jobs_mod.Job("a_fails", boom),
        "b_after_a": jobs_mod.Job("b_after_a", fine, depends_on=("a_fails",)),
        "c_independent": jobs_mod.Job("c_independent", fine),
    }
    monkeypatch.setattr(ws, "discover", lambda: fake)
    monkeypatch.setattr(ws, "groups", lambda: {"jobs_interval_s": ["a_fails", "b_after_a", "c_independent"]})
    sched = ws.build_scheduler(home)
    sched.start(paused=True)
    try:
        results = ws.run_group(str(home.root), None, "jobs_interval_s")
        status = {r.job: r.status for r in results}
        assert status == {"a_fails": "failed", "c_independent": "ok"}  # b skipped, c unaffected
        assert calls == ["fine"]
        retry = sched.get_job("retry-jobs_interval_s")
        assert retry is not None and retry.args[-1] == ["a_fails", "b_after_a"]
        runs = home.state.query("SELECT job, status, message FROM job_runs ORDER BY id")
        assert runs[0]["status"] == "failed" and "disk on fire" in runs[0]["message"]
    finally:
        sched.shutdown(wait=False)
    assert real  # the real registry was untouched
