"""`monitor sql`: formats, parameters, the row cap notice, the schema listing and the attack list, end to end."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.home import Home
from test_sqlguard import ATTACKS, _snapshot, _turns  # tests/ is on sys.path (rootdir-relative imports)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    h = Home.open(tmp_path_factory.mktemp("cli_sql") / "home")
    h.lake.append("turns", _turns(60))
    h.state.migrate()
    return h


def _run(home: Home, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home.root), "sql", *args], catch_exceptions=False)


def test_table_output_and_row_count_on_stderr(home):
    r = _run(home, "SELECT model_version, count(*) AS n FROM turns GROUP BY 1 ORDER BY 1")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["model_version", "n"]
    assert lines[2].split() == ["2026.10", "30"] and lines[3].split() == ["2026.11", "30"]
    assert "2 rows" in r.stderr


def test_csv_and_json_formats(home):
    r = _run(home, "SELECT turn_id, feedback FROM turns ORDER BY turn_id LIMIT 3", "--format", "csv")
    assert list(csv.reader(io.StringIO(r.stdout))) == [["turn_id", "feedback"], ["t0", "down"], ["t1", "up"],
                                                      ["t10", "up"]]
    r = _run(home, "SELECT ts, deployment FROM turns ORDER BY ts LIMIT 2", "--format", "json")
    assert json.loads(r.stdout) == [{"ts": "2026-11-01T00:00:00", "deployment": "api"},
                                    {"ts": "2026-11-01T01:00:00", "deployment": "web"}]


def test_json_is_strict_json_nan_and_infinity_are_null(home):
    """A variance of one row or a division by zero gives NaN or Infinity: not JSON, rejected by strict parsers."""
    r = _run(home, "SELECT 'nan'::DOUBLE AS a, 'inf'::DOUBLE AS b, [1.5, '-inf'::DOUBLE] AS c, 2.5 AS d",
             "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == [
        {"a": None, "b": None, "c": [1.5, None], "d": 2.5}]


def test_params_and_truncated_notice(home):
    r = _run(home, "SELECT turn_id FROM turns WHERE model_version = $v ORDER BY turn_id", "-p", "v=2026.11",
             "--limit", "5", "--format", "csv")
    assert r.exit_code == 0
    assert len(r.stdout.splitlines()) == 1 + 5
    assert "truncated: showing the first 5 rows" in r.stderr
    r = _run(home, "SELECT count(*) FROM turns WHERE deployment = :d", "--param", "d=api", "--format", "csv")
    assert r.stdout.splitlines() == ["count_star()", "20"] and "truncated" not in r.stderr
    r = _run(home, "SELECT 1 WHERE 1 = $x")
    assert r.exit_code == 1 and "missing value for parameter(s): $x" in r.stderr and "Try: e.g. --param x=" in r.stderr


def test_tables_lists_every_table_with_columns(home):
    r = _run(home, "--tables", "--format", "json")
    data = json.loads(r.stdout)
    assert {"column": "assistant_message", "type": "VARCHAR"} in data["turns"]
    assert "metrics" in data and "alerts" in data
    r = _run(home, "--tables")
    assert any(line.split()[:3] == ["turns", "ts", "TIMESTAMP"] for line in r.stdout.splitlines())


def test_no_query_is_a_clear_error(home):
    r = _run(home)
    assert r.exit_code == 1 and "no query given" in r.stderr


@pytest.mark.parametrize("template, word", ATTACKS, ids=[a[0][:40] for a in ATTACKS])
def test_attack_refused_by_cli(home, tmp_path, template, word):
    sql = template.format(tmp=tmp_path, lake=home.lake.root)
    before = _snapshot(home.root)
    r = _run(home, sql)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith("Error: query refused") and "Traceback" not in r.stderr
    assert word.lower() in r.stderr.lower()
    assert list(tmp_path.iterdir()) == []
    assert _snapshot(home.root) == before


def _subprocess(home: Home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MONITOR_HOME": str(home.root)}
    return subprocess.run([sys.executable, "-m", "monitor", "sql", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_real_process_refuses_writes_and_stops_endless_query(home, tmp_path):
    before = _snapshot(home.root)
    r = _subprocess(home, f"COPY (SELECT * FROM turns) TO '{tmp_path}/dump.csv'")
    assert r.returncode == 1 and "query refused" in r.stderr
    r = _subprocess(home, "SELECT 1; DROP TABLE turns")
    assert r.returncode == 1 and "2 statements" in r.stderr
    r = _subprocess(home, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
                    "--timeout", "1")
    assert r.returncode == 1 and "query stopped after 1 s" in r.stderr and "Try: add a LIMIT" in r.stderr
    r = _subprocess(home, "SELECT count(*) AS n FROM turns", "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout) == [{"n": 60}]
    assert list(tmp_path.iterdir()) == []
    assert _snapshot(home.root) == before
