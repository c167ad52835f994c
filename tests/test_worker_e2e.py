"""`monitor serve` for real: a subprocess ingests over HTTP and from the inbox, fires an alert, delivers it to a
local SMTP server and a local webhook; killed with SIGKILL and restarted, it loses nothing and duplicates nothing."""
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _records(start, n, refuse_every=2):
    ts = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=2)
    out = []
    for i in range(start, start + n):
        refuse = i % refuse_every == 0
        reply = ("I'm sorry, but I can't help with that request." if refuse
                 else "Preheat the oven to 230 C, shape the dough and bake for 35 minutes.")
        out.append({"conversation_id": f"e2e-{i}", "turn": 1,
                    "timestamp": (ts + dt.timedelta(seconds=i)).isoformat().replace("+00:00", "Z"),
                    "model": "assistant@2026.11",
                    "messages": [{"role": "user", "content": "How do I bake sourdough bread at home?"},
                                 {"role": "assistant", "content": reply}],
                    "user": {"id": f"u{i}", "language": "en"}})
    return out


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


@pytest.fixture
def receivers():
    from aiosmtpd.controller import Controller

    mails = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mails.append(envelope.content.decode("utf-8", "replace"))
            return "250 OK"

    smtp_port = _free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=smtp_port)
    ctl.start()
    _Hook.received = []
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    yield smtp_port, hook.server_address[1], mails, _Hook.received
    ctl.stop()
    hook.shutdown()


def _start(home, port):
    env = {**os.environ, "MONITOR_HOME": str(home)}
    # The worker's output goes to a file, not a pipe nobody drains: a chatty worker would block on a full pipe.
    log = open(Path(home).parent / f"worker-{port}-{time.time_ns()}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "serve", "--port", str(port), "--log-level", "WARNING"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc


def _output(proc) -> str:
    """The last 4,000 characters the worker printed (for failure messages)."""
    proc.log.flush()
    proc.log.seek(0)
    return proc.log.read()[-4000:]


def _wait_http(port, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited: {_output(proc)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("worker did not come up")


def _post(port, records):
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/logs", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def _wait_for(cond, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _count(home, sql):
    from monitor import db
    from monitor.home import Home

    return db.connect(Home.open(home)).execute(sql).fetchone()[0]


def test_serve_ingests_alerts_delivers_and_survives_sigkill(tmp_path, receivers):
    smtp_port, hook_port, mails, hooks = receivers
    home = tmp_path / "home"
    home.mkdir()
    port = _free_port()
    (home / "monitor.toml").write_text(f"""
[worker]
ingest_interval_s = 1
jobs_interval_s = 2
notify_interval_s = 1

[alerts]
use_default_rules = false

[[alerts.rules]]
name = "refusal_high"
metric = "refusal_rate"
kind = "threshold"
op = ">"
value = 0.3
use = "value"
min_n = 5
severity = "critical"

[[notify.channels]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = {smtp_port}
security = "none"
from = "monitor@example.org"
to = ["oncall@example.org"]

[[notify.channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{hook_port}/alerts"
""")
    proc = _start(home, port)
    try:
        _wait_http(port, proc)
        reply = _post(port, _records(0, 20))
        assert reply["ingested"] == 20 and reply["quarantined"] == 0
        # A file dropped into the inbox is picked up by the scheduled ingest job.
        (home / "inbox").mkdir(exist_ok=True)
        with open(home / "inbox" / "batch2.jsonl", "w") as f:
            for r in _records(20, 20):
                f.write(json.dumps(r) + "\n")
        _wait_for(lambda: _count(home, "SELECT count(*) FROM turns") == 40, 90, "inbox ingest")
        _wait_for(lambda: mails and hooks, 180, "alert delivered by e-mail and webhook")
        assert "refusal_rate" in mails[0] and "refusal_high" in mails[0]
        assert hooks[0]["severity"] == "critical"
        alerts = json.loads(subprocess.run(
            [sys.executable, "-m", "monitor", "--home", str(home), "alerts", "list", "--json"],
            capture_output=True, text=True, check=True).stdout)
        # One alert per breaching series (all traffic, the model version, the deployment), deduplicated.
        assert {a["rule"] for a in alerts} == {"refusal_high"} and {a["status"] for a in alerts} == {"firing"}
        assert {a["model"] for a in alerts} == {None, "assistant@2026.11"}
        n_alerts = len(alerts)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    # Restart after SIGKILL: nothing lost, nothing duplicated, no second page for the same alert.
    n_mails, n_hooks = len(mails), len(hooks)
    proc = _start(home, port)
    try:
        _wait_http(port, proc)
        reply = _post(port, _records(0, 20) + _records(40, 5))  # 20 seen before + 5 new
        assert reply["duplicates"] == 20 and reply["ingested"] == 5
        time.sleep(6)  # a few scheduler rounds
        assert _count(home, "SELECT count(*) FROM turns") == 45
        assert _count(home, "SELECT count(*) - count(DISTINCT turn_id) FROM turns") == 0
        assert len(mails) == n_mails and len(hooks) == n_hooks
        from monitor.home import Home

        rows = Home.open(home).state.query("SELECT count(*) AS n FROM alerts")
        assert rows[0]["n"] == n_alerts
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"worker did not stop within 60 s of SIGTERM; its output:\n{_output(proc)}")
        assert code == 0, _output(proc)


def test_serve_keeps_running_on_a_broken_config_edit_and_pages_about_it(tmp_path, receivers):
    """An edit that breaks monitor.toml while `monitor serve` runs: the jobs go on with the good configuration, the
    webhook gets the config_invalid page, /readyz and /metrics show it; fixing the file clears it."""
    _, hook_port, _, hooks = receivers
    home = tmp_path / "home"
    home.mkdir()
    port = _free_port()
    good = f"""
[worker]
ingest_interval_s = 1
jobs_interval_s = 2
notify_interval_s = 1
health_interval_s = 1

[[notify.channels]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{hook_port}/alerts"
"""
    (home / "monitor.toml").write_text(good)

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.read().decode()
        except urllib.error.HTTPError as e:  # /readyz answers 503 with the same body while a job is stale
            return e.read().decode()

    proc = _start(home, port)
    try:
        _wait_http(port, proc)
        _wait_for(lambda: json.loads(get("/readyz"))["config"] == {"valid": True}, 60, "a first run")
        (home / "monitor.toml").write_text(good + '\n[[alerts.rules]]\nname = "typo"\nmetric = "refusal_rate"\n')
        _wait_for(lambda: any("config_invalid" in json.dumps(h) for h in hooks), 120, "the config_invalid page")
        page = next(h for h in hooks if "config_invalid" in json.dumps(h))
        assert "'alerts.rules[0].kind' is required" in json.dumps(page)
        ready = json.loads(get("/readyz"))["config"]
        assert ready["valid"] is False and "'alerts.rules[0].kind' is required" in ready["error"]
        assert "monitor_config_valid 0.0" in get("/metrics")
        assert proc.poll() is None  # still running
        (home / "monitor.toml").write_text(good)  # fixed
        _wait_for(lambda: json.loads(get("/readyz"))["config"] == {"valid": True}, 60, "the fixed file in use")
        from monitor.home import Home

        _wait_for(lambda: Home.open(home).state.query(
            "SELECT status FROM alerts WHERE rule='config_invalid'")[0]["status"] == "resolved", 60, "resolution")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
