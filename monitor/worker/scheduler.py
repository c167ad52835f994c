"""The worker's schedule: one APScheduler job per interval group of monitor jobs, in a persistent job store.

Each monitor Job names the WorkerConfig interval it follows (``jobs_interval_s`` for the metric chain,
``ingest_interval_s`` for the inbox, ``notify_interval_s`` for delivery, ``health_interval_s`` for the
pipeline-health checks, ``compact_interval_s`` for storage).
The scheduler runs each group in dependency order through the textual reference
``monitor.worker.scheduler:run_group`` (a persistent store keeps references, not pickled functions). Jobs are
incremental, so one coalesced run after downtime catches up every window that was missed. A failed job gets a
one-off retry with backoff; the other groups are unaffected. Groups run one at a time, except the health checks
and notifications (WATCH_GROUPS), which run beside them: a hung job must not stop the page about it.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.home import Home
from monitor.jobs import JobResult, discover, freeze_long_lived, ordered, refresh_catalog, run_job
from monitor.worker.config_guard import open_home

log = logging.getLogger("monitor.worker")

# Serialise job bodies inside the worker: the lake lock would do it too, but one at a time keeps the 2-core
# machine responsive for the HTTP endpoint and makes job durations meaningful.
_RUN_LOCK = threading.Lock()
# The watch groups never wait behind the others: a run that hangs holds _RUN_LOCK for ever, and the health checks
# must still run to page about it (job_stuck), and notify to deliver the page. They are light (a few queries, a few
# messages), run one at a time among themselves, and on an executor of their own: the default pool's threads may
# all be taken by the hung run and a group waiting for it. They already run beside a `monitor jobs run` from cron.
WATCH_GROUPS = ("health_interval_s", "notify_interval_s")
_WATCH_LOCK = threading.Lock()
WATCH_EXECUTOR = "watch"
RETRY_DELAYS_S = (30, 120, 600)
MAX_INTERVAL_S = 366 * 86400.0  # a year: a longer schedule is a typo, and far longer ones overflow the next run date
LAST_RESULTS: dict[str, JobResult] = {}


def groups() -> dict[str, list[str]]:
    """Interval key -> job names, each list in dependency order."""
    out: dict[str, list[str]] = {}
    for job in ordered(discover()):
        out.setdefault(job.interval, []).append(job.name)
    return out


def run_group(home_root: str, config_file: str | None, interval_key: str, attempt: int = 0,
              only: list[str] | None = None) -> list[JobResult]:
    """Run the jobs of one interval group now, in order; schedule a retry for the ones that failed.

    The configuration is re-read at every run; a broken edit leaves the run on the last one that passed
    (monitor/worker/config_guard.py)."""
    home = open_home(home_root, config_file)
    jobs = discover()
    names = only or groups().get(interval_key, [])
    results = []
    failed: list[str] = []
    with _WATCH_LOCK if interval_key in WATCH_GROUPS else _RUN_LOCK:
        for name in names:
            job = jobs[name]
            if any(d in failed for d in job.depends_on):
                failed.append(name)
                continue
            r = run_job(home, job)
            LAST_RESULTS[name] = r
            results.append(r)
            if r.status == "failed":
                failed.append(name)
        if results and any(r.rows for r in results):
            refresh_catalog(home)
        if interval_key == "jobs_interval_s":  # the metric jobs load the models
            freeze_long_lived()
    if failed and _SCHEDULER is not None and attempt < len(RETRY_DELAYS_S):
        delay = RETRY_DELAYS_S[attempt]
        log.warning("jobs %s failed; retrying in %ss", ", ".join(failed), delay)
        _SCHEDULER.add_job(
            "monitor.worker.scheduler:run_group",
            trigger="date",
            run_date=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=delay),
            args=[home_root, config_file, interval_key, attempt + 1, failed],
            id=f"retry-{interval_key}",
            executor=_executor(interval_key),
            replace_existing=True,
            misfire_grace_time=None,
        )
    return results


_SCHEDULER: BackgroundScheduler | None = None


def _executor(interval_key: str) -> str:
    return WATCH_EXECUTOR if interval_key in WATCH_GROUPS else "default"


def build_scheduler(home: Home) -> BackgroundScheduler:
    """A scheduler with a SQLite job store in the home and one interval job per group (not started)."""
    global _SCHEDULER
    store = SQLAlchemyJobStore(url=f"sqlite:///{home.root / 'scheduler.sqlite'}")
    sched = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(max_workers=2), WATCH_EXECUTOR: ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 24 * 3600},
        timezone=dt.timezone.utc,
    )
    wc = home.config.worker
    cfg_file = str(home.config_file) if home.config_file else None
    now = dt.datetime.now(dt.timezone.utc)
    for key in groups():
        seconds = float(getattr(wc, key, wc.jobs_interval_s))
        if seconds > MAX_INTERVAL_S:
            from monitor.worker.server import WorkerError

            raise WorkerError(f"'worker.{key}' is {seconds:g} s: a schedule runs at least once a year "
                              f"({MAX_INTERVAL_S:,.0f} s)", f"set worker.{key} to {MAX_INTERVAL_S:.0f} or less")
        sched.add_job(
            "monitor.worker.scheduler:run_group",
            trigger="interval",
            seconds=seconds,
            args=[str(home.root), cfg_file, key],
            id=f"group-{key}",
            name=f"monitor jobs every {seconds:g}s ({key})",
            executor=_executor(key),
            replace_existing=True,
            next_run_time=now,  # run at start-up: catches up whatever was missed while down
        )
    _SCHEDULER = sched
    return sched
