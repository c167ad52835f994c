"""The read-only SQL guard: attack queries are refused or stopped, legitimate queries run, nothing is written."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from monitor.errors import QueryError, SqlGuardError
from monitor.home import Home
from monitor.sqlguard import query_params, run_query, schema, validate_select


def _turns(n: int) -> pa.Table:
    base = dt.datetime(2026, 11, 1)
    return pa.table({
        "turn_id": [f"t{i}" for i in range(n)],
        "conversation_id": [f"c{i // 2}" for i in range(n)],
        "turn_index": pa.array([i % 2 for i in range(n)], pa.int32()),
        "ts": pa.array([base + dt.timedelta(hours=i) for i in range(n)], pa.timestamp("us")),
        "model": ["assistant"] * n,
        "model_version": ["2026.10" if i < n // 2 else "2026.11" for i in range(n)],
        "deployment": ["web" if i % 3 else "api" for i in range(n)],
        "user_message": [f"question {i}" for i in range(n)],
        "assistant_message": [f"answer {i}" for i in range(n)],
        "feedback": ["up" if i % 4 else "down" for i in range(n)],
        "date": [(base + dt.timedelta(hours=i)).strftime("%Y-%m-%d") for i in range(n)],
    })


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    h = Home.open(tmp_path_factory.mktemp("sqlguard") / "home")
    h.lake.append("turns", _turns(60))
    h.state.migrate()  # create state.sqlite now, not during the first query
    return h


def _snapshot(root: Path) -> dict[str, object]:
    """Every file of the home with its size and mtime, plus the SQLite state's full dump (readers may checkpoint its
    WAL, which changes the file but not the data)."""
    import sqlite3

    files = {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*")
             if p.is_file() and not p.name.startswith("state.sqlite")}
    con = sqlite3.connect(root / "state.sqlite")
    try:
        files["state"] = "\n".join(con.iterdump())
    finally:
        con.close()
    return files


# Each attack, and a word its refusal message must contain. All must raise SqlGuardError or QueryError.
ATTACKS = [
    ("DROP TABLE turns", "refused"),
    ("DROP VIEW turns", "refused"),
    ("DELETE FROM alerts", "refused"),
    ("INSERT INTO alerts (id) VALUES (1)", "refused"),
    ("UPDATE alerts SET status = 'resolved'", "refused"),
    ("CREATE TABLE x AS SELECT * FROM turns", "refused"),
    ("CREATE OR REPLACE VIEW turns AS SELECT 1", "refused"),
    ("COPY turns TO '{tmp}/out.csv'", "refused"),
    ("COPY (SELECT * FROM turns) TO '{lake}/stolen.parquet' (FORMAT parquet)", "refused"),
    ("COPY alerts FROM '/etc/passwd'", "refused"),
    ("ATTACH '{tmp}/evil.duckdb' AS evil", "refused"),
    ("DETACH memory", "refused"),
    ("INSTALL httpfs", "refused"),
    ("LOAD httpfs", "refused"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto"),
    ("SELECT * FROM read_text('/etc/hostname')", "read_text"),
    ("SELECT * FROM read_blob('/etc/hostname')", "read_blob"),
    ("SELECT * FROM read_json('{tmp}/x.json')", "read_json"),
    ("SELECT * FROM read_parquet('{lake}/turns/*/*.parquet')", "read_parquet"),
    ("SELECT * FROM parquet_scan('{lake}/turns/*/*.parquet')", "refused"),
    ("SELECT * FROM '/etc/passwd'", "file"),
    ('SELECT * FROM "/etc/passwd"', "file"),
    ("FROM '{lake}/_manifest.json'", "file"),
    ("SELECT * FROM turns JOIN 'data.csv' ON true", "file"),
    ("SELECT * FROM glob('/*')", "glob"),
    ("SELECT * FROM sniff_csv('/etc/passwd')", "sniff_csv"),
    ("SELECT * FROM query('SELECT 1')", "query"),
    ("SELECT * FROM turns, LATERAL (SELECT * FROM read_text('/etc/passwd'))", "read_text"),
    ("SELECT (SELECT count(*) FROM read_csv('/etc/passwd')) AS n", "read_csv"),
    # LATERAL f() is not a Table node in sqlglot's tree: the allow-list of table functions must still apply
    ("SELECT * FROM turns, LATERAL duckdb_databases()", "duckdb_databases"),
    ("SELECT * FROM turns t JOIN LATERAL test_all_types() ON true", "test_all_types"),
    # without its IN list a PIVOT is CREATE TYPE + SELECT: refused, saying how to write it
    ("PIVOT turns ON model_version USING count(*)", "ON model_version IN ("),
    ("SELECT * FROM (PIVOT turns ON model_version USING count(*))", "ON model_version IN ("),
    ("SELECT * FROM duckdb_settings()", "refused"),
    # the same settings by other names (allowed_paths holds the path of every lake file)
    ("SELECT current_setting('allowed_paths')", "current_setting"),
    ("SELECT * FROM pg_catalog.pg_settings", "settings"),
    ("SELECT * FROM checkpoint()", "refused"),
    ("SET threads = 1", "refused"),
    ("SET enable_external_access = true", "refused"),
    ("RESET threads", "refused"),
    ("PRAGMA enable_profiling", "refused"),
    ("CALL pragma_version()", "refused"),
    ("CHECKPOINT", "refused"),
    ("EXPORT DATABASE '{tmp}/export'", "EXPORT"),
    ("IMPORT DATABASE '{tmp}/export'", "IMPORT"),
    ("SELECT 1; DROP TABLE turns", "2 statements"),
    ("SELECT 1 -- harmless\n; DELETE FROM alerts", "2 statements"),
    ("SELECT 1 INTO evil", "refused"),
    ("USE memory", "refused"),
    ("BEGIN TRANSACTION", "refused"),
    ("VACUUM", "refused"),
    ("SELECT * FROM other_db.main.turns", "database"),
    ("SELECT * FROM os", "unknown table"),
    # a CTE name covers only its scope: elsewhere the same name reads DuckDB's catalog (system views)
    ("SELECT * FROM (WITH duckdb_databases AS (SELECT 1) SELECT 1), duckdb_databases", "unknown table"),
    ("WITH sqlite_master AS (SELECT * FROM sqlite_master) SELECT * FROM sqlite_master", "unknown table"),
    ("WITH b AS (SELECT * FROM sqlite_master), sqlite_master AS (SELECT 1) SELECT * FROM b", "unknown table"),
    ("WITH duckdb_logs AS (SELECT 1) SELECT * FROM main.duckdb_logs", "unknown table"),
    ("", "empty"),
]


@pytest.mark.parametrize("template, word", ATTACKS, ids=[a[0][:40] for a in ATTACKS])
def test_attack_is_refused_and_writes_nothing(home, tmp_path, template, word):
    sql = template.format(tmp=tmp_path, lake=home.lake.root)
    before = _snapshot(home.root)
    with pytest.raises(SqlGuardError) as err:
        run_query(home, sql, time_limit_s=5)
    assert word.lower() in str(err.value).lower()
    assert err.value.hint
    assert list(tmp_path.iterdir()) == []
    assert _snapshot(home.root) == before
    assert not any(Path.cwd().glob("out.csv"))


def test_lock_down_stops_what_the_parser_would_miss(home, tmp_path):
    """Defense in depth: a guarded connection itself refuses file reads, writes into the lake and setting changes."""
    from monitor.db import connect

    con = connect(home, guarded=True)
    lake_file = home.lake.files("turns")[0]
    probes = [
        "SELECT * FROM read_csv('/etc/passwd')",
        f"COPY (SELECT 1) TO '{home.lake.root}/x.csv'",
        f"COPY (SELECT 1) TO '{home.lake.root}/_tmp/x.csv'",
        f"COPY (SELECT 1) TO '{tmp_path}/x.csv'",
        f"SELECT * FROM read_text('{home.lake.root}/_manifest.json')",
        f"ATTACH '{tmp_path}/a.duckdb'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET allowed_paths = ['/etc/passwd']",
    ]
    try:
        for sql in probes:
            with pytest.raises(Exception):
                con.execute(sql)
        assert con.execute("SELECT count(*) FROM turns").fetchone()[0] == 60
        assert con.execute(f"SELECT count(*) FROM read_parquet('{lake_file}')").fetchone()[0] > 0
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []
    assert not (home.lake.root / "x.csv").exists()


def test_summarize_of_a_file_is_refused_by_the_parser_check(home):
    # sqlglot keeps `SUMMARIZE '<path>'` as a string literal, not a table; the lock-down lets the lake's own files
    # through, so without this check the query read a lake file directly
    lake_file = home.lake.files("turns")[0]
    with pytest.raises(SqlGuardError, match="looks like a file"):
        run_query(home, f"SUMMARIZE '{lake_file}'")


@pytest.mark.parametrize("sql", [
    # a recursive CTE that never ends
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    # a cross join of 10^18 rows
    "SELECT count(*) FROM range(1000000000) a, range(1000000000) b WHERE a.range + b.range = -1",
])
def test_query_that_never_ends_is_stopped(home, sql):
    import time

    t0 = time.perf_counter()
    with pytest.raises(QueryError) as err:
        run_query(home, sql, time_limit_s=1.0)
    took = time.perf_counter() - t0
    assert "stopped after 1 s" in str(err.value)
    assert "LIMIT" in err.value.hint
    assert took < 8, f"interrupt took {took:.1f}s"



# DuckDB builds each of these values in one step that checks neither the interrupt nor the memory limit:
# `repeat('x', 3000000000)` ran 26 s past a 5 s limit and took 3 GB. Checked without running anything.
@pytest.mark.parametrize("sql, words", [
    ("SELECT repeat('x', 3000000000)", "repeat() would build one value of 3,000,000,000 characters"),
    ("SELECT length(repeat('ab', 3 * 10 ** 7)) FROM turns", "60,000,000 characters"),
    ("SELECT repeat([1, 2], 6e6)", "12,000,000 elements"),
    ("SELECT lpad(turn_id, 1000000000, ' ') FROM turns", "lpad() would build"),
    ("SELECT rpad('x', CAST(2000000000 AS BIGINT), 'y')", "rpad() would build"),
    ("SELECT len(range(100000000))", "range() would build one value of 100,000,000 elements"),
    ("SELECT count(*) FROM (SELECT unnest(generate_series(1, 50000000)))", "generate_series()"),
    ("SELECT count(*) FROM unnest(range(0, 3000000000, 2))", "1,500,000,000 elements"),
    ("SELECT len(list_resize([1], 200000000))", "list_resize()"),
    ("SELECT len(array_resize([1], 200000000, 0))", "array_resize()"),
    ("SELECT printf('%1000000000d', 1)", "printf() would build"),
    ("SELECT format('{:>1000000000}', 'x')", "format() would build"),
    ("SELECT bitstring('1', 1000000000)", "bitstring() would build one value of 1,000,000,000 bits"),
])
def test_huge_constant_value_is_refused_before_it_runs(sql, words):
    with pytest.raises(SqlGuardError) as err:
        validate_select(sql)
    assert words in str(err.value) and "10,000,000 allowed" in str(err.value)
    assert "\n" not in str(err.value)
    assert ("FROM range(n)" if "range" in sql or "series" in sql else "size up to 10,000,000") in err.value.hint


@pytest.mark.parametrize("sql, expected", [
    ("SELECT repeat('-', 3) AS r, lpad('7', 3, '0') AS p, rpad('a', 2, '.') AS q", [("---", "007", "a.")]),
    ("SELECT range(3) AS r, generate_series(1, 3) AS g, list_resize([1], 2) AS l", [([0, 1, 2], [1, 2, 3], [1, None])]),
    ("SELECT printf('%05.1f', 2.25) AS p, format('{:>3}', 'x') AS f", [("002.2", "  x")]),
    # rows from the table function stream and can be stopped: no cap on its bounds
    ("SELECT count(*) FROM (SELECT * FROM range(1000000000000) LIMIT 5)", [(5,)]),
    ("SELECT max(length(repeat(turn_id, turn_index + 2))) FROM turns", [(9,)]),
])
def test_small_or_data_sized_values_still_run(home, sql, expected):
    assert run_query(home, sql).rows == expected

LEGIT = [
    ("SELECT count(*) AS n FROM turns", [(60,)]),
    ("FROM turns SELECT count(*)", [(60,)]),
    ("WITH v AS (SELECT model_version, count(*) AS n FROM turns GROUP BY 1) SELECT * FROM v ORDER BY 1",
     [("2026.10", 30), ("2026.11", 30)]),
    ("SELECT turn_id, row_number() OVER (PARTITION BY model_version ORDER BY ts) AS rn FROM turns "
     "QUALIFY rn = 1 ORDER BY turn_id", [("t0", 1), ("t30", 1)]),
    ("SELECT 'a' AS x UNION ALL SELECT 'b' ORDER BY x", [("a",), ("b",)]),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r ORDER BY n",
     [(1,), (2,), (3,)]),
    ("WITH a AS (SELECT 2 AS x), c AS (WITH d AS (SELECT * FROM a) SELECT * FROM d) SELECT * FROM c, a", [(2, 2)]),
    ("WITH a AS (SELECT 1 AS x) SELECT (SELECT max(x) FROM a) AS m UNION ALL (SELECT x FROM a)", [(1,), (1,)]),
    ("SELECT count(*) FROM turns WHERE deployment = 'api' EXCEPT SELECT 0", [(20,)]),
    ("VALUES (1, 'x'), (2, 'y')", [(1, "x"), (2, "y")]),
    ("SELECT sum(range) FROM range(5)", [(10,)]),
    ("SELECT count(*) FROM turns, LATERAL unnest([1, 2])", [(120,)]),
    ("PIVOT (SELECT deployment FROM turns) ON deployment IN ('api', 'web') USING count(*)", [(20, 40)]),
    ("SELECT * FROM (PIVOT turns ON deployment IN ('api', 'web') USING count(*) GROUP BY model_version) ORDER BY 1",
     [("2026.10", 10, 20), ("2026.11", 10, 20)]),
    ("SELECT * FROM turns PIVOT (count(*) FOR deployment IN ('api', 'web') GROUP BY model_version) ORDER BY 1",
     [("2026.10", 10, 20), ("2026.11", 10, 20)]),
    ("UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME k VALUE v", [("a", 1), ("b", 2)]),
    ("SELECT count(*) FROM turns t JOIN segments s ON starts_with(t.turn_id, s.turn_id)", [(0,)]),
    ("SELECT count(*) FROM turns t JOIN segments s USING (turn_id)", [(0,)]),
    ("SELECT count(*) FROM information_schema.tables WHERE table_name = 'turns'", [(1,)]),
    ("SELECT count(*) FROM main.turns", [(60,)]),
    ("SELECT count(*) FROM alerts", [(0,)]),
    ("SELECT x::INTEGER AS y FROM (SELECT '7' AS x)", [(7,)]),
    ("SELECT [1, 2, 3][2:3] AS s", [([2, 3],)]),
]


@pytest.mark.parametrize("sql, expected", LEGIT, ids=[q[0][:40] for q in LEGIT])
def test_legit_query_runs(home, sql, expected):
    before = _snapshot(home.root)
    res = run_query(home, sql)
    assert res.rows == expected
    assert not res.truncated
    assert _snapshot(home.root) == before


@pytest.mark.parametrize("sql, words", [
    ("SELECT strftime(ts) FROM turns", "strftime() is missing an argument (line 1, col 19)"),
    ("SELECT count(*) FROM turns\nWHERE date_trunc(ts) > now()", "date_trunc() is missing an argument (line 2"),
    ("SELECT lower(upper(model, 1)) FROM turns", "upper() has too many arguments"),
])
def test_wrong_arity_names_the_function_not_sqlglot_classes(home, sql, words):
    # sqlglot checks argument counts while parsing: "Required keyword: 'format' missing for <class
    # 'sqlglot.expressions.temporal.TimeToStr'>" told the analyst nothing about strftime
    with pytest.raises(SqlGuardError) as err:
        run_query(home, sql)
    assert words in str(err.value) and "sqlglot" not in str(err.value)
    assert "arguments" in err.value.hint


def test_expression_depth_error_does_not_suggest_a_set(home):
    # DuckDB's message says 'Use "SET max_expression_depth TO x"', a statement the guard refuses
    with pytest.raises(QueryError) as err:
        run_query(home, "SELECT " + " + ".join(["1"] * 2000))
    assert "Max expression depth" in str(err.value) and "SET" not in str(err.value)
    assert "WITH" in err.value.hint


def test_out_of_memory_says_what_to_try(home):
    with pytest.raises(QueryError) as err:
        run_query(home, "SELECT len(list(range)) FROM range(100000000)", memory_limit="64MB")
    assert "Out of Memory" in str(err.value) and "LIMIT" in err.value.hint


def test_query_that_ignores_the_interrupt_is_ended_after_the_grace_period(home):
    # list_distinct builds its result in one step that never checks DuckDB's interrupt: ~5 s and ~350 MB here, run
    # to the end in the caller's process before (the size comes from the data, so the parser check cannot see it)
    import time

    sql = "SELECT len(list_distinct(range(4000000 + range))) FROM range(1)"
    t0 = time.perf_counter()
    with pytest.raises(QueryError) as err:
        run_query(home, sql, time_limit_s=0.5)
    took = time.perf_counter() - t0
    assert "stopped after 0.5 s (it did not answer the interrupt, so its process was ended)" in str(err.value)
    assert "smaller" in err.value.hint and "LIMIT" in err.value.hint
    assert took < 4, f"took {took:.1f}s"


def test_query_over_the_memory_limit_is_ended(home):
    # 1 GB built by repeat() in one step, outside DuckDB's memory accounting (the parser check sees only the inner
    # 1,000,000): with a 100 MB limit the process is ended at ~0.5 GB (limit + 256 MB slack + its own ~150 MB)
    with pytest.raises(QueryError) as err:
        run_query(home, "SELECT length(repeat(repeat('x', 1000000), 1000))", memory_limit="100MB", time_limit_s=30)
    assert "query stopped: its process used" in str(err.value) and "memory limit (95 MiB)" in str(err.value)
    assert "smaller" in err.value.hint


def test_query_process_that_dies_is_one_error_and_the_next_query_runs(home, monkeypatch):
    import monitor.sqlguard as guard

    monkeypatch.setattr(guard, "_CHILD", "import os; os._exit(3)")
    monkeypatch.setattr(guard, "_SPARE", None)
    with pytest.raises(QueryError) as err:
        run_query(home, "SELECT 1")
    assert "its process ended unexpectedly (exit status 3)" in str(err.value)
    monkeypatch.undo()
    assert run_query(home, "SELECT 1 AS x").rows == [(1,)]




def test_query_longer_than_a_pipe_buffer_reaches_its_process(home):
    # the request crossed the 64 KB pipe buffer in pieces; the query process read one piece, took the pause for its
    # idle timeout and left: "its process ended unexpectedly (exit status 0)"
    sql = "SELECT count(*) FROM turns WHERE turn_index IN (" + ",".join(["1"] * 49_000) + ")"  # 98 KB
    assert run_query(home, sql).rows == [(30,)]


def test_frame_arriving_in_pieces_is_waited_for_until_the_timeout():
    # the same failure, made certain: the rest of a frame comes 0.2 s after its first piece
    import os
    import pickle
    import threading
    import time

    from monitor.sqlguard import _Frames

    r, w = os.pipe()
    data = pickle.dumps({"sql": "x" * 100_000})
    frame = len(data).to_bytes(8, "big") + data

    def write() -> None:
        os.write(w, frame[:1000])
        time.sleep(0.2)
        os.write(w, frame[1000:])
        os.close(w)

    threading.Thread(target=write).start()
    try:
        assert _Frames(r).next(5.0) == {"sql": "x" * 100_000}
    finally:
        os.close(r)

def test_result_too_big_to_return_is_refused_and_says_what_to_try(home, monkeypatch):
    # the row cap counts rows: 1,000 rows of 1 MB texts (no function misused) landed whole in the dashboard's server
    import monitor.sqlguard as guard

    monkeypatch.setattr(guard, "MAX_RESULT_BYTES", 2**20)
    with pytest.raises(QueryError) as err:
        run_query(home, "SELECT repeat(user_message, 2000) AS m FROM turns")
    assert "query result is 1.2 MiB, more than the 1.0 MiB a query may return" in str(err.value)
    assert "left(" in err.value.hint and "catalog.duckdb" in err.value.hint
    assert len(run_query(home, "SELECT repeat(user_message, 1000) AS m FROM turns").rows) == 60

def test_query_process_that_answered_runs_the_next_query(home):
    # starting a query process costs ~0.5 s; one that answered (an error included) waits for the next query
    import monitor.sqlguard as guard

    run_query(home, "SELECT 1")
    pid = guard._SPARE.proc.pid
    with pytest.raises(QueryError):
        run_query(home, "SELECT no_such_column FROM turns")
    assert run_query(home, "SELECT count(*) FROM turns").rows == [(60,)]
    assert guard._SPARE.proc.pid == pid


def test_lake_file_gone_before_the_query_process_opens_it_is_one_error(tmp_path, monkeypatch):
    # the query process opens the files the caller checked the query against; one gone meanwhile was a traceback's
    # last line ("^^^^^") as the error
    import monitor.sqlguard as guard

    h = Home.open(tmp_path / "home")
    h.lake.append("turns", _turns(4))
    run = guard._run_in_query_process

    def delete_then_run(request):
        for f in h.lake.files("turns"):
            f.unlink()
        return run(request)

    monkeypatch.setattr(guard, "_run_in_query_process", delete_then_run)
    with pytest.raises(QueryError) as err:
        run_query(h, "SELECT count(*) FROM turns")
    assert "cannot open the lake's files: IO Error: No files found" in str(err.value)
    assert "run it again" in err.value.hint


def _query_processes_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"_child_main" in cmd and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_query_process_ends_when_its_caller_is_killed(home):
    # a caller killed by SIGTERM or SIGKILL runs no `finally`: its query process ran on until the query's own limit
    import os
    import signal
    import subprocess
    import sys
    import time

    never = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    script = f"""
