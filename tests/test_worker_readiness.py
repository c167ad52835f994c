"""GET /readyz on the real HTTP server (127.0.0.1): 503 with the reasons when the scheduler is not running, a job's
last run failed or a job's last success is stale; 200 once every scheduled job succeeded recently; and
`monitor serve` itself becomes ready on a fresh home."""
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.home import Home
from monitor.state import iso, utcnow
from monitor.worker.scheduler import groups
from monitor.worker.server import make_server


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def readyz(url):
    code, text = get(url + "/readyz")
    return code, json.loads(text)


@pytest.fixture
def worker(home):
    server = make_server(home, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield home, server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    if server.scheduler is not None and server.scheduler.running:
        server.scheduler.shutdown(wait=False)


def record(home, job, status="ok", ago_s=10.0, message=None):
    """A finished run of `job` that ended `ago_s` seconds ago."""
    end = utcnow() - dt.timedelta(seconds=ago_s)
    with home.state.tx() as con:
        con.execute("INSERT INTO job_runs (job, started_at, finished_at, status, message, duration_s) "
                    "VALUES (?, ?, ?, ?, ?, 0.5)", (job, iso(end), iso(end), status, message))


def all_jobs_fresh(home):
    for names in groups().values():
        for name in names:
            record(home, name)


def test_without_a_running_scheduler_it_is_not_ready(worker):
    home, server, url = worker
    all_jobs_fresh(home)
    code, body = readyz(url)
    assert code == 503 and body["status"] == "not ready" and body["scheduler"] == "absent"
    assert body["reasons"] == ["no scheduler in this process: no job runs"]
    server.scheduler = BackgroundScheduler()
    server.scheduler.start()
    assert readyz(url)[0] == 200
    server.scheduler.pause()
    code, body = readyz(url)
    assert code == 503 and body["reasons"] == ["scheduler is paused: no job runs"]
    server.scheduler.shutdown(wait=False)
    assert readyz(url)[1]["scheduler"] == "stopped"


def test_ready_when_every_scheduled_job_succeeded_recently(worker):
    home, server, url = worker
    server.scheduler = BackgroundScheduler()
    server.scheduler.start()
    code, body = readyz(url)
    assert code == 503 and "job alerts: no successful run yet" in body["reasons"]
    all_jobs_fresh(home)
    code, body = readyz(url)
    assert code == 200 and body == {**body, "status": "ready", "reasons": [], "scheduler": "running"}
    assert set(body["jobs"]) == {n for names in groups().values() for n in names}
    notify = body["jobs"]["notify"]
    assert notify["interval_s"] == 30 and notify["stale_after_s"] == 900 and 9 <= notify["age_s"] <= 30
    assert body["jobs"]["compact"]["stale_after_s"] == 3 * 3600
    _, metrics = get(url + "/metrics")
    assert "monitor_ready 1.0" in metrics and 'monitor_job_last_success_timestamp_seconds{job="alerts"}' in metrics


def test_a_failed_last_run_makes_it_not_ready_until_a_run_succeeds(worker):
    home, server, url = worker
    server.scheduler = BackgroundScheduler()
    server.scheduler.start()
    all_jobs_fresh(home)
    record(home, "alerts", "failed", ago_s=5, message="RuntimeError: disk on fire")
    code, body = readyz(url)
    assert code == 503 and len(body["reasons"]) == 1
    assert body["reasons"][0].startswith("job alerts: last run failed at ")
    assert body["reasons"][0].endswith(": RuntimeError: disk on fire")
    assert body["jobs"]["alerts"]["last_status"] == "failed"
    _, metrics = get(url + "/metrics")
    assert "monitor_ready 0.0" in metrics
    record(home, "alerts", ago_s=1)  # the retry succeeded
    assert readyz(url)[0] == 200


def test_a_job_whose_last_success_is_stale_makes_it_not_ready(worker):
    home, server, url = worker
    server.scheduler = BackgroundScheduler()
    server.scheduler.start()
    all_jobs_fresh(home)
    with home.state.tx() as con:  # notify stopped running 20 min ago (a hung thread, a lock never released)
        con.execute("DELETE FROM job_runs WHERE job IN ('notify', 'compact')")
    record(home, "notify", ago_s=1200)  # more than 3 x 30 s and more than the 900 s floor
    record(home, "compact", ago_s=2 * 3600)  # 2 h of a 1 h interval: within 3 intervals
    code, body = readyz(url)
    assert code == 503 and len(body["reasons"]) == 1, body["reasons"]
    assert re.fullmatch(r"job notify: last success \S+Z is 1,20[01] s old, stale after 900 s "
                        r"\(3 x its 30 s interval, at least 900 s\)", body["reasons"][0]), body["reasons"][0]
    (home.root / "monitor.toml").write_text("[worker]\nstale_min_s = 3600\n")
    server.home = Home.open(home.root)
    assert readyz(url)[0] == 200


@pytest.mark.slow
def test_monitor_serve_becomes_ready_on_a_fresh_home(tmp_path):
    root = tmp_path / "home"
    Home.open(root)
    with socket.socket() as s:  # a free port, closed again for the worker to take
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "worker.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--home", str(root), "serve", "--port", str(port),
                             "--log-level", "WARNING"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MONITOR_HOME": str(root)})
    url = f"http://127.0.0.1:{port}"
    try:
        body, t0 = None, time.time()
        while time.time() - t0 < 180:
            assert proc.poll() is None, open(tmp_path / "worker.log").read()[-3000:]
            try:
                code, body = readyz(url)
            except OSError:
                code = None
            if code == 200:
                break
            time.sleep(0.5)
        assert code == 200, body
        assert body["scheduler"] == "running" and all(j["last_status"] == "ok" for j in body["jobs"].values())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
