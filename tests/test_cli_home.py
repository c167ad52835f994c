"""A --home that is not a monitor home: verbs that only read or act on existing data refuse it and create nothing;
the verbs that put data in create it."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from monitor.cli import cli

READ_VERBS = [
    ["metrics"],
    ["sql", "SELECT 1"],
    ["sql", "--tables"],
    ["alerts", "list"],
    ["alerts", "rules"],
    ["alerts", "ack", "1", "--by", "me"],
    ["quarantine", "list"],
    ["quarantine", "show", "abc"],
    ["disparity"],
    ["dashboard"],
    ["jobs", "run"],
    ["retention", "--days", "30", "--dry-run"],
    ["forget", "--user-id", "u", "--actor", "me", "--reason", "r", "--dry-run"],
]


@pytest.mark.parametrize("args", READ_VERBS, ids=[" ".join(a[:2]) for a in READ_VERBS])
def test_misspelt_home_is_an_error_and_creates_nothing(tmp_path, args):
    missing = tmp_path / "nonexistent" / "home"
    r = CliRunner().invoke(cli, ["--home", str(missing), *args])
    assert r.exit_code == 1, r.output
    assert f"Error: no monitor home at {missing} (it has no lake, state.sqlite or monitor.toml)" in r.stderr
    assert "Try: check --home / MONITOR_HOME; `monitor demo` or `monitor ingest LOGS` creates a home" in r.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_empty_folder_is_not_a_home_either(tmp_path):
    r = CliRunner().invoke(cli, ["--home", str(tmp_path), "metrics"])
    assert r.exit_code == 1 and "no monitor home at" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_classify_with_a_misspelt_home_is_an_error(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"response": "I can't help with that."}) + "\n")
    r = CliRunner().invoke(cli, ["--home", str(tmp_path / "nope"), "classify", "--input", str(src),
                                 "--output", str(tmp_path / "out.jsonl")])
    assert r.exit_code == 1 and "no monitor home at" in r.stderr
    assert not (tmp_path / "nope").exists()


def test_classify_with_only_a_config_file_creates_no_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_HOME", raising=False)
    (tmp_path / "c.toml").write_text("[classifiers]\nhigh_precision = true\n")
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "How do I kill a Python process?"}) + "\n")
    r = CliRunner().invoke(cli, ["--config", "c.toml", "classify", "--input", "in.jsonl", "--output", "out.jsonl"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "in.jsonl", "out.jsonl"]


def test_ingest_creates_the_home_and_then_reads_work(tmp_path):
    home = tmp_path / "new" / "home"
    log = tmp_path / "a.jsonl"
    log.write_text(json.dumps({"conversation_id": "c1", "timestamp": "2026-11-01T10:00:00Z", "model": "m@1",
                               "messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "hello"}]}) + "\n")
    r = CliRunner().invoke(cli, ["--home", str(home), "ingest", str(log)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["--home", str(home), "sql", "SELECT count(*) AS n FROM turns", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["n", "1"]


def test_a_folder_with_only_monitor_toml_is_a_home(tmp_path):
    (tmp_path / "monitor.toml").write_text("[metrics]\nmin_n = 10\n")
    r = CliRunner().invoke(cli, ["--home", str(tmp_path), "alerts", "rules"])
    assert r.exit_code == 0, r.output
