"""The Parquet lake: atomic multi-table commits, invisible uncommitted files, compaction without double counts."""
import datetime as dt
import os
import time

import pyarrow as pa
import pytest

from monitor import db
from monitor.errors import StorageError


def _turns(ids, date="2026-11-01"):
    return pa.table({
        "turn_id": ids,
        "date": [date] * len(ids),
        "ts": [dt.datetime(2026, 11, 1, 12)] * len(ids),
        "model": ["m"] * len(ids),
    })


def _count(home, table="turns"):
    con = db.connect(home)
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_empty_home_has_every_table(home):
    con = db.connect(home)
    tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    assert {"turns", "segments", "quarantine", "scores", "metrics_log", "metrics", "alerts", "labels"} <= tables
    assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == 0


def test_transaction_is_atomic_across_tables(home):
    with home.lake.transaction() as tx:
        tx.add("turns", _turns(["a", "b"]))
        tx.add("segments", pa.table({"turn_id": ["a"], "attribute": ["language"], "value": ["de"],
                                     "date": ["2026-11-01"]}))
        # Nothing is visible before the block ends.
        assert _count(home) == 0
    assert _count(home) == 2 and _count(home, "segments") == 1
    assert home.lake.manifest()["version"] == 1


def test_failed_transaction_publishes_nothing(home):
    with pytest.raises(RuntimeError):
        with home.lake.transaction() as tx:
            tx.add("turns", _turns(["a"]))
            raise RuntimeError("crash before commit")
    assert _count(home) == 0
    # The written-but-unlisted file is an orphan that gc removes once past the grace period.
    assert home.lake.gc(grace_seconds=0) == 1


def test_unknown_column_is_refused(home):
    with pytest.raises(StorageError, match="unexpected columns"):
        home.lake.append("turns", pa.table({"turn_id": ["a"], "bogus": [1]}))


def test_partitions_and_hive_layout(home):
    home.lake.append("turns", _turns(["a"], "2026-11-01"))
    home.lake.append("turns", _turns(["b"], "2026-11-02"))
    paths = [e["path"] for e in home.lake.manifest()["tables"]["turns"]]
    assert any("date=2026-11-01" in p for p in paths) and any("date=2026-11-02" in p for p in paths)
    con = db.connect(home)
    assert con.execute("SELECT date FROM turns WHERE turn_id='b'").fetchone()[0] == "2026-11-02"


def test_compaction_keeps_rows_exactly_once_and_defers_deletes(home):
    for i in range(6):
        home.lake.append("turns", _turns([f"t{i}"]))
    before = home.lake.files("turns")
    old_con = db.connect(home)  # a reader that read the old manifest
    merged = home.lake.compact("turns", min_files=4)
    assert merged == 6
    assert _count(home) == 6
    assert len(home.lake.files("turns")) == 1
    # The old reader still works: retired files stay until the grace period ends.
    assert old_con.execute("SELECT count(*) FROM turns").fetchone()[0] == 6
    assert all(p.exists() for p in before)
    assert home.lake.gc(grace_seconds=3600) == 0
    assert home.lake.gc(grace_seconds=0) == 6
    assert not any(p.exists() for p in before)
    assert _count(home) == 6


def test_catalog_is_views_only_and_readable_by_many(home):
    import duckdb

    home.lake.append("turns", _turns(["a", "b", "c"]))
    path = db.write_catalog(home)
    cons = [duckdb.connect(str(path), read_only=True) for _ in range(3)]
    assert [c.execute("SELECT count(*) FROM turns").fetchone()[0] for c in cons] == [3, 3, 3]
    # No table holds data: every relation is a view.
    kinds = cons[0].execute("SELECT DISTINCT table_type FROM information_schema.tables").fetchall()
    assert kinds == [("VIEW",)]
    assert os.path.getsize(path) < 2_000_000


def _view_sql(con, name):
    return con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [name]).fetchone()[0]


def test_files_carry_their_column_fingerprint_so_views_skip_union_by_name(home):
    from monitor.schema import TABLES

    home.lake.append("turns", _turns(["a"], "2026-11-01"))
    home.lake.append("turns", _turns(["b"], "2026-11-02"))
    home.lake.compact("turns", min_files=1)
    entries = home.lake.manifest()["tables"]["turns"]
    assert entries and all(e["s"] == TABLES["turns"].fingerprint for e in entries)
    con = db.connect(home)
    assert "union_by_name = false" in _view_sql(con, "turns")
    assert sorted(r[0] for r in con.execute("SELECT turn_id FROM turns").fetchall()) == ["a", "b"]


