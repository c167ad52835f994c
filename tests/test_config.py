"""Strict configuration: defaults without a file, and one fixture file per failure mode."""
from pathlib import Path

import pytest

from monitor.config import Config, load_config, parse_config
from monitor.errors import ConfigError

FIX = Path(__file__).parent / "fixtures" / "config_core"


def test_no_config_file_gives_defaults(tmp_path):
    cfg = load_config(tmp_path)
    assert cfg == Config()
    assert cfg.metrics.granularity == "day" and cfg.ingest.redact_pii is True


def test_valid_config_records_sources(tmp_path):
    (tmp_path / "monitor.toml").write_text('[metrics]\ngranularity = "hour"\nmin_n = 50\n')
    cfg = load_config(tmp_path)
    assert cfg.metrics.granularity == "hour" and cfg.metrics.min_n == 50
    assert cfg.sources["metrics.min_n"].endswith("monitor.toml")
    assert "metrics.confidence" not in cfg.sources  # still the default


@pytest.mark.parametrize(
    "fixture, words",
    [
        ("unknown_key.toml", ["metrics.granularty", "did you mean 'granularity'"]),
        ("wrong_type.toml", ["metrics.min_n", "must be int", "'thirty'"]),
        ("bad_choice.toml", ["metrics.granularity", "day, hour", "'week'"]),
        ("not_toml.toml", ["not valid TOML"]),
        ("unknown_section.toml", ["unknown key 'nonsense'"]),
        ("section_not_table.toml", ["'metrics' must be a table"]),
        ("bad_confidence.toml", ["metrics.confidence", "between 0.5 and 1"]),
        ("bool_as_string.toml", ["ingest.redact_pii", "must be bool"]),
        ("column_not_text.toml", ["'ingest.columns.assistant_message' must be str, got int 5",
                                  'assistant_message = "text"']),
        ("list_item_wrong_type.toml", ["'metrics.segment_attributes[1]' must be str, got int 3"]),
        ("zero_max_line_bytes.toml", ["'ingest.max_line_bytes' must be positive, got 0"]),
        ("negative_max_future.toml", ["'ingest.max_future_minutes' must be 0 or more", "-100000000"]),
        ("negative_sql_time_limit.toml", ["'dashboard.sql_time_limit_s' must be positive, got -1"]),
        ("zero_sql_row_limit.toml", ["'dashboard.sql_row_limit' must be positive, got 0"]),
        ("nan_time_limit.toml", ["'dashboard.sql_time_limit_s' must be a finite number"]),
        ("huge_retention_days.toml", ["'ingest.retention_days' must be at most 36,500"]),
        ("not_utf8.toml", [":1: not valid UTF-8 (byte 0xff at column 1)", "save the file as UTF-8"]),
    ],
)
def test_bad_config_is_refused_with_key_path(fixture, words):
    with pytest.raises(ConfigError) as exc:
        load_config(FIX, FIX / fixture)
    text = str(exc.value)
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"
    assert str(FIX / fixture) in text or "TOML" in text


def test_missing_explicit_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path, tmp_path / "nope.toml")


def test_int_is_accepted_for_float():
    cfg = parse_config({"notify": {"backoff_seconds": 5}})
    assert cfg.notify.backoff_seconds == 5


def test_cli_reports_bad_config_in_one_line(tmp_path):
    import subprocess, sys

    (tmp_path / "monitor.toml").write_text("[metrics]\nmin_n = -1\n")
    r = subprocess.run([sys.executable, "-m", "monitor", "--home", str(tmp_path), "jobs", "list"],
                       capture_output=True, text=True)
    # jobs list does not open the home; use a verb that does
    r = subprocess.run([sys.executable, "-m", "monitor", "--home", str(tmp_path), "jobs", "run"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "metrics.min_n" in r.stderr and "Traceback" not in r.stderr


def test_every_key_is_documented_and_doc_is_current():
    from monitor.config_doc import DOC, HELP, keys, render

    paths = [k for k, _, _ in keys()]
    assert sorted(set(paths) - set(HELP)) == [], "add help for these keys in monitor/config_doc.py"
    assert sorted(set(HELP) - set(paths)) == [], "help for keys that no longer exist"
    assert DOC.read_text() == render(), "docs/configuration.md is stale: python -m monitor.config_doc --write"


def test_cli_reports_non_utf8_config_in_one_line(tmp_path):
    import subprocess, sys

    (tmp_path / "monitor.toml").write_bytes(b"\xff\xfe[metrics]\n")
    r = subprocess.run([sys.executable, "-m", "monitor", "--home", str(tmp_path), "metrics"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"{tmp_path / 'monitor.toml'}:1: not valid UTF-8" in r.stderr


def test_a_utf8_byte_order_mark_is_ignored(tmp_path):
    """Windows Notepad saves "UTF-8 with BOM": the mark is not TOML, and must not make the file unreadable."""
    from monitor.config import load_config

    (tmp_path / "monitor.toml").write_bytes(b"\xef\xbb\xbf[metrics]\nmin_n = 12\n")
    assert load_config(tmp_path).metrics.min_n == 12


def test_unreadable_config_is_a_config_error(tmp_path):
    (tmp_path / "monitor.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path)
