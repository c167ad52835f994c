"""Notifications through the outbox against real local receivers: SMTP (aiosmtpd) and HTTP (http.server)."""
import datetime as dt
import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.alerts.engine import apply, evaluate
from monitor.notify.outbox import deliver_due
from monitor.state import iso
from test_alerts_engine import DAY0, THRESH, make_home, rate_row, write

NOW = DAY0 + dt.timedelta(days=1, hours=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real HTTP server on 127.0.0.1 that records JSON bodies and answers with a settable status."""

    def __init__(self, port: int = 0):
        self.bodies: list[dict] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                code = outer.status
                if code < 300:
                    outer.bodies.append(json.loads(body))
                self.send_response(code)
                self.end_headers()
                self.wfile.write(b"ok" if code < 300 else b"boom")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    handler = Handler()
    ctl = Controller(handler, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield ctl, handler
    ctl.stop()


def fire(tmp_path, channels, n_alerts=1, **kw):
    home = make_home(tmp_path, [{**THRESH, "any_segment": True}], channels, **kw)
    langs = ["en", "hi", "es", "fr", "de", "pt"][: n_alerts - 1]
    write(home, [rate_row(0, 30, 100)] + [rate_row(0, 30, 100, segment={"language": g}) for g in langs])
    res = apply(home, evaluate(home, NOW), NOW)
    assert res.new == n_alerts
    return home


def test_webhook_and_email_carry_the_evidence(tmp_path, receiver, smtp):
    ctl, handler = smtp
    home = fire(tmp_path, [
        {"name": "hook", "type": "webhook", "url": receiver.url, "headers": {"X-Token": "t"}},
        {"name": "slack", "type": "slack", "url": receiver.url},
        {"name": "mail", "type": "email", "host": "127.0.0.1", "port": ctl.port, "from": "monitor@example.org",
         "to": ["oncall@example.org"], "security": "none"},
        {"name": "file", "type": "log", "path": "notes/alerts.jsonl"},
        {"name": "critical_only", "type": "log", "path": "crit.jsonl", "min_severity": "critical"},
    ])
    rep = deliver_due(home, NOW)
    assert rep.sent == 4 and rep.failed == 0
    hook = [b for b in receiver.bodies if "kind" in b][0]
    slack = [b for b in receiver.bodies if "blocks" in b][0]
    a = hook["alerts"][0]
    assert a["metric"] == "over_refusal_rate" and a["value"] == 0.3 and a["n"] == 100 and a["segment"] == {}
    assert "0.30 (95% CI 0.22-0.40, n=100) > 0.20" in hook["text"]
    assert hook["text"].endswith("https://mon.example/alerts?alert_id=1")
    assert "https://mon.example/alerts?alert_id=1" in json.dumps(slack["blocks"])
    [(sender, rcpts, raw)] = handler.messages
    assert sender == "monitor@example.org" and rcpts == ["oncall@example.org"]
    import email
    from email import policy

    mail = email.message_from_string(raw, policy=policy.default)
    assert mail["Subject"] == "[WARNING] over_refusal_rate, m1, all traffic: too_high"
    assert "0.30 (95% CI 0.22-0.40, n=100) > 0.20" in mail.get_content()
    line = json.loads((home.root / "notes" / "alerts.jsonl").read_text().splitlines()[0])
    assert line["alert_ids"] == [1]
    assert not (home.root / "crit.jsonl").exists()
    attempts = home.state.query("SELECT ok FROM notify_attempts")
    assert [r["ok"] for r in attempts] == [1, 1, 1, 1]
    assert deliver_due(home, NOW + dt.timedelta(minutes=5)).sent == 0  # nothing sent twice


def test_failing_channel_retries_with_backoff_then_delivers_once(tmp_path, receiver):
    receiver.status = 500
    home = fire(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url}],
                extra="[notify]\nbackoff_seconds = 60\nmax_attempts = 5\n")
    r1 = deliver_due(home, NOW)
    assert r1.failed == 1 and "HTTP 500" in r1.errors[0]
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["next_attempt_at"] == "2026-11-02T01:01:00Z" and row["attempts"] == 1
    assert deliver_due(home, NOW + dt.timedelta(seconds=30)).failed == 0  # not due yet: no attempt
    r2 = deliver_due(home, NOW + dt.timedelta(seconds=61))
    assert r2.failed == 1
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["next_attempt_at"] == "2026-11-02T01:03:01Z"  # 60 s then 120 s: exponential
    receiver.status = 200
    r3 = deliver_due(home, NOW + dt.timedelta(seconds=181))
    assert r3.sent == 1 and len(receiver.bodies) == 1
    assert deliver_due(home, NOW + dt.timedelta(hours=1)).sent == 0 and len(receiver.bodies) == 1
    oks = [r["ok"] for r in home.state.query("SELECT ok FROM notify_attempts ORDER BY id")]
    assert oks == [0, 0, 1]


def test_dead_after_max_attempts_is_audited(tmp_path):
    port = free_port()  # nothing listens: connection refused
    home = fire(tmp_path, [{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/x",
                            "timeout_s": 2}], extra="[notify]\nbackoff_seconds = 1\nmax_attempts = 3\n")
    t = NOW
    for _ in range(3):
        deliver_due(home, t)
        t += dt.timedelta(minutes=1)
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["status"] == "dead" and row["attempts"] == 3 and "ConnectError" in row["last_error"]
    [dead] = home.state.query("SELECT * FROM audit_log WHERE action='notify.dead'")
    assert json.loads(dead["details"])["alert_ids"] == [1]


def test_a_failed_delivery_stores_no_secret_from_the_url(tmp_path, receiver):
    """A Slack or webhook URL's path is the credential; delivery errors are stored in the outbox, the attempts and
    the audit log, all readable with `monitor sql`: they name the scheme and host only."""
    secret = "T0SECRET/B0SECRET/xoxsecrettoken"
    port = free_port()  # nothing listens: connection refused
    receiver.status = 403
    home = fire(tmp_path, [{"name": "down", "type": "slack", "url": f"http://127.0.0.1:{port}/services/{secret}",
                            "timeout_s": 2},
                           {"name": "refused", "type": "webhook", "url": f"{receiver.url}/{secret}?token={secret}"}],
                extra="[notify]\nbackoff_seconds = 1\nmax_attempts = 1\n")
    rep = deliver_due(home, NOW)
    assert rep.dead == 2
    stored = json.dumps([home.state.query(f"SELECT * FROM {t}") for t in ("notify_outbox", "notify_attempts", "audit_log")]
                        + rep.errors)
    assert "SECRET" not in stored and "xoxsecret" not in stored
    assert f"slack webhook http://127.0.0.1:{port}/...: ConnectError" in stored and "HTTP 403" in stored


def test_outbox_survives_a_restart(tmp_path):
    port = free_port()
    home = fire(tmp_path, [{"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{port}/hook",
                            "timeout_s": 2}], extra="[notify]\nbackoff_seconds = 1\n")
    assert deliver_due(home, NOW).failed == 1  # receiver down; then this process "dies"
    receiver = Receiver(port)
    try:
        code = ("import datetime as dt, sys\nfrom monitor.home import Home\nfrom monitor.notify.outbox import "
                "deliver_due\nr = deliver_due(Home.open(sys.argv[1]), dt.datetime(2026, 11, 2, 2))\n"
                "print(r.sent, r.failed)\n")
        out = subprocess.run([sys.executable, "-c", code, str(home.root)], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["1", "0"]
        assert len(receiver.bodies) == 1 and receiver.bodies[0]["alert_ids"] == [1]
    finally:
        receiver.close()


def test_alert_storm_becomes_one_digest_per_channel_and_interval(tmp_path):
    # Six rules breaching on one window: six incidents (the scopes of one rule would be one message).
    rules = [{**THRESH, "name": f"high_{i}", "value": 0.2 + i / 100} for i in range(6)]
    rules.append({**THRESH, "name": "under", "metric": "under_refusal_rate"})
    home = make_home(tmp_path, rules, [{"name": "file", "type": "log", "path": "n.jsonl"}],
                     extra="[notify]\ndigest_minutes = 15\ndigest_threshold = 3\n")
    write(home, [rate_row(0, 30, 100)])
    assert apply(home, evaluate(home, NOW), NOW).new == 6
    rep = deliver_due(home, NOW)
    assert rep.digests == 1 and rep.sent == 1
    [line] = [json.loads(x) for x in (home.root / "n.jsonl").read_text().splitlines()]
    assert line["kind"] == "digest" and sorted(line["alert_ids"]) == [1, 2, 3, 4, 5, 6]
    assert line["subject"] == "[DIGEST] 6 alerts (6 warning)" and line["text"].count("\n- ") == 6
    statuses = [r["status"] for r in home.state.query("SELECT status FROM notify_outbox ORDER BY id")]
    assert statuses == ["digested"] * 6 + ["sent"]
    # One more incident within the interval waits for it to end, then goes out on its own.
    write(home, [rate_row(0, 30, 100, metric="under_refusal_rate")])
    later = NOW + dt.timedelta(minutes=5)
    apply(home, evaluate(home, later), later)
    assert deliver_due(home, later).held == 1
    rep2 = deliver_due(home, NOW + dt.timedelta(minutes=16))
    assert rep2.sent == 1 and rep2.digests == 0
    assert len((home.root / "n.jsonl").read_text().splitlines()) == 2


def test_the_retry_wait_is_capped_at_a_day(tmp_path, receiver):
    """backoff * 2**(attempts-1) grows past any date after ~40 attempts; the wait stops growing at MAX_WAIT_S."""
    from monitor.notify.outbox import MAX_WAIT_S

    receiver.status = 500
    home = fire(tmp_path, [{"name": "hook", "type": "webhook", "url": receiver.url}],
                extra="[notify]\nbackoff_seconds = 60\nmax_attempts = 1000\n")
    with home.state.tx() as con:
        con.execute("UPDATE notify_outbox SET attempts = 400")
    rep = deliver_due(home, NOW)
    assert rep.failed == 1
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["attempts"] == 401
    assert row["next_attempt_at"] == iso(NOW + dt.timedelta(seconds=MAX_WAIT_S))
