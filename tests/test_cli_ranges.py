"""Day counts and durations from the command line that would overflow date arithmetic are one-line range errors."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.home import Home


@pytest.fixture
def root(tmp_path):
    Home.open(tmp_path / "home").state.migrate()
    return str(tmp_path / "home")


@pytest.mark.parametrize("args, words", [
    (["retention", "--days", "100000000", "--dry-run"], "retention days must be at most 36,500"),
    (["retention", "--days", "3000", "--dry-run", "--now", "0005-01-01"], "is before the year 1"),
    (["alerts", "silence", "1", "--for", "100000000d", "--by", "me"], "--for 100000000d is too long"),
    (["alerts", "silence", "1", "--for", "99999999999999999999999w", "--by", "me"], "a silence lasts at most 3,650 days"),
])
def test_out_of_range_is_a_one_line_error(root, args, words):
    r = CliRunner().invoke(cli, ["--home", root, *args])
    assert r.exit_code == 1, r.output
    assert words in r.stderr and "Try: " in r.stderr
    assert r.exception is None or isinstance(r.exception, SystemExit)


@pytest.mark.parametrize("section, key, value", [("notify", "digest_minutes", 10**12),
                                                 ("alerts", "paging_horizon_windows", 10**9)])
def test_config_durations_are_capped(section, key, value):
    with pytest.raises(ConfigError, match=f"'{section}.{key}' must be at most"):
        parse_config({section: {key: value}})
