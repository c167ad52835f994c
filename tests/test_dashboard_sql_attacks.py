"""The SQL page refuses or stops the same attack queries as `monitor sql` (tests/test_cli_sql.py), end to end
through the page: an error is shown, nothing is written, no Streamlit exception."""
import os
from pathlib import Path

import pytest

from test_dashboard_pages import no_exception, open_page

ATTACKS = [
    ("DROP TABLE turns", "refused"),
    ("DELETE FROM alerts", "refused"),
    ("COPY (SELECT 1) TO '{tmp}/leak.csv'", "refused"),
    ("ATTACH '{tmp}/evil.duckdb' AS evil", "refused"),
    ("INSTALL httpfs", "refused"),
    ("LOAD httpfs", "refused"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("SELECT * FROM '/etc/passwd'", "file"),
    ("SET threads = 1", "refused"),
    ("PRAGMA enable_profiling", "refused"),
    ("SELECT 1; DROP TABLE turns", "2 statements"),
    ("WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t", "stopped"),
]


@pytest.fixture(scope="module")
def attack_home(tmp_path_factory):
    from monitor.home import Home

    root = tmp_path_factory.mktemp("sql-attacks") / "home"
    root.mkdir()
    (root / "monitor.toml").write_text("[dashboard]\nsql_time_limit_s = 1.0\n")
    home = Home.open(root)
    _ = home.state, home.lake  # create the state store and the lake now, so only an attack could add files
    return root


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and "catalog" not in p.name and not p.name.endswith(("-wal", "-shm"))}


@pytest.mark.parametrize("template, word", ATTACKS, ids=[a[0][:30] for a in ATTACKS])
def test_sql_page_refuses_or_stops_attack(monkeypatch, attack_home, tmp_path, template, word):
    sql = template.format(tmp=tmp_path)
    before = _files(attack_home)
    at = open_page(monkeypatch, attack_home, "app_pages/sql.py")
    at.text_area(key="sq_sql").input(sql)
    at.button(key="sq_run").click()
    at.run()
    no_exception(at)
    assert at.error, f"no error shown for {sql!r}"
    assert word.lower() in at.error[0].value.lower(), at.error[0].value
    assert list(tmp_path.iterdir()) == []
    assert _files(attack_home) == before
    assert not os.path.exists("/tmp/leak.csv")
