"""Channel options that would make every send fail are refused when the config is read, with the key's path."""
import pytest

from monitor.errors import ConfigError
from monitor.notify.base import parse_channels

HOOK = {"name": "hook", "type": "webhook", "url": "https://hooks.example/alerts"}
MAIL = {"name": "mail", "type": "email", "host": "smtp.example.org", "from": "m@example.org",
        "to": ["oncall@example.org"]}


@pytest.mark.parametrize("channel, words", [
    ({**HOOK, "headers": {"Authorization": 1}}, "'notify.channels[0].headers.Authorization' must be a string, got int"),
    ({**HOOK, "timeout_s": 0}, "'notify.channels[0].timeout_s' must be more than 0 seconds, got 0"),
    ({**HOOK, "url": "https://"}, "'notify.channels[0].url' must be an http(s) URL"),
    ({"name": "s", "type": "slack", "url": "https://hooks.slack.com/x", "timeout_s": -1}, "timeout_s' must be more"),
    ({**MAIL, "port": 99999}, "'notify.channels[0].port' must be a TCP port (1-65535), got 99999"),
    ({**MAIL, "timeout_s": 0.0}, "'notify.channels[0].timeout_s' must be more than 0 seconds"),
    ({"name": "f", "type": "log", "path": " "}, "'notify.channels[0].path' must name a file"),
    ({**MAIL, "from": "monitor"}, "'notify.channels[0].from' must be an email address, got 'monitor'"),
    ({**MAIL, "security": "none", "user_env": "U", "password_env": "P"},
     "would send the password to smtp.example.org in clear"),
])
def test_option_that_fails_every_send_is_refused(channel, words):
    with pytest.raises(ConfigError) as e:
        parse_channels([channel], "monitor.toml")
    assert words in str(e.value)


def test_good_options_are_accepted():
    chans = parse_channels([{**HOOK, "headers": {"Authorization": "Bearer x"}, "timeout_s": 2.5},
                            {**MAIL, "port": 465, "security": "ssl"}, {"name": "f", "type": "log"},
                            {**MAIL, "name": "relay", "host": "127.0.0.1", "security": "none", "user_env": "U",
                             "password_env": "P"}], "monitor.toml")
    assert sorted(chans) == ["f", "hook", "mail", "relay"]