import monitor.sqlguard as g
from monitor.home import Home
answer = g._Frames.next
def next_frame(self, timeout):  # say when the query process has started the query
    frame = answer(self, timeout)
    if frame is not None and frame[0] == "ready":
        print("ready", flush=True)
    return frame
g._Frames.next = next_frame
g.run_query(Home.open({str(home.root)!r}), {never!r}, time_limit_s=60)
"""
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert caller.stdout.readline().strip() == "ready"
        children = _query_processes_of(caller.pid)
        assert children, "no query process"
        time.sleep(0.3)
    finally:
        caller.kill()
        caller.wait()
    (child,) = children
    deadline = time.monotonic() + 3
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = Path(f"/proc/{child}").exists() and "Z" not in Path(f"/proc/{child}/stat").read_text().split()[2]
    if alive:
        os.kill(child, signal.SIGKILL)
    assert not alive, "the query process outlived its caller"

def test_show_of_a_table_points_to_describe(home):
    # DuckDB reads `SHOW turns` as DESCRIBE turns; the refusal used to say SHOW was not allowed at all
    with pytest.raises(SqlGuardError) as err:
        run_query(home, "SHOW turns")
    assert "SHOW turns is not allowed" in str(err.value)
    assert "DESCRIBE <table>" in err.value.hint and "SHOW TABLES" in err.value.hint


def test_describe_show_summarize(home):
    assert ("turns",) in run_query(home, "SHOW TABLES").rows
    cols = [r[0] for r in run_query(home, "DESCRIBE turns").rows]
    assert cols[:3] == ["turn_id", "content_hash", "conversation_id"]
    assert run_query(home, "SUMMARIZE turns").columns[0] == "column_name"


def test_named_parameters_dollar_and_colon(home):
    sql = "SELECT count(*) FROM turns WHERE model_version = $version AND deployment = :dep"
    assert query_params(sql) == ["version", "dep"]
    res = run_query(home, sql, {"version": "2026.11", "dep": "api"})
    assert res.rows == [(10,)]
    with pytest.raises(QueryError, match=r"missing value for parameter\(s\): \$dep"):
        run_query(home, sql, {"version": "2026.11"})
    with pytest.raises(QueryError, match="not used"):
        run_query(home, sql, {"version": "x", "dep": "y", "extra": 1})


def test_query_params_ignores_casts_slices_and_strings():
    assert query_params("SELECT x::INT, y[1:n], ':nope', '$nope' FROM t WHERE a = $a AND b = :b AND c = $a") == [
        "a", "b"]
    assert query_params("SELECT 1") == []


def test_row_cap_sets_truncated(home):
    res = run_query(home, "SELECT * FROM turns ORDER BY turn_id", row_limit=25)
    assert len(res.rows) == 25 and res.truncated
    res = run_query(home, "SELECT * FROM turns", row_limit=60)
    assert len(res.rows) == 60 and not res.truncated
    assert res.df.shape == (60, len(res.columns))


def test_unknown_table_suggests_the_close_one(home):
    with pytest.raises(SqlGuardError) as err:
        run_query(home, "SELECT * FROM turnz")
    assert "unknown table 'turnz'" in str(err.value)
    assert "did you mean turns" in err.value.hint


def test_duckdb_errors_become_one_line_query_errors(home):
    with pytest.raises(QueryError) as err:
        run_query(home, "SELECT no_such_column FROM turns")
    assert "\n" not in err.value.message
    assert err.value.message.startswith("query failed: Binder Error")
    with pytest.raises(QueryError, match="parse"):
        run_query(home, "SELEC 1")
    # DuckDB lists the candidate functions below a "Candidate functions:" line: the hint carries them, on one line
    with pytest.raises(QueryError) as err:
        run_query(home, "SELECT substr(user_message) FROM turns")
    assert err.value.hint.startswith("Candidate functions: substr(")
    assert "\n" not in err.value.hint


@pytest.mark.parametrize("sql", [
    "SELECT " + "(" * 200 + "1" + ")" * 200,
    "SELECT count(*) FROM " + "(SELECT * FROM " * 150 + "turns" + ") AS s" * 150,
])
def test_query_nested_too_deeply_is_refused_not_a_crash(home, sql):
    # sqlglot's recursive parser hit Python's recursion limit at ~45 levels: a RecursionError, a traceback in the CLI
    with pytest.raises(SqlGuardError) as err:
        run_query(home, sql)
    assert "nests too deeply" in str(err.value)
    assert "WITH" in err.value.hint


@pytest.mark.parametrize("n", [1_000_000, 55_000])
def test_query_too_long_to_check_is_refused_at_once(home, n):
    # parsing in Python is neither under the time limit nor in the query process: 2 MB of IN list took ~20 s to
    # check before it could run; 1 MB of `:a` placeholders 24 s, plus 15 s for the SQL page's parameter fields on
    # every rerun. 110 KB (55,000 values) is over the cap.
    import time

    sql = "SELECT count(*) FROM turns WHERE turn_index IN (" + ",".join(["1"] * n) + ")"
    t0 = time.perf_counter()
    with pytest.raises(SqlGuardError) as err:
        run_query(home, sql)
    assert time.perf_counter() - t0 < 1.5
    if n < 100_000:  # (a 2 MB text took 15 s here before: not worth waiting for when checking the test fails)
        assert query_params(sql) == []
    assert f"{len(sql):,} characters" in str(err.value) and "subquery" in err.value.hint


def test_validate_select_without_catalog_still_refuses_paths():
    assert validate_select("SELECT * FROM anything") == "SELECT * FROM anything"
    with pytest.raises(SqlGuardError):
        validate_select("SELECT * FROM 'secrets.csv'")


def test_schema_lists_tables_with_typed_columns(home):
    s = schema(home)
    assert ("turn_id", "VARCHAR") in s["turns"]
    assert ("ts", "TIMESTAMP") in s["turns"]
    assert {"turns", "segments", "scores", "metrics_log", "metrics", "alerts", "labels"} <= set(s)


def test_records_are_json_ready(home):
    import json

    res = run_query(home, "SELECT ts, 1.5::DECIMAL(4,2) AS d FROM turns ORDER BY ts LIMIT 1")
    assert json.loads(json.dumps(res.records())) == [{"ts": "2026-11-01T00:00:00", "d": 1.5}]
