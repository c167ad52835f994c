"""Job durations are measured, stored to the microsecond (job_runs.duration_s) and exposed by the real /metrics."""
import re
import threading
import time
import urllib.request

import pytest

from monitor.jobs import Job, run_job
from monitor.worker.server import make_server


@pytest.fixture
def served(home):
    server = make_server(home, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def last_duration(url: str, job: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf'^monitor_job_last_duration_seconds{{job="{job}"}} (\S+)$', text, re.M)
    assert m, text
    return float(m.group(1))


def test_a_sub_second_run_is_stored_and_exposed_as_measured(home, served):
    # 0.35 s: its timestamps, to the second, would say 0 or 1.
    r = run_job(home, Job("nap", lambda ctx: time.sleep(0.35)))
    assert r.status == "ok"
    [row] = home.state.query("SELECT duration_s FROM job_runs WHERE job='nap'")
    assert 0.35 <= row["duration_s"] < 0.9 and row["duration_s"] == pytest.approx(r.seconds, abs=0.01)
    assert 0.35 <= last_duration(served, "nap") < 0.9


def test_a_failed_run_has_its_duration_too(home, served):
    def slow_failure(ctx):
        time.sleep(0.2)
        raise RuntimeError("disk on fire")

    assert run_job(home, Job("boom", slow_failure)).status == "failed"
    assert 0.2 <= last_duration(served, "boom") < 0.8


def test_runs_recorded_before_the_migration_fall_back_on_their_timestamps(home, served):
    with home.state.tx() as con:
        con.execute("INSERT INTO job_runs (job, started_at, finished_at, status) "
                    "VALUES ('old', '2026-11-01T00:00:00Z', '2026-11-01T00:00:03Z', 'ok')")
    assert last_duration(served, "old") == 3.0