def test_a_file_of_an_older_schema_is_read_by_name_and_keeps_union_by_name(home):
    import json
    import uuid

    import pyarrow.parquet as pq

    # A file written before the `feedback_score` column existed (columns also in another order), listed without a
    # fingerprint as an older version would have.
    old = pa.table({"model": ["old-m"], "turn_id": ["old"], "ts": [dt.datetime(2026, 10, 1)]})
    rel = f"turns/date=2026-10-01/part-{uuid.uuid4().hex}.parquet"
    (home.lake.root / rel).parent.mkdir(parents=True)
    pq.write_table(old, home.lake.root / rel)
    home.lake.append("turns", _turns(["new"]))
    m = home.lake.manifest()
    m["tables"]["turns"].insert(0, {"path": rel, "rows": 1, "v": 1})
    (home.lake.root / "_manifest.json").write_text(json.dumps(m))

    def rows():
        con = db.connect(home)
        assert "union_by_name = true" in _view_sql(con, "turns")
        return sorted(con.execute("SELECT turn_id, model, feedback_score, date FROM turns").fetchall())

    want = [("new", "m", None, "2026-11-01"), ("old", "old-m", None, "2026-10-01")]
    assert rows() == want
    # Stamping records the old file's own (different) fingerprint: the table still needs union_by_name.
    assert home.lake.stamp_schemas() == 1
    assert home.lake.manifest()["tables"]["turns"][0]["s"] != home.lake.manifest()["tables"]["turns"][1]["s"]
    assert rows() == want
    assert home.lake.stamp_schemas() == 0


def test_stamping_files_of_the_current_schema_makes_the_table_uniform(home):
    home.lake.append("turns", _turns(["a"]))
    m = home.lake.manifest()
    for e in m["tables"]["turns"]:
        del e["s"]  # as listed by a version before fingerprints
    (home.lake.root / "_manifest.json").write_text(__import__("json").dumps(m))
    assert "union_by_name = true" in _view_sql(db.connect(home), "turns")
    assert home.lake.stamp_schemas() == 1
    con = db.connect(home)
    assert "union_by_name = false" in _view_sql(con, "turns")
    assert con.execute("SELECT turn_id FROM turns").fetchall() == [("a",)]


def test_compaction_sorts_metrics_log_into_small_row_groups(home, monkeypatch):
    import dataclasses
    import random

    import pyarrow.parquet as pq

    from monitor.schema import TABLES

    monkeypatch.setitem(TABLES, "metrics_log", dataclasses.replace(TABLES["metrics_log"], row_group_rows=10))
    rng = random.Random(3)
    for _ in range(5):
        rows = [{"metric": rng.choice(["b_rate", "a_rate", "c_rate"]), "family": "refusal", "granularity": "day",
                 "window_start": dt.datetime(2026, 11, rng.randint(1, 28)), "value": rng.random(), "n": 1}
                for _ in range(12)]
        home.lake.append("metrics_log", pa.Table.from_pylist(rows))
    assert home.lake.compact("metrics_log", min_files=4) == 5
    (path,) = home.lake.files("metrics_log")
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_rows == 60 and pf.metadata.num_row_groups == 6
    got = pf.read(columns=["metric", "window_start"]).to_pylist()
    assert got == sorted(got, key=lambda r: (r["metric"], r["window_start"]))
    con = db.connect(home)
    assert con.execute("SELECT count(*) FROM metrics_log").fetchone()[0] == 60


def test_compaction_leaves_a_big_file_until_the_small_ones_add_up_to_it(home):
    home.lake.append("turns", _turns([f"big{i}" for i in range(100)]))
    for i in range(5):
        home.lake.append("turns", _turns([f"t{i}-{j}" for j in range(3)]))
    big = next(e["path"] for e in home.lake.manifest()["tables"]["turns"] if e["rows"] == 100)
    assert home.lake.compact("turns", min_files=4) == 5  # the five small files, not the big one
    sizes = sorted(e["rows"] for e in home.lake.manifest()["tables"]["turns"])
    assert sizes == [15, 100] and big in {e["path"] for e in home.lake.manifest()["tables"]["turns"]}
    for i in range(6):
        home.lake.append("turns", _turns([f"u{i}-{j}" for j in range(20)]))
    # 15 + 6 x 20 = 135 rows >= 100: now everything merges into one file.
    assert home.lake.compact("turns", min_files=4) == 8
    assert [e["rows"] for e in home.lake.manifest()["tables"]["turns"]] == [235]
    assert _count(home) == 235
