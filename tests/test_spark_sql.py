"""Every SQL file the jobs run gives the same rows on local Spark (monitor/spark.py) as on DuckDB over the same lake.

Needs the `spark` extra (pyspark and Java 17); skipped with a reason locally, a failure in CI (CI=true). One Spark
session serves the whole module (start ~6-20 s). The fixture lake is filled by the real jobs (score, languages,
values, disparity, refusal_metrics) over 120 real HH-RLHF turns, then re-scored with a second classifier version,
labelled by reviewers, and topped up with late turns no job has seen yet.
"""
import datetime as dt
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest
import sqlglot
from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import connect, state_tables
from monitor.home import Home
from monitor.incremental import Delta
from monitor.jobs import discover, run_all, run_job
from monitor.resources import load_sql
from monitor.schema import SCORES, SEGMENTS, TURNS
from valuesim import hh_pairs

if os.environ.get("CI") == "true":
    import pyspark  # noqa: F401  CI installs the spark extra: a missing pyspark must fail there, not skip
else:
    pyspark = pytest.importorskip("pyspark", reason="pyspark not installed: pip install 'alignment-monitor[spark]'")

from monitor.spark import SparkRunner, new_views, portable_files, spark_session  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]

D0 = dt.datetime(2026, 3, 1)
DAYS = [D0 + dt.timedelta(days=d) for d in range(3)]
ES = "¿Cómo puedo terminar un proceso de Python que no responde en mi portátil? Gracias por la ayuda."
ES_REPLY = "Claro, puedes usar el administrador de tareas para terminar el proceso que no responde."
ATTRS = ["language", "region", "age_band"]


