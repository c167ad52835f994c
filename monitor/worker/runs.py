"""Job runs in progress, and when one has run too long: what `GET /readyz` and the `job_stuck` alert rule share.

A run is recorded in `job_runs` as 'running' when it starts and updated when it ends (monitor/jobs/__init__.py).
It is *in progress* while it is its job's latest row and its job's lock in the home is held: a process killed
mid-run (out of memory, a reboot) leaves a 'running' row whose lock nobody holds, and the next run of the job
marks it 'interrupted'. A run in progress is *stuck* once it has run longer than its limit: `worker.max_run_s` for that job
when set, else max(`worker.stuck_min_s`, `worker.stuck_factor` x the 95th percentile of the durations of its last
HISTORY_RUNS successful runs), or max(`worker.stuck_min_s`, FIRST_RUNS_S) while it has fewer than MIN_RUNS timed
successful runs (the first runs of a home catch up on its backlog).
"""
from __future__ import annotations

import datetime as dt
import fcntl
import statistics
from dataclasses import dataclass

from monitor.home import Home

HISTORY_RUNS = 50  # successful runs whose durations say how long the job usually takes
MIN_RUNS = 5  # fewer timed successful runs than this: no percentile, FIRST_RUNS_S
FIRST_RUNS_S = 3600.0


@dataclass(frozen=True)
class RunningJob:
    """A job's run in progress, how long it has run, and the limit past which it counts as stuck."""

    job: str
    run_id: int
    started_at: dt.datetime
    running_s: float
    limit_s: float
    basis: str  # how the limit was set, for a message: "worker.max_run_s.compact", "5 x p95 of ..."

    @property
    def stuck(self) -> bool:
        return self.running_s > self.limit_s


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.rstrip("Z"))


def lock_held(home: Home, job: str) -> bool:
    """Whether a run of `job` holds the job's lock in this home (any process, this one included)."""
    path = home.root / ".locks" / f"job-{job}.lock"
    if not path.exists():
        return False
    with open(path, "rb") as fh:
        try:
            # Shared and non-blocking: it conflicts with the exclusive lock of a run, and is released at once. (A run
            # starting in that instant waits for it, logging that another run is in progress.)
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def stuck_limit(home: Home, job: str) -> tuple[float, str]:
    """The seconds after which a run of `job` counts as stuck, and how that limit was set."""
    wc = home.config.worker
    if job in wc.max_run_s:
        return float(wc.max_run_s[job]), f"worker.max_run_s.{job}"
    durations = [r["duration_s"] for r in home.state.query(
        "SELECT duration_s FROM job_runs WHERE job=? AND status='ok' AND duration_s IS NOT NULL "
        "ORDER BY id DESC LIMIT ?", (job, HISTORY_RUNS))]
    if len(durations) < MIN_RUNS:
        limit = max(wc.stuck_min_s, FIRST_RUNS_S)
        return limit, (f"{len(durations)} timed successful run{'s' if len(durations) != 1 else ''}, too few for its "
                       f"usual duration: {limit:,.0f} s")
    p95 = statistics.quantiles(durations, n=20, method="inclusive")[18]
    limit = max(wc.stuck_min_s, wc.stuck_factor * p95)
    return limit, (f"{wc.stuck_factor:g} x {p95:,.1f} s, the 95th percentile of its last {len(durations)} successful "
                   f"runs, at least worker.stuck_min_s {wc.stuck_min_s:,.0f} s")


def running_jobs(home: Home, now: dt.datetime, names) -> dict[str, RunningJob]:
    """The runs of the jobs in `names` in progress at `now`, with how long each has run and its limit."""
    out: dict[str, RunningJob] = {}
    for name in names:
        # Two index seeks per job (job_runs_job_status, then the rows after it): never a scan of every run.
        run = home.state.query("SELECT id, started_at FROM job_runs WHERE job=? AND status='running' "
                               "ORDER BY id DESC LIMIT 1", (name,))
        if not run or home.state.query("SELECT 1 FROM job_runs WHERE id>? AND job=? LIMIT 1", (run[0]["id"], name)):
            continue  # no run, or a later run superseded it
        if not lock_held(home, name):
            continue  # a row left by a process that died mid-run: the job is not running
        started = _parse(run[0]["started_at"])
        limit, basis = stuck_limit(home, name)
        out[name] = RunningJob(name, run[0]["id"], started, max((now - started).total_seconds(), 0.0), limit, basis)
    return out
