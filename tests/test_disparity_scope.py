"""The values and disparity jobs read through views over the touched dates only (monitor.db.scoped_connect): every
query they run must give the same rows there as over the whole lake (monitor.db.connect, what they used before)."""
import datetime as dt
import itertools
import json
from collections import Counter

import pandas as pd
import pytest

from monitor.db import connect
from monitor.demo import records
from monitor.disparity.compute import Settings, load_inputs
from monitor.disparity.quality import detector_rows, detector_window
from monitor.db import scoped_connect, scoped_manifest
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
    # The hour case queries the busiest hour of the third day (a fixed hour may hold too few turns of the demo).
    hours = Counter(r["timestamp"][11:13] for r in recs if r["timestamp"][:10] == days[2])
    days = days + [max(sorted(hours), key=hours.get)]
    with home.state.tx() as c:  # several labels per turn, some turns outside the detector's 30 days
        for k, (tid,) in enumerate(turns[::7]):
            for j in range(1 + k % 2):
                c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label) VALUES (?,?,?,?)",
                          (tid, f"r{j}", f"2026-11-1{j}T10:00:00Z",
                           ["full_refusal", "compliance", "partial_refusal"][(k + j) % 3]))
    return home, days


def _cases(days):
    """(granularity, windows) to query: one day, two days apart, one hour, and the last day (with late data)."""
    *days, hour = days  # the lake fixture appends the busiest hour of days[2]
    d = [dt.datetime.fromisoformat(x) for x in days]
    return [("day", [d[1]]), ("day", [d[0], d[len(d) // 2]]), ("hour", [d[2] + dt.timedelta(hours=int(hour))]),
            ("day", [d[-1]])]


def _rows(con, sql, params):
    """The rows of a query, sorted with floats rounded (the rounded copy only orders them)."""
    rows = con.execute(sql, params).fetchall()
    return sorted(rows, key=lambda r: repr(tuple(round(x, 6) if isinstance(x, float) else x for x in r)))


def _same(got, want, name):
    """Equal rows, floats within 1e-12 relative (DuckDB sums in parallel, in no fixed order)."""
    assert len(got) == len(want), name
    for g, w in zip(got, want):
        assert len(g) == len(w) and all(
            x == pytest.approx(y, rel=1e-12, abs=1e-12) if isinstance(y, float) else x == y
            for x, y in zip(g, w)), (name, g, w)


QUERIES = ["values/value_means.sql", "values/coverage.sql", "jobs/existing_keys.sql", "values/all_windows.sql",
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
                  "declared_attribute": "language", "family": "values", "all_metrics": False}
        nonempty = 0
        for name in QUERIES:
            q = load_sql(name)
            p = {k: v for k, v in params.items() if f"${k}" in q.sql}
            want = _rows(full, q.sql, p)
            _same(_rows(scoped, q.sql, p), want, name)
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
    scoped = scoped_connect(home, manifest, range_dates(*detector_window(NOW)), state=("labels", "review_queue"))
    try:
        attrs = ["language", "age_band", "region"]
        want = detector_rows(home, full, attrs, NOW, 5)
        assert len(want) > 6
        assert detector_rows(home, scoped, attrs, NOW, 5) == want
        # The query restricted to labelled turns first gives the rows of its plain form.
        start, end = detector_window(NOW)
        for attr, bounds in itertools.product(attrs, [(start, end), (None, None)]):
            date_min, date_max = range_dates(*bounds)
            p = {"attribute": attr, "start": bounds[0], "end": bounds[1], "date_min": date_min, "date_max": date_max}
            want = _rows(full, PLAIN_DETECTOR, p)
            assert want
            got = _rows(full, load_sql("disparity/detector_counts.sql").sql,
                        {**{k: v for k, v in p.items() if k != "attribute"}, "attributes": [attr]})
            _same([g[1:] for g in got], want, attr)  # without its attribute column
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


PLAIN_DETECTOR = """
WITH lab AS (
    SELECT turn_id, refusal_label FROM (
        SELECT turn_id, refusal_label,
               row_number() OVER (PARTITION BY turn_id ORDER BY "at" DESC, id DESC) AS rn
        FROM labels
        WHERE refusal_label IS NOT NULL
    ) WHERE rn = 1
),
seg AS (
    SELECT DISTINCT turn_id, value FROM segments
    WHERE attribute = $attribute AND value IS NOT NULL AND date BETWEEN $date_min AND $date_max
),
j AS (
    SELECT g.value,
           l.refusal_label IN ('full_refusal', 'partial_refusal') AS truth,
           s.refusal IN ('full_refusal', 'partial_refusal') AS pred
    FROM lab l
    JOIN latest_scores s USING (turn_id)
    JOIN seg g USING (turn_id)
    JOIN turns t USING (turn_id)
    WHERE s.refusal IS NOT NULL
      AND s.date BETWEEN $date_min AND $date_max
      AND t.date BETWEEN $date_min AND $date_max
      AND (CAST($start AS TIMESTAMP) IS NULL OR t.ts >= CAST($start AS TIMESTAMP))
      AND (CAST($end AS TIMESTAMP) IS NULL OR t.ts < CAST($end AS TIMESTAMP))
)
SELECT value,
       count(*) AS n,
       count(*) FILTER (WHERE truth AND pred) AS tp,
       count(*) FILTER (WHERE NOT truth AND pred) AS fp,
       count(*) FILTER (WHERE truth AND NOT pred) AS fn,
       count(*) FILTER (WHERE NOT truth AND NOT pred) AS tn
FROM j
GROUP BY value
ORDER BY value;
"""

# The plain form of two queries rewritten to group on integer codes (3x and 1.7x less CPU on a 50k-turn day): the
# rewritten files must give exactly these rows, and the same column types.
PLAIN = {
    "values/value_means.sql": """
WITH base AS (
    SELECT v.turn_id, v.dimension, v.family, v.score,
           date_trunc($granularity, t.ts) AS window_start,
           coalesce(t.model, 'unknown') AS model,
           coalesce(t.deployment, 'unknown') AS deployment
    FROM value_scores AS v
    JOIN turns AS t ON t.turn_id = v.turn_id AND t.date = v.date
    WHERE t.date BETWEEN $date_min AND $date_max
      AND v.scorer_version = $scorer_version
      AND list_contains($windows, date_trunc($granularity, t.ts))
),
tagged AS (
    SELECT window_start, model, deployment, CAST(NULL AS VARCHAR) AS seg_attribute,
           CAST(NULL AS VARCHAR) AS seg_value, dimension, family, score
    FROM base
    UNION ALL
    SELECT b.window_start, b.model, b.deployment, s.attribute, s.value, b.dimension, b.family, b.score
    FROM base AS b
    JOIN (SELECT DISTINCT turn_id, attribute, value FROM segments WHERE date BETWEEN $date_min AND $date_max) AS s
      ON s.turn_id = b.turn_id
    WHERE list_contains($attributes, s.attribute) AND s.value IS NOT NULL
)
SELECT
    window_start,
    window_start + CASE WHEN $granularity = 'hour' THEN INTERVAL 1 HOUR ELSE INTERVAL 1 DAY END AS window_end,
    CASE WHEN GROUPING(model) = 1 THEN NULL ELSE model END AS model,
    CASE WHEN GROUPING(deployment) = 1 THEN NULL ELSE deployment END AS deployment,
    seg_attribute,
    seg_value,
    dimension,
    any_value(family) AS family,
    count(*) AS n,
    sum(score) AS total,
    sum(score * score) AS total_sq,
    count(*) FILTER (WHERE score > 0) AS nonzero
FROM tagged
GROUP BY GROUPING SETS (
    (window_start, seg_attribute, seg_value, dimension),
    (window_start, model, seg_attribute, seg_value, dimension),
    (window_start, deployment, seg_attribute, seg_value, dimension)
)
ORDER BY window_start, model NULLS FIRST, deployment NULLS FIRST, seg_attribute NULLS FIRST, seg_value, dimension
""",
    "disparity/value_group_stats.sql": """
WITH cur AS (
    SELECT turn_id, scorer_version FROM (
        SELECT turn_id, scorer_version, scored,
               row_number() OVER (PARTITION BY turn_id ORDER BY scored_at DESC, scorer_version DESC) AS rn
        FROM value_turns
        WHERE date BETWEEN $date_min AND $date_max
    ) WHERE rn = 1 AND scored
),
base AS (
    SELECT t.turn_id,
           date_trunc($granularity, t.ts) AS window_start,
           t.model,
           t.source_kind,
           v.dimension, v.family, v.score
    FROM turn_sources t
    JOIN cur c USING (turn_id)
    JOIN value_scores v ON v.turn_id = c.turn_id AND v.scorer_version = c.scorer_version
    WHERE t.date BETWEEN $date_min AND $date_max
      AND v.date BETWEEN $date_min AND $date_max
      AND list_contains($windows, date_trunc($granularity, t.ts))
      AND v.dimension <> 'refusal'
),
seg AS (
    SELECT DISTINCT turn_id, attribute, value
    FROM segments
    WHERE date BETWEEN $date_min AND $date_max
      AND list_contains($attributes, attribute)
      AND value IS NOT NULL
)
SELECT b.window_start, b.model, b.source_kind, g.attribute, g.value, b.dimension, round(b.score, 2) AS bin,
       any_value(b.family) AS family,
       count(*) AS n,
       sum(b.score) AS total,
       sum(b.score * b.score) AS total_sq,
       count(*) FILTER (WHERE b.score > 0) AS nonzero
FROM base b
JOIN seg g USING (turn_id)
GROUP BY b.window_start, b.model, b.source_kind, g.attribute, g.value, b.dimension, round(b.score, 2)
ORDER BY b.window_start, b.model, b.source_kind, g.attribute, g.value, b.dimension, bin;
""",
}


@pytest.mark.slow
@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("attributes", [["language", "age_band", "region", "detected_language"], []])
def test_coded_queries_equal_their_plain_form(lake, case, attributes):
    home, days = lake
    granularity, windows = _cases(days)[case]
    bounds = date_bounds(windows, granularity)
    con = connect(home)
    try:
        version = con.execute("SELECT max(scorer_version) FROM value_turns").fetchone()[0]
        params = {"granularity": granularity, "windows": windows, "date_min": bounds[0], "date_max": bounds[1],
                  "attributes": attributes, "scorer_version": version}
        for name, plain in PLAIN.items():
            sql = load_sql(name).sql
            p = {k: v for k, v in params.items() if f"${k}" in sql}
            want = _rows(con, plain, p)
            assert len(want) >= (0 if not attributes and name.startswith("disparity") else 20), name
            _same(_rows(con, sql, p), want, name)
            assert con.execute(sql, p).description == con.execute(plain, p).description
    finally:
        con.close()
