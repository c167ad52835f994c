"""An alert whose segment value (from the logs) holds a line break is still delivered by email, in one header line."""
import email
from email import policy

from monitor.notify.outbox import deliver_due
from test_alerts_engine import THRESH, make_home, rate_row, run, write
from test_notify_delivery import NOW, smtp  # noqa: F401 (fixture)


def test_line_break_in_a_segment_value_does_not_break_the_mail(tmp_path, smtp):  # noqa: F811
    ctl, handler = smtp
    home = make_home(tmp_path, [{**THRESH, "any_segment": True}], [
        {"name": "mail", "type": "email", "host": "127.0.0.1", "port": ctl.port, "from": "monitor@example.org",
         "to": ["oncall@example.org"], "security": "none"}])
    write(home, [rate_row(0, 30, 100, segment={"language": "hi\r\nBcc: someone@example.org"})])
    run(home, NOW)
    rep = deliver_due(home, NOW)
    assert rep.sent == 1 and rep.failed == 0, rep.errors
    [(_, rcpts, raw)] = handler.messages
    assert rcpts == ["oncall@example.org"]
    mail = email.message_from_string(raw, policy=policy.default)
    assert mail["Bcc"] is None
    assert mail["Subject"].startswith("[WARNING] over_refusal_rate, m1, language=hi Bcc: someone@example.org")
