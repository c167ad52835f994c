"""Incremental jobs: a run reads only the lake files committed since the last one, and gives the same metrics as
computing everything at once (late data included)."""
from __future__ import annotations

import datetime as dt
import itertools
import json

import pyarrow as pa
import pytest

from monitor.db import connect
from monitor.demo import records
from monitor.home import Home
from monitor.incremental import Delta, date_bounds, touched_windows
from monitor.ingest import ingest_paths
from monitor.jobs import run_all

NOW = dt.datetime(2026, 11, 20)
JOBS = ["languages", "score", "values", "refusal_metrics", "disparity", "value_drift"]


def _turns(n: int, date: str) -> pa.Table:
    return pa.table({"turn_id": [f"{date}-{i}" for i in range(n)], "date": [date] * n})


def test_delta_reads_only_files_committed_after_the_watermark(home):
    home.lake.append("turns", _turns(3, "2026-11-01"))
    d0 = Delta.open(home, "k", "id-1")
    assert d0.since is None and len(d0.entries("turns")) == 1 and d0.dates("turns") == ("2026-11-01", "2026-11-01")
    d0.save("k", "id-1")
    assert Delta.open(home, "k", "id-1").entries("turns") == []
    home.lake.append("turns", _turns(2, "2026-11-03"))
    home.lake.append("turns", _turns(2, "2026-10-30"))  # a late file: an older date, a newer commit
    d1 = Delta.open(home, "k", "id-1")
    assert d1.since == d0.version and len(d1.entries("turns")) == 2
    assert d1.dates("turns") == ("2026-10-30", "2026-11-03")
    con = connect(home, manifest=d1.manifest)
    try:
        d1.view(con, "turns")
        assert con.execute("SELECT count(*) FROM new_turns").fetchone()[0] == 4
        assert con.execute("SELECT count(*) FROM turns").fetchone()[0] == 7
    finally:
        con.close()
    # Another identity (a new classifier version) starts from scratch.
    assert Delta.open(home, "k", "id-2").since is None


def test_compaction_keeps_the_newest_commit_of_what_it_merges(home):
    for _ in range(4):
        home.lake.append("turns", _turns(2, "2026-11-01"))
    Delta.open(home, "k", "x").save("k", "x")
    assert home.lake.compact("turns") == 4
    # The merged file carries the commit of its newest input, which the watermark already covers.
    assert Delta.open(home, "k", "x").entries("turns") == []
    for _ in range(4):  # as many new rows as old ones: compaction's size tiers merge them all together
        home.lake.append("turns", _turns(2, "2026-11-01"))
    d = Delta.open(home, "k", "x")
    assert len(d.entries("turns")) == 4
    home.lake.compact("turns", min_files=2)
    # Old and new rows merged: the file counts as new (read again; consumers skip what they already wrote).
    assert [e["rows"] for e in Delta.open(home, "k", "x").entries("turns")] == [16]


def test_touched_windows_are_the_windows_of_the_new_rows_turns(home):
    """Daily windows come from the new rows' date partitions alone; they must be the windows the turns' timestamps
    give (as hourly ones are read), for late files and inputs other than turns too."""
    def turns(ids, stamps):
        return pa.table({"turn_id": ids, "ts": pa.array(stamps, pa.timestamp("us")),
                         "date": [s.date().isoformat() for s in stamps]})

    old = [dt.datetime(2026, 11, 1, 23, 59, 59), dt.datetime(2026, 11, 2, 0, 0), dt.datetime(2026, 11, 2, 13, 5)]
    home.lake.append("turns", turns(["a", "b", "c"], old))
    Delta.open(home, "w", "x").save("w", "x")
    # New: one turn of a new day, a late turn of an old day, and a re-score of an old turn (scores only).
    home.lake.append("turns", turns(["d", "e"], [dt.datetime(2026, 11, 5, 7, 30), dt.datetime(2026, 10, 30, 0, 0)]))
    home.lake.append("scores", pa.table({"turn_id": ["a"], "date": ["2026-11-01"]}))
    delta = Delta.open(home, "w", "x")
    stamps = {"a": old[0], "d": dt.datetime(2026, 11, 5, 7, 30), "e": dt.datetime(2026, 10, 30, 0, 0)}
    for granularity in ("day", "hour"):
        con = connect(home, manifest=delta.manifest)
        try:
            got = touched_windows(con, delta, ("turns", "scores"), granularity)
        finally:
            con.close()
        want = sorted({s.replace(minute=0, second=0, microsecond=0) if granularity == "hour"
                       else dt.datetime.combine(s.date(), dt.time()) for s in stamps.values()})
        assert got == want, granularity


def test_date_bounds_cover_every_window():
    w = [dt.datetime(2026, 11, 3), dt.datetime(2026, 11, 1)]
    assert date_bounds(w, "day") == ("2026-11-01", "2026-11-03")
    assert date_bounds([dt.datetime(2026, 11, 3, 23)], "hour") == ("2026-11-03", "2026-11-03")


