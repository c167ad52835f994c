"""`monitor alerts show ID`: one alert with its evidence, who acted, its comments and where it was notified."""
import json

from click.testing import CliRunner

from monitor.alerts import lifecycle
from monitor.cli import cli
from monitor.notify.outbox import deliver_due
from test_alerts_engine import THRESH, make_home, rate_row, run, write
from test_notify_delivery import NOW


def test_show_gives_comments_and_deliveries(tmp_path):
    home = make_home(tmp_path, [THRESH], [{"name": "file", "type": "log"}])
    write(home, [rate_row(0, 30, 100)])
    run(home, NOW)
    deliver_due(home, NOW)
    lifecycle.ack(home, 1, "dana", "on it")
    lifecycle.comment(home, 1, "lee", "hi locale only")
    base = ["--home", str(home.root), "alerts", "show", "1"]
    out = CliRunner().invoke(cli, base)
    assert out.exit_code == 0, out.output
    assert out.output.startswith("alert 1: acknowledged by dana\n")
    assert "0.30 (95% CI 0.22-0.40, n=100) > 0.20" in out.output and "ack note: on it" in out.output
    assert "lee: hi locale only" in out.output and "notified #1 file (alert): sent, 1 attempt(s)" in out.output
    data = json.loads(CliRunner().invoke(cli, base + ["--json"]).output)
    assert data["id"] == 1 and data["status"] == "acknowledged" and data["comments"][0]["body"] == "hi locale only"
    assert [(n["channel"], n["status"]) for n in data["notifications"]] == [("file", "sent")]
    missing = CliRunner().invoke(cli, ["--home", str(home.root), "alerts", "show", "99"])
    assert missing.exit_code == 1 and "no alert with id 99" in missing.stderr


def test_digest_deliveries_are_listed_for_each_alert(tmp_path):
    # Two rules on one window: two incidents, two messages, above the threshold of 1 -> one digest.
    home = make_home(tmp_path, [THRESH, {**THRESH, "name": "also_high", "value": 0.25}],
                     [{"name": "file", "type": "log"}], extra="[notify]\ndigest_threshold = 1\n")
    write(home, [rate_row(0, 30, 100)])
    run(home, NOW)
    deliver_due(home, NOW)
    kinds = [(n["kind"], n["status"]) for n in lifecycle.notifications(home, 2)]
    assert kinds == [("alert", "digested"), ("digest", "sent")]
