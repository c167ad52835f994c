"""Two deliverers at once (the worker and a `monitor jobs run`) never send one outbox row, or one storm, twice."""
import datetime as dt

from monitor.errors import NotifyError
from monitor.notify.base import Channel
from monitor.notify.outbox import _make_digest, deliver_due
from monitor.state import iso
from test_notify_delivery import NOW, fire


class Recording(Channel):
    """Records what it sends; its first send runs a second deliverer, as another process would meanwhile."""

    type = "recording"

    def __init__(self, name, home=None, fail=False):
        super().__init__(name)
        self.home, self.fail, self.sent = home, fail, []

    def send(self, message):
        self.sent.append(message.alert_ids)
        if self.home is not None:
            other = Recording(self.name)
            deliver_due(self.home, NOW, channels={self.name: other})
            self.sent += other.sent
            self.home = None
        if self.fail:
            raise NotifyError("HTTP 500")


def test_a_row_being_sent_is_not_sent_again_by_another_deliverer(tmp_path):
    home = fire(tmp_path, [{"name": "hook", "type": "log"}])
    ch = Recording("hook", home)
    rep = deliver_due(home, NOW, channels={"hook": ch})
    assert ch.sent == [[1]] and rep.sent == 1
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["status"] == "sent" and row["attempts"] == 1
    assert len(home.state.query("SELECT * FROM notify_attempts")) == 1


def test_a_failed_claimed_row_is_retried_on_schedule(tmp_path):
    home = fire(tmp_path, [{"name": "hook", "type": "log"}], extra="[notify]\nbackoff_seconds = 60\n")
    ch = Recording("hook", home, fail=True)
    assert deliver_due(home, NOW, channels={"hook": ch}).failed == 1 and ch.sent == [[1]]
    [row] = home.state.query("SELECT * FROM notify_outbox")
    assert row["status"] == "pending" and row["next_attempt_at"] == iso(NOW + dt.timedelta(seconds=60))


def test_a_crash_mid_send_leaves_the_row_due_again_later(tmp_path):
    class Crash(Channel):
        def send(self, message):
            raise SystemExit("killed")

    home = fire(tmp_path, [{"name": "hook", "type": "log"}])
    try:
        deliver_due(home, NOW, channels={"hook": Crash("hook")})
    except SystemExit:
        pass
    assert deliver_due(home, NOW + dt.timedelta(minutes=1), channels={"hook": Recording("hook")}).sent == 0
    later = Recording("hook")
    assert deliver_due(home, NOW + dt.timedelta(minutes=16), channels={"hook": later}).sent == 1
    assert later.sent == [[1]]


def test_a_storm_is_folded_into_one_digest_once(tmp_path):
    home = fire(tmp_path, [{"name": "file", "type": "log", "path": "n.jsonl"}], n_alerts=6)
    fresh = home.state.query("SELECT * FROM notify_outbox ORDER BY id")
    assert _make_digest(home, "file", fresh, iso(NOW)) is not None
    assert _make_digest(home, "file", fresh, iso(NOW)) is None  # a second deliverer read the same rows
    digests = home.state.query("SELECT * FROM notify_outbox WHERE kind='digest'")
    assert len(digests) == 1 and digests[0]["alert_ids"] == "[1, 2, 3, 4, 5, 6]"