def _write(path, recs):
    with open(path, "w") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    return path


def _metrics(home: Home) -> list[tuple]:
    con = connect(home)
    try:
        rows = con.execute(
            "SELECT metric, granularity, window_start, model, deployment, segment, round(value, 9), n, "
            "round(ci_low, 9), round(ci_high, 9), numerator, small_sample FROM metrics "
            "WHERE metric NOT LIKE 'detector_%' ORDER BY ALL").fetchall()
    finally:
        con.close()
    return rows


@pytest.mark.slow
def test_incremental_runs_equal_one_run_over_everything(tmp_path):
    recs = list(itertools.islice(records(), 1600))
    days = sorted({r["timestamp"][:10] for r in recs})
    cut = days[len(days) // 2]
    early = [r for r in recs if r["timestamp"][:10] < cut]
    late_ids = {r["conversation_id"] for r in early[::15]}  # held back: they arrive with the second batch
    first = [r for r in early if r["conversation_id"] not in late_ids]
    second = [r for r in recs if r not in first]
    cfg = "[values]\nreference_days = 3\n"

    inc = Home.open(tmp_path / "inc")
    (inc.root / "monitor.toml").write_text(cfg)
    inc = Home.open(tmp_path / "inc")
    ingest_paths(inc, [_write(tmp_path / "a.jsonl", first)])
    assert all(r.status == "ok" for r in run_all(inc, only=JOBS, now=NOW))
    ingest_paths(inc, [_write(tmp_path / "b.jsonl", second)])
    res = {r.job: r for r in run_all(inc, only=JOBS, now=NOW)}
    assert all(r.status == "ok" for r in res.values())
    assert res["score"].rows == len(second)  # only the new turns are scored

    full = Home.open(tmp_path / "full")
    (full.root / "monitor.toml").write_text(cfg)
    full = Home.open(tmp_path / "full")
    ingest_paths(full, [_write(tmp_path / "all.jsonl", recs)])
    assert all(r.status == "ok" for r in run_all(full, only=JOBS, now=NOW))

    got, want = _metrics(inc), _metrics(full)
    assert len(want) > 500
    assert got == want

    # Nothing new: a third run writes nothing at all.
    again = {r.job: r.rows for r in run_all(inc, only=JOBS, now=NOW)}
    assert set(JOBS) <= set(again) and set(again.values()) == {0}


def _scores(home: Home) -> list[tuple]:
    con = connect(home)
    try:
        return con.execute("SELECT turn_id, refusal, round(refusal_score, 12), prompt_harm, "
                           "round(prompt_harm_score, 12), prompt_harm_category FROM scores ORDER BY turn_id").fetchall()
    finally:
        con.close()


def test_parallel_scoring_equals_scoring_in_one_process(tmp_path):
    from monitor.jobs import JobContext
    from monitor.jobs.score import run_score, worker_count

    recs = list(itertools.islice(records(), 450))
    path = _write(tmp_path / "r.jsonl", recs)
    got = {}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        root.mkdir()
        (root / "monitor.toml").write_text(f"[classifiers]\nworkers = {workers}\n")
        home = Home.open(root)
        ingest_paths(home, [path])
        assert worker_count(home, "lexical", 450, min_parallel=100) == (0 if workers == 1 else 2)
        assert run_score(JobContext(home, NOW), batch_rows=100, min_parallel=100) == 450
        got[workers] = _scores(home)
        assert run_score(JobContext(home, NOW), batch_rows=100, min_parallel=100) == 0  # nothing new
    assert len(got[1]) == 450 and got[1] == got[2]
    assert worker_count(home, "llm_judge", 10_000) == 0  # a remote judge's budget is not shared out
    assert worker_count(home, "lexical", 1_000) == 0  # too few to be worth forking


def test_parallel_language_detection_equals_detection_in_one_process(tmp_path, monkeypatch):
    import monitor.disparity.language as L

    path = _write(tmp_path / "r.jsonl", list(itertools.islice(records(), 300)))
    got = {}
    for parallel in (False, True):
        monkeypatch.setattr(L, "MIN_PARALLEL", 10 if parallel else 10**9)
        monkeypatch.setattr(L.os, "cpu_count", lambda: 2)
        home = Home.open(tmp_path / f"p{parallel}")
        ingest_paths(home, [path])
        assert len(L.detect_new_turns(home, batch=120)) == 300
        con = connect(home)
        try:
            got[parallel] = con.execute("SELECT turn_id, value FROM segments WHERE attribute = 'detected_language' "
                                        "ORDER BY turn_id").fetchall()
        finally:
            con.close()
        assert L.detect_new_turns(home) == []  # nothing new
    assert len(got[False]) == 300 and got[True] == got[False]
    assert len({v for _, v in got[True]}) > 1  # the demo traffic is multilingual
