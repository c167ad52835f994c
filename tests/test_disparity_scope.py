"""The values and disparity jobs read through views over the touched dates only (monitor/disparity/scope.py): every
query they run must give the same rows there as over the whole lake (monitor.db.connect, what they used before)."""
import datetime as dt
import itertools
import json

import pandas as pd
import pytest

from monitor.db import connect
from monitor.demo import records
from monitor.disparity.compute import Settings, load_inputs
from monitor.disparity.quality import detector_rows, detector_window
from monitor.disparity.scope import scoped_connect, scoped_manifest
from monitor.home import Home
from monitor.incremental import date_bounds, range_dates
from monitor.ingest import ingest_paths
from monitor.jobs import run_all
from monitor.resources import load_sql

NOW = dt.datetime(2026, 11, 20)
JOBS = ["languages", "score", "values", "refusal_metrics", "disparity"]
CONFIG = """
[disparity]
min_n = 5
intersections = [["language", "age_band"]]
[disparity.reference_group]
language = "en"
"""


def _write(path, recs):
    with open(path, "w") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    return path


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """Every job run over 800 demo turns, then over late turns of old days; reviewer labels."""
    tmp = tmp_path_factory.mktemp("scope")
    recs = list(itertools.islice(records(NOW.date()), 0, None, 25))  # 800 turns over 30 days
    days = sorted({r["timestamp"][:10] for r in recs})
    late = {r["conversation_id"] for r in recs[::13] if r["timestamp"][:10] < days[-2]}
    (tmp / "home").mkdir()
    (tmp / "home" / "monitor.toml").write_text(CONFIG)
    home = Home.open(tmp / "home")
    ingest_paths(home, [_write(tmp / "a.jsonl", [r for r in recs if r["conversation_id"] not in late])])
    assert all(r.status == "ok" for r in run_all(home, only=JOBS, now=NOW))
    ingest_paths(home, [_write(tmp / "b.jsonl", [r for r in recs if r["conversation_id"] in late])])
    assert all(r.status == "ok" for r in run_all(home, only=JOBS, now=NOW))
    con = connect(home)
    try:
        turns = con.execute("SELECT turn_id FROM turns ORDER BY turn_id").fetchall()
    finally:
        con.close()
    with home.state.tx() as c:  # several labels per turn, some turns outside the detector's 30 days
        for k, (tid,) in enumerate(turns[::7]):
            for j in range(1 + k % 2):
                c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label) VALUES (?,?,?,?)",
                          (tid, f"r{j}", f"2026-11-1{j}T10:00:00Z",
                           ["full_refusal", "compliance", "partial_refusal"][(k + j) % 3]))
    return home, days


def _cases(days):
    """(granularity, windows) to query: one day, two days apart, one hour, and the last day (with late data)."""
    d = [dt.datetime.fromisoformat(x) for x in days]
    return [("day", [d[1]]), ("day", [d[0], d[len(d) // 2]]), ("hour", [d[2] + dt.timedelta(hours=14)]),
            ("day", [d[-1]])]


def _rows(con, sql, params):
    """The rows of a query, floats to 12 significant digits (DuckDB sums in parallel, in no fixed order)."""
    def norm(x):
        return float(f"{x:.12g}") if isinstance(x, float) else x
    return sorted(repr(tuple(map(norm, r))) for r in con.execute(sql, params).fetchall())


QUERIES = ["values/value_means.sql", "values/coverage.sql", "values/existing_keys.sql", "values/all_windows.sql",
           "disparity/group_counts.sql", "disparity/pair_counts.sql", "disparity/value_group_stats.sql",
           "disparity/value_pair_stats.sql", "disparity/language_mismatch.sql"]


@pytest.mark.slow
@pytest.mark.parametrize("case", range(4))
def test_scoped_queries_equal_queries_over_the_whole_lake(lake, case):
    home, days = lake
    granularity, windows = _cases(days)[case]
    manifest = home.lake.manifest()
    bounds = date_bounds(windows, granularity)
    full, scoped = connect(home, manifest=manifest), scoped_connect(home, manifest, bounds)
    try:
        version = full.execute("SELECT max(scorer_version) FROM value_turns").fetchone()[0]
        params = {"granularity": granularity, "windows": windows, "date_min": bounds[0], "date_max": bounds[1],
                  "attributes": ["language", "age_band", "region", "detected_language"], "scorer_version": version,
                  "metrics": ["value_mean", "value_coverage"], "attr_a": "language", "attr_b": "age_band",
                  "declared_attribute": "language"}
        nonempty = 0
        for name in QUERIES:
            q = load_sql(name)
            p = {k: v for k, v in params.items() if f"${k}" in q.sql}
            want = _rows(full, q.sql, p)
            assert _rows(scoped, q.sql, p) == want, name
            nonempty += bool(want)
        assert nonempty >= 7  # the cases exercise real rows, not empty results
        # The disparity job's inputs (bounded groups, reference groups, intersections) from both connections.
        s = Settings.from_config(home.config, ["language", "age_band", "region", "detected_language"])
        s.granularity = granularity
        for got, want in zip(load_inputs(scoped, s, windows), load_inputs(full, s, windows)):
            assert len(want)
            pd.testing.assert_frame_equal(_sorted(got), _sorted(want), rtol=1e-12)
    finally:
        full.close()
        scoped.close()


def _sorted(df):
    return df.sort_values(list(df.columns), kind="stable", key=lambda c: c.astype(str)).reset_index(drop=True)


@pytest.mark.slow
def test_scoped_detector_rows_equal_rows_over_the_whole_lake(lake):
    home, _ = lake
    manifest = home.lake.manifest()
    full = connect(home, manifest=manifest)
    scoped = scoped_connect(home, manifest, range_dates(*detector_window(NOW)), state=("labels",))
    try:
        attrs = ["language", "age_band", "region"]
        want = detector_rows(home, full, attrs, NOW, 5)
        assert len(want) > 6
        assert detector_rows(home, scoped, attrs, NOW, 5) == want
    finally:
        full.close()
        scoped.close()


def test_scoped_manifest_keeps_the_dates_in_range_and_unpartitioned_tables():
    m = {"version": 3, "tables": {
        "turns": [{"path": "turns/date=2026-11-01/a.parquet"}, {"path": "turns/date=2026-11-03/b.parquet"},
                  {"path": "turns/date=2026-11-04/c.parquet"}],
        "metrics_log": [{"path": "metrics_log/family=values/d.parquet"}]}}
    got = scoped_manifest(m, "2026-11-02", "2026-11-03")
    assert [e["path"] for e in got["tables"]["turns"]] == ["turns/date=2026-11-03/b.parquet"]
    assert got["tables"]["metrics_log"] == m["tables"]["metrics_log"] and got["version"] == 3
    assert len(m["tables"]["turns"]) == 3  # the input manifest is left as it was
