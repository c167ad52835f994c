"""Runs of one job in one home never overlap, across threads and processes: the worker's scheduled run and a
`monitor jobs run` at once each wrote the same new windows (value_coverage counts came out doubled)."""
import subprocess
import sys
import threading

from monitor.home import Home
from monitor.jobs import Job, run_job


def test_a_second_run_of_a_job_waits_for_the_first(tmp_path):
    home = Home.open(tmp_path / "home")
    a_in, b_in, release = threading.Event(), threading.Event(), threading.Event()

    def body(ctx):
        if not a_in.is_set():
            a_in.set()
            release.wait(10)
        else:
            b_in.set()
        return 1

    job = Job("probe", body)
    results = []
    first = threading.Thread(target=lambda: results.append(run_job(home, job)))
    first.start()
    assert a_in.wait(10)
    second = threading.Thread(target=lambda: results.append(run_job(home, job)))
    second.start()
    assert not b_in.wait(1.0), "the second run started while the first was still running"
    release.set()
    first.join(10)
    second.join(10)
    assert b_in.is_set() and [r.status for r in results] == ["ok", "ok"]
    # another job is not held up by this one's lock
    assert run_job(home, Job("other", lambda ctx: 0)).status == "ok"


def test_the_lock_holds_across_processes(tmp_path):
    home = Home.open(tmp_path / "home")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom monitor.home import Home\nfrom monitor.jobs import Job, run_job\n"
         "def body(ctx):\n    print('in', flush=True)\n    sys.stdin.readline()\n    return 0\n"
         "run_job(Home.open(sys.argv[1]), Job('probe', body))\n", str(home.root)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "in"
        entered = threading.Event()
        t = threading.Thread(target=lambda: run_job(home, Job("probe", lambda ctx: entered.set())))
        t.start()
        assert not entered.wait(1.0), "ran while another process held the job"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.wait(30) == 0
        t.join(30)
        assert entered.is_set()
    finally:
        holder.kill()


def test_a_run_whose_process_died_is_marked_interrupted_by_the_next_run(tmp_path):
    """kill -9 mid-run leaves a 'running' row; the next run of the job (holding its lock, so no other run can be in
    progress) marks it interrupted instead of leaving a run that never ends; other jobs' rows are not touched."""
    from monitor.jobs import INTERRUPTED

    home = Home.open(tmp_path / "home")
    with home.state.tx() as con:
        for job in ("probe", "other"):
            con.execute("INSERT INTO job_runs (job, started_at, status) VALUES (?, '2026-11-27T10:00:00Z', 'running')",
                        (job,))
    assert run_job(home, Job("probe", lambda ctx: 0)).status == "ok"
    rows = home.state.query("SELECT job, status, message, finished_at FROM job_runs ORDER BY id")
    assert rows[0] == {"job": "probe", "status": "interrupted", "message": INTERRUPTED, "finished_at": None}
    assert rows[1]["status"] == "running" and rows[2]["status"] == "ok"  # 'other' waits for its own next run
