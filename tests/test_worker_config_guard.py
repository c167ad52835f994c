"""An edit that breaks monitor.toml while the worker runs: the runs go on with the last good configuration, the
problem is recorded, paged (config_invalid) and shown by /readyz and /metrics, and all of it clears once the file
is fixed. Without a good configuration (a fresh process, e.g. cron) the one-line error stands."""
import datetime as dt
import json

import pytest

from monitor.alerts.pipeline import check
from monitor.errors import ConfigError
from monitor.home import Home
from monitor.worker import config_guard
from monitor.worker import scheduler as ws
from monitor.worker.readiness import readiness

GOOD = """[metrics]
min_n = 40

[[notify.channels]]
name = "file"
type = "log"
path = "notifications.jsonl"
"""
# Valid TOML and types: only the rule check (which the alerts job alone would make) finds it.
BROKEN_RULE = GOOD + '\n[[alerts.rules]]\nname = "hi_under"\nmetric = "under_refusal_rate"\n'


@pytest.fixture
def home(tmp_path):
    config_guard._GOOD.clear()
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text(GOOD)
    yield Home.open(root)
    config_guard._GOOD.clear()


def fake_group(monkeypatch, seen):
    """One light job in the group, recording the configuration each run used."""
    import monitor.jobs as jobs_mod

    def body(ctx):
        seen.append(ctx.home.config.metrics.min_n)
        return 0

    monkeypatch.setattr(ws, "discover", lambda: {"probe_cfg": jobs_mod.Job("probe_cfg", body)})
    monkeypatch.setattr(ws, "groups", lambda: {"jobs_interval_s": ["probe_cfg"]})


def test_a_broken_edit_leaves_the_runs_on_the_last_good_configuration_and_pages(home, monkeypatch):
    seen = []
    fake_group(monkeypatch, seen)
    assert [r.status for r in ws.run_group(str(home.root), None, "jobs_interval_s")] == ["ok"]
    assert config_guard.problem(home) is None
    (home.root / "monitor.toml").write_text(BROKEN_RULE.replace("min_n = 40", "min_n = 99"))
    for _ in range(2):  # the same problem twice: one record, one audit entry
        assert [r.status for r in ws.run_group(str(home.root), None, "jobs_interval_s")] == ["ok"]
    assert seen == [40, 40, 40]  # the broken edit (min_n 99) is not in force
    bad = config_guard.problem(home)
    assert "'alerts.rules[0].kind' is required" in bad["error"] and bad["file"] == str(home.root / "monitor.toml")
    assert [r["action"] for r in home.state.query("SELECT action FROM audit_log WHERE action LIKE 'config.%'")] == [
        "config.invalid"]
    ready, body = readiness(Home.open(home.root.parent / "home2"), None)  # another home: no problem there
    assert body["config"] == {"valid": True}
    _, body = readiness(home, None)
    assert body["config"]["valid"] is False and "'alerts.rules[0].kind'" in body["config"]["error"]
    assert not any("config" in r for r in body["reasons"])  # the worker still works: not a readiness reason

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    good_home = ws.open_home(str(home.root), None)  # what the health job sees: the good configuration
    assert good_home.config.metrics.min_n == 40
    check(good_home, now)
    [a] = home.state.query("SELECT id, rule, status, severity, message, evidence FROM alerts "
                           "WHERE rule='config_invalid'")
    assert a["status"] == "firing" and a["severity"] == "warning"
    assert "'alerts.rules[0].kind' is required" in a["message"] and "monitor config check" in a["message"]
    assert json.loads(a["evidence"])["file"] == str(home.root / "monitor.toml")
    check(good_home, now + dt.timedelta(minutes=1))  # still broken: the same episode
    assert home.state.query("SELECT count(*) AS n FROM alerts WHERE rule='config_invalid'")[0]["n"] == 1

    (home.root / "monitor.toml").write_text(GOOD.replace("min_n = 40", "min_n = 45"))  # fixed
    ws.run_group(str(home.root), None, "jobs_interval_s")
    assert seen[-1] == 45 and config_guard.problem(home) is None
    assert [r["action"] for r in home.state.query("SELECT action FROM audit_log WHERE action LIKE 'config.%' "
                                                  "ORDER BY id")] == ["config.invalid", "config.valid"]
    check(ws.open_home(str(home.root), None), now + dt.timedelta(minutes=2))
    assert home.state.query("SELECT status FROM alerts WHERE id=?", (a["id"],))[0]["status"] == "resolved"
    assert readiness(home, None)[1]["config"] == {"valid": True}


