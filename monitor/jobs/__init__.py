"""Scheduled jobs: plain functions with a name, dependencies and a help line, run in dependency order.

Each module in this package exports ``JOBS`` (a list of Job). `run_all` runs them once, now, in topological
order; a failing job is recorded in `job_runs` and its dependants are skipped, the rest still run. Job bodies take
a JobContext with an injected clock so tests can replay time. The worker (`monitor serve`) schedules the same
functions with APScheduler by their textual reference ``monitor.jobs:run_job``.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import gc
import importlib
import logging
import pkgutil
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterator

from monitor.errors import JobError, MonitorError
from monitor.home import Home
from monitor.state import iso, utcnow

log = logging.getLogger("monitor.jobs")


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[["JobContext"], "int | None"]
    depends_on: tuple[str, ...] = ()
    help: str = ""
    interval: str = "jobs_interval_s"  # WorkerConfig field giving its schedule
    # Jobs it runs after when they run too, without being skipped when they fail (order only): `notify` delivers
    # what `alerts` and `pipeline_health` queued, and what was queued before when they fail.
    after: tuple[str, ...] = ()


@dataclass
class JobContext:
    home: Home
    now: dt.datetime  # naive UTC; injected so tests can replay time
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    backfill: bool = False

    @property
    def config(self):
        return self.home.config


@dataclass
class JobResult:
    job: str
    status: str  # ok | failed | skipped
    rows: int = 0
    seconds: float = 0.0
    message: str = ""


def discover() -> dict[str, Job]:
    import monitor.jobs as pkg

    jobs: dict[str, Job] = {}
    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__)):
        module = importlib.import_module(f"monitor.jobs.{mod}")
        for job in getattr(module, "JOBS", []):
            if job.name in jobs:
                raise JobError(f"two jobs are named {job.name!r} (second in monitor/jobs/{mod}.py)")
            jobs[job.name] = job
    return jobs


def ordered(jobs: dict[str, Job]) -> list[Job]:
    """Topological order, ties broken by name, so runs are reproducible."""
    out, done, visiting = [], set(), set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise JobError(f"job dependency cycle through {name!r}")
        if name not in jobs:
            raise JobError(f"unknown job {name!r} in depends_on")
        visiting.add(name)
        for dep in sorted(jobs[name].depends_on):
            visit(dep)
        for dep in sorted(jobs[name].after):
            if dep in jobs:  # an order-only dependency not selected for this run is not run for it
                visit(dep)
        visiting.discard(name)
        done.add(name)
        out.append(jobs[name])

    for name in sorted(jobs):
        visit(name)
    return out


@contextlib.contextmanager
def _one_run_at_a_time(home: Home, name: str) -> Iterator[None]:
    """Hold the job's lock for the home, across processes: the worker's scheduled run and a `monitor jobs run` at
    once would each compute the same new windows and write their rows twice. The second run waits, then finds
    the work done (jobs are incremental)."""
    folder = home.root / ".locks"
    folder.mkdir(exist_ok=True)
    with open(folder / f"job-{name}.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("job %s: another run is in progress in this home; waiting for it to finish", name)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


INTERRUPTED = "its process ended before the run did (killed, out of memory, a reboot): found by the next run"


def run_job(home: Home, job: Job, now: dt.datetime | None = None, backfill: bool = False) -> JobResult:
    """Run one job, recording its run in `job_runs`; errors are caught and reported in the result. Runs of one job
    in one home never overlap (`_one_run_at_a_time`)."""
    with _one_run_at_a_time(home, job.name):
        return _run_job(home, job, now, backfill)


def _run_job(home: Home, job: Job, now: dt.datetime | None, backfill: bool) -> JobResult:
    ctx = JobContext(home, now or utcnow(), backfill=backfill)
    with home.state.tx() as con:
        # This process holds the job's lock: a 'running' row of the job is a run whose process died mid-run (kill -9,
        # out of memory, a reboot). Said so, instead of a run that never ends to whatever reads job_runs.
        con.execute("UPDATE job_runs SET status='interrupted', message=? WHERE job=? AND status='running'",
                    (INTERRUPTED, job.name))
        run_id = con.execute(
            "INSERT INTO job_runs (job, started_at, status) VALUES (?, ?, 'running')", (job.name, iso(utcnow()))
        ).lastrowid
    t0 = time.perf_counter()
    try:
        rows = job.func(ctx) or 0
        status, message = "ok", ""
    except MonitorError as e:
        rows, status, message = 0, "failed", str(e)
        log.error("job %s failed: %s", job.name, e)
    except Exception as e:  # a job bug must not stop the other jobs; keep the traceback in the log
        rows, status, message = 0, "failed", f"{type(e).__name__}: {e}"
        log.error("job %s crashed:\n%s", job.name, traceback.format_exc())
    secs = time.perf_counter() - t0
    with home.state.tx() as con:
        # The duration is measured, not derived from the timestamps: those are to the second.
        con.execute(
            "UPDATE job_runs SET finished_at=?, status=?, rows_written=?, message=?, duration_s=? WHERE id=?",
            (iso(utcnow()), status, rows, message, secs, run_id),
        )
    return JobResult(job.name, status, rows, secs, message)


def run_all(home: Home, only: list[str] | None = None, now: dt.datetime | None = None,
            backfill: bool = False) -> list[JobResult]:
    """Run every job (or `only` these and what they depend on) once, in dependency order.

    `after` orders, it does not pull in: `monitor jobs run pipeline_health notify` (a cron line every minute, so a
    hung metric run is paged about, docs/alerts.md) checks and delivers without running the metric chain."""
    jobs = discover()
    if only:
        unknown = [n for n in only if n not in jobs]
        if unknown:
            raise JobError(f"unknown job(s): {', '.join(unknown)}", f"known jobs: {', '.join(sorted(jobs))}")
        wanted: set[str] = set()

        def add(n: str) -> None:
            if n not in wanted:
                wanted.add(n)
                for d in jobs[n].depends_on:
                    add(d)

        for n in only:
            add(n)
        jobs = {k: v for k, v in jobs.items() if k in wanted}
    results: list[JobResult] = []
    failed: set[str] = set()
    for job in ordered(jobs):
        if any(d in failed for d in job.depends_on):
            results.append(JobResult(job.name, "skipped", message="a job it depends on failed"))
            failed.add(job.name)
            continue
        r = run_job(home, job, now, backfill)
        if r.status == "failed":
            failed.add(job.name)
        results.append(r)
    refresh_catalog(home)
    freeze_long_lived()
    return results


def refresh_catalog(home: Home) -> None:
    """Rewrite catalog.duckdb after a run; a failure is logged, not raised: the runs are recorded already.

    A lake whose manifest cannot be read fails the catalog as it fails the jobs; raised here, it would hide which
    jobs failed from `monitor jobs run` and stop the worker from scheduling their retries.
    """
    from monitor.db import write_catalog

    try:
        write_catalog(home)
    except MonitorError as e:
        log.warning("catalog.duckdb not rewritten: %s", e)


_RUNS = 0
RECOLLECT_EVERY = 50  # runs between full collections that include the frozen objects


def freeze_long_lived() -> None:
    """After a run of the jobs, keep the objects loaded for it out of the cyclic garbage collector's scans."""
    # The first run loads the classifiers, lexicons, value scorer and caches: millions of long-lived objects that
    # every full collection walks again (~0.2 s per incremental run at 140k turns, 0.07 s frozen, measured with
    # gc.callbacks). What later runs leave alive is collected as usual. A frozen object that later becomes cyclic
    # garbage (a replaced cache entry) is only freed by a collection that includes the frozen ones: one every
    # RECOLLECT_EVERY runs, which also freezes what has become long-lived since.
    global _RUNS
    _RUNS += 1
    if _RUNS == 1:
        gc.freeze()
    elif _RUNS % RECOLLECT_EVERY == 0:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
