"""monitor.db's pool of in-memory DuckDB connections: a reused connection is empty, and one whose use may have
changed more than views and tables is never reused."""
import duckdb
import pandas as pd
import pytest

from monitor import db


@pytest.fixture(autouse=True)
def empty_pool(monkeypatch):
    monkeypatch.setattr(db, "_POOL", [])


def test_a_released_connection_comes_back_empty():
    con = db.memory_connection()
    raw = con._con
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    con.execute("CREATE OR REPLACE VIEW v AS SELECT * FROM t")
    con.register("frame", pd.DataFrame({"x": [1, 2]}))
    con.execute("CREATE OR REPLACE TEMP VIEW tv AS SELECT 2 AS b")
    assert con.execute("SELECT count(*) FROM frame").fetchone()[0] == 2
    con.close()
    assert db._POOL == [raw]
    again = db.memory_connection()
    assert again._con is raw and db._POOL == []
    assert again.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0] == 0
    assert again.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0] == 0
    with pytest.raises(duckdb.CatalogException):
        again.execute("SELECT * FROM frame")
    again.register("frame", pd.DataFrame({"y": [3]}))  # ready for everything a new connection does
    assert again.execute("SELECT y FROM frame").fetchall() == [(3,)]
    again.close()


@pytest.mark.parametrize("statement", ["SET threads = 1", "-- a header\nPRAGMA enable_profiling",
                                       "CREATE MACRO twice(x) AS 2 * x", "BEGIN TRANSACTION",
                                       "CREATE SCHEMA s", "SELECT 1; SET threads = 1", "ATTACH ':memory:' AS other"])
def test_a_connection_that_may_have_changed_more_is_closed_not_reused(statement):
    con = db.memory_connection()
    raw = con._con
    con.execute(statement)
    con.close()
    assert db._POOL == []
    with pytest.raises(duckdb.ConnectionException):
        raw.execute("SELECT 1")


def test_other_apis_and_unfinished_results_retire_the_connection():
    con = db.memory_connection()
    con.sql("SELECT 1")  # not through execute(): not checked, so not reused
    con.close()
    assert db._POOL == []
    con = db.memory_connection()
    raw = con._con
    con.execute("CREATE VIEW v AS SELECT * FROM range(100000)")
    con.execute("SELECT * FROM v").fetchone()  # a result left unfinished
    con.close()
    if db._POOL:  # reused only when emptying it worked, and then usable as a new connection
        again = db.memory_connection()
        assert again._con is raw
        again.register("frame", pd.DataFrame({"y": [3]}))
        assert again.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchall() == [(1,)]
        again.close()
    else:
        with pytest.raises(duckdb.ConnectionException):
            raw.execute("SELECT 1")


def test_a_closed_proxy_cannot_be_used_and_the_pool_is_bounded():
    cons = [db.memory_connection() for _ in range(db.POOL_SIZE + 2)]
    for c in cons:
        c.close()
    assert len(db._POOL) == db.POOL_SIZE
    with pytest.raises(duckdb.ConnectionException):
        cons[0].execute("SELECT 1")
    with pytest.raises(duckdb.ConnectionException):
        cons[0].fetchall()


def test_a_forked_child_never_takes_the_parents_connections(monkeypatch):
    con = db.memory_connection()
    raw = con._con
    con.close()
    monkeypatch.setattr(db, "_POOL_PID", -1)  # as in a child forked after the parent pooled it
    other = db.memory_connection()
    assert other._con is not raw and db._POOL == []
    other.close()


def test_the_jobs_connections_are_reused(home):
    """scoped_connect's views (sql/views files with `;` in their header comments) and state tables leave a connection
    that goes back to the pool: what every job does several times a run."""
    home.state.put("x", {"y": 1})
    con = db.scoped_connect(home, home.lake.manifest(), ("2026-11-01", "2026-11-02"), state=("labels",))
    raw = con._con
    assert con.execute("SELECT count(*) FROM latest_scores").fetchall() == [(0,)]
    con.close()
    assert db._POOL == [raw]
    again = db.scoped_connect(home, home.lake.manifest(), ("2026-11-01", "2026-11-02"))
    assert again._con is raw
    with pytest.raises(duckdb.CatalogException):
        again.execute("SELECT * FROM labels")  # the previous user's state table is gone
    again.close()