def test_without_a_good_configuration_the_error_stands(home, monkeypatch):
    fake_group(monkeypatch, [])
    (home.root / "monitor.toml").write_text("[metrics]\nmin_nn = 5\n")
    with pytest.raises(ConfigError, match="unknown key 'metrics.min_nn'"):
        ws.run_group(str(home.root), None, "jobs_interval_s")
    assert config_guard.problem(home) is None


def test_metrics_endpoint_reports_the_configuration_state(home):
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from monitor.worker.server import _StateCollector

    def gauge():
        reg = CollectorRegistry()
        reg.register(_StateCollector(home))
        line = [x for x in generate_latest(reg).decode().splitlines() if x.startswith("monitor_config_valid ")]
        return float(line[0].split()[1])

    config_guard.remember(home)
    assert gauge() == 1.0
    (home.root / "monitor.toml").write_text("[metrics\n")
    ws.open_home(str(home.root), None)
    assert gauge() == 0.0


def test_a_broken_edit_keeps_the_secrets_of_the_file_out_of_state_audit_page_and_readyz(home, monkeypatch):
    fake_group(monkeypatch, [])
    ws.run_group(str(home.root), None, "jobs_interval_s")
    # A Slack webhook pasted without its scheme: the error quotes the value, token and all.
    (home.root / "monitor.toml").write_text(GOOD + '\n[[notify.channels]]\nname = "slack"\ntype = "slack"\n'
                                            'url = "hooks.slack.com/services/T000/B000/TOKENXYZ"\n')
    ws.run_group(str(home.root), None, "jobs_interval_s")
    check(ws.open_home(str(home.root), None), dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    bad = config_guard.problem(home)
    assert "'notify.channels[1].url' must be an http(s) URL, got 'hooks.slack.com/...'" in bad["error"]
    stored = json.dumps([bad, readiness(home, None)[1], home.state.query("SELECT * FROM audit_log"),
                         home.state.query("SELECT message, evidence FROM alerts")])
    assert "hooks.slack.com/..." in stored and "TOKENXYZ" not in stored
    # the same file saved with a UTF-8 byte-order mark (which the config reader skips) is scrubbed alike
    text = (home.root / "monitor.toml").read_text().replace("TOKENXYZ", "TOKENBOM")
    (home.root / "monitor.toml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    ws.run_group(str(home.root), None, "jobs_interval_s")
    assert "TOKENBOM" not in json.dumps(config_guard.problem(home))


def test_a_deleted_file_keeps_the_last_good_configuration_and_pages_until_it_is_back(home, monkeypatch):
    seen = []
    fake_group(monkeypatch, seen)
    ws.run_group(str(home.root), None, "jobs_interval_s")
    (home.root / "monitor.toml").unlink()  # every rule and channel would go at once, silently
    ws.run_group(str(home.root), None, "jobs_interval_s")
    assert seen == [40, 40]
    assert "monitor.toml is missing" in config_guard.problem(home)["error"]
    (home.root / "monitor.toml").write_text("")  # an empty file: every default, asked for
    ws.run_group(str(home.root), None, "jobs_interval_s")
    assert seen == [40, 40, 30] and config_guard.problem(home) is None
    (home.root / "monitor.toml").unlink()  # nothing set: no file changes nothing
    ws.run_group(str(home.root), None, "jobs_interval_s")
    assert seen == [40, 40, 30, 30] and config_guard.problem(home) is None
    assert [r["action"] for r in home.state.query("SELECT action FROM audit_log WHERE action LIKE 'config.%' "
                                                  "ORDER BY id")] == ["config.invalid", "config.valid"]


def test_a_second_mistake_in_the_same_broken_stretch_updates_the_alert_without_paging_again(home, monkeypatch):
    fake_group(monkeypatch, [])
    ws.run_group(str(home.root), None, "jobs_interval_s")
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    (home.root / "monitor.toml").write_text(GOOD + "[alerts\n")
    check(ws.open_home(str(home.root), None), now)
    (home.root / "monitor.toml").write_text(GOOD + "[alerts]\nuse_default_rulez = true\n")  # TOML fixed, a typo made
    check(ws.open_home(str(home.root), None), now + dt.timedelta(minutes=1))
    [a] = home.state.query("SELECT message, evidence FROM alerts WHERE rule='config_invalid'")
    assert "unknown key 'alerts.use_default_rulez'" in a["message"] and "not valid TOML" not in a["message"]
    assert "use_default_rulez" in json.loads(a["evidence"])["error"]
    assert home.state.query("SELECT count(*) AS n FROM notify_outbox")[0]["n"] == 1  # paged once
    check(ws.open_home(str(home.root), None), now + dt.timedelta(minutes=2))  # unchanged: no update
    assert home.state.query("SELECT count(*) AS n FROM audit_log WHERE action='alert.update'")[0]["n"] == 1
