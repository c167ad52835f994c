"""`GET /readyz`: whether the worker's numbers can be trusted now, with the reasons when they cannot.

`/healthz` says the process answers. Readiness says more: the scheduler is running, no scheduled job's last run
failed, every scheduled job succeeded recently, within `worker.stale_after_intervals` of its interval (and
at least `worker.stale_min_s`), and no run in progress has run past its limit (monitor/worker/runs.py, shared with
the job_stuck alert rule). A worker whose metric chain stopped two hours ago answers /healthz all the same;
the metrics, alerts and pages behind it are two hours old.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from monitor.home import Home
from monitor.state import iso, utcnow
from monitor.worker.runs import running_jobs

MESSAGE_CHARS = 200  # a failed job's message is cut to this: enough to say what broke


def _scheduler_state(scheduler) -> str:
    from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING

    if scheduler is None:
        return "absent"
    thread = getattr(scheduler, "_thread", None)
    if scheduler.state == STATE_RUNNING and (thread is None or thread.is_alive()):
        return "running"
    return "paused" if scheduler.state == STATE_PAUSED else "stopped"


def _parse(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.rstrip("Z")) if text else None


def readiness(home: Home, scheduler, now: dt.datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """(ready, body): body holds `status`, `reasons` (empty when ready), the scheduler state and each job's check."""
    from monitor.worker.scheduler import groups

    now = now or utcnow()
    wc = home.config.worker
    reasons: list[str] = []
    state = _scheduler_state(scheduler)
    if state != "running":
        reasons.append(f"scheduler is {state}: no job runs" if state != "absent" else
                       "no scheduler in this process: no job runs")
    last = {r["job"]: r for r in home.state.query(
        "SELECT job, status, finished_at, message FROM job_runs WHERE id IN "
        "(SELECT max(id) FROM job_runs WHERE finished_at IS NOT NULL GROUP BY job)")}
    ok_at = {r["job"]: r["at"] for r in home.state.query(
        "SELECT job, max(finished_at) AS at FROM job_runs WHERE status='ok' GROUP BY job")}
    # Runs in progress, and whether one has run past its limit (shared with the job_stuck alert rule).
    running = running_jobs(home, now, [n for names in groups().values() for n in names])
    jobs: dict[str, dict] = {}
    for key, names in groups().items():
        interval = float(getattr(wc, key, wc.jobs_interval_s))
        stale_after = max(wc.stale_after_intervals * interval, wc.stale_min_s)
        for name in names:
            done, success = last.get(name), _parse(ok_at.get(name))
            age = (now - success).total_seconds() if success else None
            check = {"interval_s": interval, "stale_after_s": stale_after,
                     "last_status": done["status"] if done else None, "last_success": iso(success),
                     "age_s": round(age, 3) if age is not None else None, "running_since": None,
                     "stuck_after_s": None}
            run = running.get(name)
            if run is not None:
                check["running_since"] = iso(run.started_at)
                check["stuck_after_s"] = round(run.limit_s, 3)
            jobs[name] = check
            if run is not None and run.stuck:
                reasons.append(f"job {name}: running for {run.running_s:,.0f} s since {iso(run.started_at)}, stuck "
                               f"after {run.limit_s:,.0f} s ({run.basis})")
            if done is not None and done["status"] != "ok":
                msg = (done["message"] or "")[:MESSAGE_CHARS]
                reasons.append(f"job {name}: last run {done['status']} at {done['finished_at']}"
                               + (f": {msg}" if msg else ""))
            if success is None:
                reasons.append(f"job {name}: no successful run yet"
                               + (" (one is running)" if check["running_since"] else ""))
            elif age > stale_after:
                reasons.append(f"job {name}: last success {iso(success)} is {age:,.0f} s old, stale after "
                               f"{stale_after:,.0f} s ({wc.stale_after_intervals:g} x its {interval:g} s interval, "
                               f"at least {wc.stale_min_s:g} s)")
    # A broken edit of the configuration file: the worker does its work on the last good configuration, so it stays
    # ready; the edit is not in force, which people are told (the config_invalid alert) and an orchestrator can see.
    from monitor.worker.config_guard import problem

    bad = problem(home)
    config = {"valid": bad is None, **({k: bad.get(k) for k in ("file", "error", "hint", "since",
                                                                "running_on_config_read_at")} if bad else {})}
    body = {"status": "not ready" if reasons else "ready", "reasons": reasons, "scheduler": state, "jobs": jobs,
            "config": config}
    return not reasons, body