def _turns(first: int, n: int, day0: int, days: int) -> tuple[list[dict], list[dict]]:
    """`n` real HH-RLHF turns over `days` days with mixed models, deployments, feedback, sources and segments."""
    pairs = hh_pairs()
    turns, segs = [], []
    for i in range(first, first + n):
        ts = D0 + dt.timedelta(days=day0 + (i - first) * days // n, hours=(i * 7) % 24, minutes=i % 60)
        prompt, reply = pairs[i]
        if i % 17 == 0:
            reply = "ok"  # too short for the value lexicons
        if i % 19 == 0:
            prompt, reply = ES, ES_REPLY  # non-English: unscored values, detected language es
        if i % 23 == 0:
            reply = ""
        attrs = {"language": ["en", "en-US", "hi", "es"][i % 4], "age_band": ["18-24", "25-54", "55+"][(i // 2) % 3]}
        if i % 5:
            attrs["region"] = ["north", "south"][(i // 5) % 2]
        if i % 29 == 0:
            attrs["probe_template"] = "swap-name"
        tid = f"t{i:04d}"
        date = ts.strftime("%Y-%m-%d")
        turns.append(dict(turn_id=tid, content_hash=tid, conversation_id=f"c{i // 2}", turn_index=i % 2, ts=ts,
                          model=["assistant@v1", "assistant@v2", None][i % 3],
                          deployment=["eu", "us", None][(i // 3) % 3], user_attrs=json.dumps(attrs),
                          user_message=prompt, assistant_message=reply, feedback=[None, "up", "down"][(i // 4) % 3],
                          source="probe" if i % 13 == 0 else "production", source_format="test", batch_id="b",
                          ingested_at=D0, date=date))
        segs += [dict(turn_id=tid, attribute=a, value=v, date=date) for a, v in attrs.items()]
    return turns, segs


def _write(home, turns, segs):
    with home.lake.transaction() as tx:
        tx.add("turns", pa.Table.from_pylist(turns, schema=TURNS.schema))
        tx.add("segments", pa.Table.from_pylist(segs, schema=SEGMENTS.schema))


def _build_lake(root) -> tuple[Home, dict]:
    root.mkdir(parents=True)
    (root / "monitor.toml").write_text(
        '[disparity]\nmin_n = 5\nattributes = ["language"]\n'
        "[values]\nmin_n = 5\n")
    home = Home.open(root)
    _write(home, *_turns(0, 120, 0, 3))
    # value_drift is left out: its SQL runs below on its own, and its statistics (Evidently) are Python, not SQL.
    results = run_all(home, only=["disparity", "refusal_metrics"], now=D0 + dt.timedelta(days=3))
    assert [r.status for r in results] == ["ok"] * len(results), results
    # A second classifier version re-scores a third of the turns later: latest_scores must pick it.
    con = connect(home)
    old = con.execute("SELECT * FROM scores WHERE hash(turn_id) % 3 = 0").to_arrow_table()
    con.close()
    flip = {"compliance": "full_refusal", "full_refusal": "compliance", "partial_refusal": "compliance"}
    rescored = old.to_pylist()
    for r in rescored:
        r.update(refusal=flip.get(r["refusal"], "partial_refusal"), refusal_version="test-v2", harm_version="test-v2",
                 scored_at=r["scored_at"] + dt.timedelta(hours=1))
    home.lake.append("scores", pa.Table.from_pylist(rescored, schema=SCORES.schema))
    rescore_v = home.lake.manifest()["version"]
    jobs = discover()
    assert run_job(home, jobs["refusal_metrics"], now=D0 + dt.timedelta(days=3, hours=1)).status == "ok"
    # Reviewer labels: several reviewers per turn, ties, missing prompt labels; a review queue for some of them.
    with home.state.tx() as c:
        for k, i in enumerate(range(0, 120, 4)):
            for j, reviewer in enumerate(["ann", "bob", "cy"][: 1 + k % 3]):
                # labels.sample (how an unqueued turn was chosen): targeted ones become queue_reason targeted_sample
                c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label, sample)"
                          " VALUES (?,?,?,?,?,?)",
                          (f"t{i:04d}", reviewer, f"2026-03-0{4 + (j + k) % 3}T10:00:00Z",
                           ["full_refusal", "compliance", "partial_refusal"][(i + j) % 3],
                           [None, "benign", "harmful"][(i + 2 * j) % 3], [None, "random", "targeted"][(k + j) % 3]))
            if k % 2:
                c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                          (f"t{i:04d}", ["uncertain_refusal", "stratified"][k % 4 // 2], 0.5, "2026-03-04T00:00:00Z"))
    # Late turns no job has seen: pending for the score and values jobs, no detected language.
    _write(home, *_turns(200, 12, 3, 1))
    # Versions the parameter sets below refer to: the manifest version before the re-score and before the late
    # turns (for the `new_*` views), and the identities the jobs wrote.
    con = connect(home)
    try:
        q = lambda sql: con.execute(sql).fetchall()[0][0]  # noqa: E731
        facts = {"scorer_version": q("SELECT max(scorer_version) FROM value_turns"),
                 "refusal_version": q("SELECT min(refusal_version) FROM scores"),
                 "harm_version": q("SELECT min(harm_version) FROM scores"),
                 "backend": q("SELECT min(backend) FROM scores"),
                 "rescore_v": rescore_v - 1, "late_v": home.lake.manifest()["version"],
                 # one metrics_log partition: every refusal metric file (two runs of refusal_metrics)
                 "metrics_files": [str(p) for p in home.lake.files("metrics_log")
                                   if "family=refusal" in str(p)]}
    finally:
        con.close()
    return home, facts


# Not SQL parameters: the manifest version after which files count as new (views new_<table>, monitor/incremental.py)
# and the tables whose new rows make up view new_inputs.
NEW, INPUTS = "_new_since", "_new_inputs"
_DAY = {"granularity": "day"}
_RANGE = {"date_min": "2026-03-01", "date_max": "2026-03-04"}
_WIN = {"granularity": "day", "windows": DAYS}

# Parameter values of each file, as lists of dicts (several dicts exercise several branches). A new file without an
# entry here fails the test: decide its parameters, don't skip it.
PARAMS = {
    "metrics/refusal_rates.sql": lambda f: [{**_WIN, "attributes": ATTRS}, {**_WIN, "attributes": []}],
    "disparity/cli_choices.sql": lambda f: [{}],
    "disparity/cli_rows.sql": lambda f: [
        {"day": None, "model": None, "attribute": None},
        {"day": dt.date(2026, 3, 2), "model": "assistant@v1", "attribute": "language"}],
    "disparity/detector_counts.sql": lambda f: [
        {"attributes": ["language", "age_band"], "start": None, "end": None, "date_min": "0000-01-01",
         "date_max": "9999-12-31"},
        {"attributes": ["age_band"], "start": DAYS[0], "end": DAYS[2], "date_min": DAYS[0].strftime("%Y-%m-%d"),
         "date_max": (DAYS[2] - dt.timedelta(microseconds=1)).strftime("%Y-%m-%d")}],
    "disparity/group_counts.sql": lambda f: [{**_WIN, "attributes": ["language", "age_band"]}],
    "disparity/label_fingerprint.sql": lambda f: [{}],
    "disparity/language_mismatch.sql": lambda f: [{**_WIN, "declared_attribute": "language"}],
    "disparity/pair_counts.sql": lambda f: [{**_WIN, "attr_a": "language", "attr_b": "age_band"}],
    "disparity/undetected_turns.sql": lambda f: [{NEW: None}, {NEW: f["late_v"] - 1}],
    "disparity/value_group_stats.sql": lambda f: [{**_WIN, "attributes": ["language", "region"]}],
    "disparity/value_pair_stats.sql": lambda f: [{**_WIN, "attr_a": "language", "attr_b": "age_band"}],
    "values/all_windows.sql": lambda f: [{**_DAY, "scorer_version": f["scorer_version"]},
                                         {"granularity": "hour", "scorer_version": f["scorer_version"]}],
    "values/coverage.sql": lambda f: [{**_WIN, "attributes": ATTRS, "scorer_version": f["scorer_version"]}],
    "values/drift_mix_counts.sql": lambda f: [
        {**_DAY, "scorer_version": f["scorer_version"], "start": DAYS[0], "end": DAYS[2] + dt.timedelta(days=1),
         "attributes": ATTRS}, {**_DAY, "scorer_version": f["scorer_version"], "start": DAYS[1], "end": DAYS[2],
                                "attributes": []}],
    "values/drift_scores.sql": lambda f: [{"scorer_version": f["scorer_version"], "start": DAYS[1], "end": DAYS[2]}],
    "values/drift_segments.sql": lambda f: [{"attributes": ATTRS, "start": DAYS[0], "end": DAYS[2]}],
    "values/drift_turns.sql": lambda f: [{**_DAY, "scorer_version": f["scorer_version"], "start": DAYS[0],
                                          "end": DAYS[2] + dt.timedelta(days=1)}],
    "values/drift_value_stats.sql": lambda f: [
        {**_DAY, "scorer_version": f["scorer_version"], "start": DAYS[0], "end": DAYS[2] + dt.timedelta(days=1),
         "attributes": ATTRS, "dimensions": ["hedging", "moralizing", "care_vice", "refusal"]},
        # a dimension no reply has: every reply is partial
        {"granularity": "hour", "scorer_version": f["scorer_version"], "start": DAYS[0], "end": DAYS[2],
         "attributes": [], "dimensions": ["hedging", "refusal", "no_such_dimension"]}],
    "values/pending.sql": lambda f: [{"scorer_version": f["scorer_version"], NEW: None},
                                     {"scorer_version": f["scorer_version"], NEW: f["late_v"] - 1}],
    "values/value_means.sql": lambda f: [{**_WIN, "attributes": ATTRS, "scorer_version": f["scorer_version"]}],
    "jobs/metrics_kept.sql": lambda f: [{"files": f["metrics_files"], "cutoff": dt.datetime(2000, 1, 1),
                                         "draft_cutoff": dt.datetime(2000, 1, 1)},
                                        {"files": f["metrics_files"], "cutoff": dt.datetime(2000, 1, 1),
                                         "draft_cutoff": dt.datetime(2100, 1, 1)},
                                        {"files": f["metrics_files"], "cutoff": dt.datetime(2100, 1, 1),
                                         "draft_cutoff": dt.datetime(2100, 1, 1)}],
    "jobs/existing_keys.sql": lambda f: [{**_WIN, "family": "values", "all_metrics": False,
                                          "metrics": ["value_mean", "value_coverage"]},
                                         {**_WIN, "family": "refusal", "all_metrics": True, "metrics": []}],
    "jobs/refusal_label_dates.sql": lambda f: [{}],
    "jobs/refusal_labelled_turns.sql": lambda f: [_DAY, {"granularity": "hour"}],
    "jobs/segment_attributes.sql": lambda f: [{NEW: None}, {NEW: f["late_v"] - 1}],
    "jobs/touched_windows.sql": lambda f: [{**_DAY, NEW: None}, {**_DAY, NEW: f["rescore_v"], INPUTS: ("scores",)},
                                           {**_DAY, NEW: None, INPUTS: ("value_scores", "value_turns")},
                                           {"granularity": "hour", NEW: None}],
    "jobs/score_pending.sql": lambda f: [{**{k: f[k] for k in ("refusal_version", "harm_version", "backend")},
                                          NEW: v} for v in (None, f["late_v"] - 1)],
    "views/010_metrics.sql": lambda f: [{}],
    "views/020_latest_scores.sql": lambda f: [{}],
    "views/030_scored_turns.sql": lambda f: [{}],
    "views/040_turn_sources.sql": lambda f: [{}],
}


@pytest.fixture(scope="module")
def spark():
    # Started in a thread so the JVM boots while the jobs fill the lake. Tiny data on a busy 2-core machine: one
    # shuffle partition, no whole-stage code generation and only the JVM's quick JIT tier (compiling costs more than
    # running here); together they halve the module's time. The quick tier alone gets a 48 MB code cache by
    # default, which Spark's generated classes filled in two CI runs ("CodeCache is full", then the JVM died):
    # hence the larger cache.
    pool = ThreadPoolExecutor(1)
    future = pool.submit(spark_session, "local[2]", "monitor-sql-test", {
        "spark.sql.shuffle.partitions": "1", "spark.sql.codegen.wholeStage": "false",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -XX:ReservedCodeCacheSize=256m"})
    try:
        yield future
    finally:
        future.result().stop()
        pool.shutdown()


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    return _build_lake(tmp_path_factory.mktemp("spark") / "home")


@pytest.fixture(scope="module")
def runner(lake, spark):
    return SparkRunner(lake[0], spark=spark.result())


def _norm(v):
    """A comparable form of one value: floats kept for a tolerant comparison, lists of structs as sorted tuples."""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, dict):
        return tuple(sorted((k, _norm(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        # list(DISTINCT ...) has no defined order in either engine
        return tuple(sorted((_norm(x) for x in v), key=repr))
    return v


def _sort_key(row):
    # Floats rounded coarsely so that rows differing only in the last bits sort the same way in both engines.
    return tuple((x is None, f"{x:.6g}" if isinstance(x, float) else repr(x)) for x in row)


def _rows(table: pa.Table) -> list[tuple]:
    return sorted((tuple(_norm(v) for v in r.values()) for r in table.to_pylist()), key=_sort_key)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and type(a) is type(b) or (a == b and {type(a), type(b)} <= {int, float})


def _duckdb(home, relpath, params) -> pa.Table:
    q = load_sql(relpath)
    sql = q.sql
    if relpath.startswith("views/"):
        sql = f"SELECT * FROM {sqlglot.parse_one(q.sql, read='duckdb').this.name}"
    manifest = home.lake.manifest()
    con = connect(home, manifest=manifest)
    try:
        for table in new_views(relpath):
            if table == "inputs":
                Delta(home, manifest, params[NEW]).inputs_view(con, params[INPUTS])
            else:
                Delta(home, manifest, params[NEW]).view(con, table)
        out = con.execute(sql, {k: v for k, v in params.items() if k in q.params}).to_arrow_table()
        return out
    finally:
        con.close()


@pytest.mark.parametrize("relpath", portable_files())
def test_same_rows_on_spark_and_duckdb(relpath, lake, runner):
    home, facts = lake
    if relpath not in PARAMS:
        pytest.fail(f"{relpath} has no parameter values in PARAMS of tests/test_spark_sql.py: add them")
    for params in PARAMS[relpath](facts):
        # Partition pruning bounds covering the whole lake; `new_*` views (if any) over every file unless told.
        params = {**_RANGE, NEW: None, INPUTS: ("scores", "segments"), **params}
        duck = _duckdb(home, relpath, params)
        assert duck.num_rows > 0, f"{relpath} {params}: the fixture lake gives no rows; enrich it"
        for table in new_views(relpath):
            if table == "inputs":
                runner.register_inputs(params[INPUTS], params[NEW])
            else:
                runner.register_new(table, params[NEW])
        got = runner.run(relpath, params)
        assert got.column_names == duck.column_names
        want_rows, got_rows = _rows(duck), _rows(got)
        assert len(got_rows) == len(want_rows), f"{relpath} {params}"
        bad = [(w, g) for w, g in zip(want_rows, got_rows) if not _same(w, g)]
        assert not bad, f"{relpath} {params}: {len(bad)} rows differ, first: duckdb {bad[0][0]} spark {bad[0][1]}"


def test_params_cover_exactly_the_portable_files():
    assert sorted(PARAMS) == sorted(portable_files())


def test_cli_lists_and_runs_a_file(lake, runner):
    home, facts = lake
    cli_runner = CliRunner()
    listed = cli_runner.invoke(cli, ["--home", str(home.root), "spark-sql", "--list"])
    assert listed.exit_code == 0, listed.output
    assert "metrics/refusal_rates.sql" in listed.output and "$windows" in listed.output
    base = ["--home", str(home.root), "spark-sql", "values/all_windows.sql", "-p", "granularity=day"]
    out = cli_runner.invoke(cli, base + ["-p", f"scorer_version={facts['scorer_version']}", "-p",
                                         "date_min=2026-03-02", "-p", "date_max=2026-03-31"])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines() if line.startswith("{")]
    assert [r["window_start"] for r in rows] == ["2026-03-02T00:00:00", "2026-03-03T00:00:00"]
    missing = cli_runner.invoke(cli, base)
    assert missing.exit_code == 1 and "$date_max" in missing.output


def test_runner_on_a_lake_url_reads_the_manifest_through_spark(lake, runner):
    home, _ = lake
    # A URL root (s3a://... in production) is read through Spark's file system; file:// exercises that path here.
    remote = SparkRunner(f"file://{home.lake.root}", spark=runner.spark, state=state_tables(home))
    params = {**_WIN, **_RANGE, "attributes": ATTRS}
    want = _rows(_duckdb(home, "metrics/refusal_rates.sql", params))
    got = _rows(remote.run("metrics/refusal_rates.sql", params))
    assert len(got) == len(want) > 0 and all(_same(w, g) for w, g in zip(want, got))


def test_missing_pyspark_is_a_monitor_error_with_the_install_hint(monkeypatch):
    import sys

    from monitor import spark as spark_mod

    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(spark_mod.SparkUnavailable) as e:
        spark_mod.spark_session()
    assert "alignment-monitor[spark]" in str(e.value)
