"""Messages for a channel that is no longer configured are held for it (not dead at once): delivered when the name
is fixed, rerouted by hand after a deliberate rename, dead after the normal retry horizon; each step audited."""
import datetime as dt
import json

from click.testing import CliRunner

from monitor.cli import cli
from monitor.home import Home
from monitor.notify.outbox import deliver_due, retry_horizon
from monitor.state import utcnow
from test_notify_delivery import NOW, fire, receiver  # noqa: F401 (fixture)


def rename_channel(home, old, new):
    """The config edited: channel `old` is now called `new` (a typo, or a rename on purpose)."""
    toml = home.root / "monitor.toml"
    toml.write_text(toml.read_text().replace(f'name = "{old}"', f'name = "{new}"'))
    return Home.open(home.root)


def actions(home, prefix="notify."):
    return [(r["action"], json.loads(r["details"])) for r in home.state.query(
        "SELECT action, details FROM audit_log ORDER BY id") if r["action"].startswith(prefix)]


def test_a_typo_in_the_channel_name_holds_its_messages_until_it_is_fixed(tmp_path, receiver):
    home = fire(tmp_path, [{"name": "oncall", "type": "webhook", "url": receiver.url}],
                extra="[notify]\nbackoff_seconds = 60\nmax_attempts = 3\n")
    home = rename_channel(home, "oncall", "on-cal")
    rep = deliver_due(home, NOW)
    assert rep.no_channel == 1 and rep.dead == 0 and rep.sent == 0
    [row] = home.state.query("SELECT * FROM notify_outbox")
    # Held until the horizon of 3 attempts: 60 s + 120 s after it was queued.
    assert row["status"] == "held" and row["next_attempt_at"] == "2026-11-02T01:03:00Z"
    assert row["last_error"] == ("channel 'oncall' is not configured (or disabled): held for it until "
                                 "2026-11-02T01:03:00Z, then dead")
    assert home.state.query("SELECT * FROM notify_attempts") == []  # nothing was attempted
    assert actions(home) == [("notify.held", {"channel": "oncall", "until": "2026-11-02T01:03:00Z",
                                              "alert_ids": [1]})]
    shown = CliRunner().invoke(cli, ["--home", str(home.root), "alerts", "show", "1"])
    assert "notified #1 oncall (alert): held, 0 attempt(s), last error: channel 'oncall' is not configured" \
        in shown.output
    assert deliver_due(home, NOW + dt.timedelta(minutes=1)).sent == 0 and receiver.bodies == []
    home = rename_channel(home, "on-cal", "oncall")  # the typo fixed
    rep = deliver_due(home, NOW + dt.timedelta(minutes=2))
    assert rep.released == 1 and rep.sent == 1
    [body] = receiver.bodies
    assert body["alert_ids"] == [1]
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["status"] == "sent" and row["attempts"] == 1 and row["last_error"] is None
    assert [a for a, _ in actions(home)] == ["notify.held", "notify.release"]


def test_held_messages_go_dead_after_the_normal_retry_horizon(tmp_path):
    home = fire(tmp_path, [{"name": "oncall", "type": "log"}],
                extra="[notify]\nbackoff_seconds = 60\nmax_attempts = 3\n")
    assert retry_horizon(home.config.notify) == dt.timedelta(seconds=180)
    home = rename_channel(home, "oncall", "renamed")
    deliver_due(home, NOW)
    assert deliver_due(home, NOW + dt.timedelta(seconds=179)).dead == 0
    rep = deliver_due(home, NOW + dt.timedelta(seconds=181))
    assert rep.dead == 1 and "was not configured (or disabled) for the whole retry horizon" in rep.errors[0]
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["status"] == "dead"
    assert [a for a, _ in actions(home)] == ["notify.held", "notify.dead"]
    assert actions(home)[-1][1]["alert_ids"] == [1]
    home = rename_channel(home, "renamed", "oncall")
    assert deliver_due(home, NOW + dt.timedelta(hours=1)).sent == 0  # dead stays dead


def test_a_channel_renamed_on_purpose_gets_its_messages_by_reroute(tmp_path, receiver):
    home = fire(tmp_path, [{"name": "oncall", "type": "webhook", "url": receiver.url}])
    home = rename_channel(home, "oncall", "ops-hook")
    deliver_due(home, NOW)
    base = ["--home", str(home.root), "alerts", "reroute"]
    bad = CliRunner().invoke(cli, base + ["--from", "oncall", "--to", "nowhere", "--by", "dana"])
    assert bad.exit_code == 1 and "channel 'nowhere' is not configured" in bad.stderr and "ops-hook" in bad.stderr
    out = CliRunner().invoke(cli, base + ["--from", "oncall", "--to", "ops-hook", "--by", "dana"])
    assert out.exit_code == 0 and out.output == "rerouted 1 message(s) from oncall to ops-hook\n"
    assert deliver_due(home, utcnow()).sent == 1 and len(receiver.bodies) == 1  # due from the reroute on
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["channel"] == "ops-hook" and row["status"] == "sent"
    [(action, details)] = [x for x in actions(home) if x[0] == "notify.reroute"]
    assert details == {"to": "ops-hook", "outbox_ids": [1]}
    assert home.state.query("SELECT actor FROM audit_log WHERE action='notify.reroute'") == [{"actor": "dana"}]


def test_the_worker_says_at_start_which_channel_has_messages_waiting(tmp_path, caplog):
    import logging

    from monitor.worker import check_alerting

    home = rename_channel(fire(tmp_path, [{"name": "oncall", "type": "log"}]), "oncall", "on-cal")
    with caplog.at_level(logging.WARNING, logger="monitor.worker"):
        check_alerting(home)
    assert "1 notification(s) queued for channel 'oncall', which is not configured" in caplog.text
    assert "monitor alerts reroute --from oncall --to NAME" in caplog.text
