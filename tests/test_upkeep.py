"""metrics_log upkeep: superseded metric rows are dropped after the history period, the `metrics` view never changes."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa

from monitor.db import connect
from monitor.jobs import JobContext
from monitor.jobs.compact import compact
from monitor.schema import METRICS
from monitor.upkeep import prune_superseded_metrics

W = dt.datetime(2026, 11, 1)
NOW = dt.datetime(2026, 11, 20)


def _run(home, at: dt.datetime, run_id: str, windows: list[dt.datetime], value: float, family="refusal"):
    rows = [{"metric": "refusal_rate", "granularity": "day", "window_start": w, "window_end": w + dt.timedelta(days=1),
             "model": None, "deployment": None, "segment": "{}", "value": value, "n": 100, "job": "refusal_metrics",
             "run_id": run_id, "computed_at": at, "family": family} for w in windows]
    home.lake.append(METRICS.name, pa.Table.from_pylist(rows, schema=METRICS.schema))


def _view(home):
    con = connect(home)
    try:
        return con.execute("SELECT metric, window_start, value, run_id FROM metrics ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_superseded_rows_go_after_the_history_period_and_the_view_is_unchanged(home):
    w2 = W + dt.timedelta(days=1)
    _run(home, NOW - dt.timedelta(days=30), "r1", [W, w2], 0.1)
    _run(home, NOW - dt.timedelta(days=20), "r2", [W], 0.2)  # supersedes r1 for W 20 days ago
    _run(home, NOW - dt.timedelta(days=1), "r3", [w2], 0.3)  # supersedes r1 for w2 yesterday: kept for now
    _run(home, NOW - dt.timedelta(days=1), "r4", [W], 0.4, family="values")  # another partition, nothing to drop
    before = _view(home)
    assert home.lake.row_count(METRICS.name) == 5
    assert prune_superseded_metrics(home, NOW, history_days=7) == 1  # r1's row for W
    assert _view(home) == before
    con = connect(home)
    try:
        left = con.execute("SELECT run_id, window_start FROM metrics_log ORDER BY ALL").fetchall()
    finally:
        con.close()
    assert left == [("r1", w2), ("r2", W), ("r3", w2), ("r4", W)]
    assert prune_superseded_metrics(home, NOW, history_days=7) == 0  # nothing more, no new commit needed
    # The log has not grown since: pruning waits (its cost must follow new rows), unless forced.
    assert prune_superseded_metrics(home, NOW + dt.timedelta(days=7), history_days=7) == 0
    assert prune_superseded_metrics(home, NOW + dt.timedelta(days=7), history_days=7, force=True) == 1
    assert _view(home) == before


def test_compact_job_prunes_then_merges(home):
    for i in range(6):
        _run(home, NOW - dt.timedelta(days=30 - i), f"r{i}", [W], float(i))
    before = _view(home)
    compact(JobContext(home, NOW))
    assert _view(home) == before
    entries = home.lake.manifest()["tables"][METRICS.name]
    assert len(entries) == 1 and entries[0]["rows"] == 1


def test_retention_job_sweeps_orphans_only_after_a_deletion(home, monkeypatch):
    import monitor.jobs.retention as R

    calls = []
    monkeypatch.setattr(R, "sweep_orphans", lambda h, actor: calls.append(1) or {})
    ctx = JobContext(home, NOW)
    R.retention(ctx)  # first run: sweeps once to start from a clean state
    R.retention(ctx)
    R.retention(ctx)
    assert len(calls) == 1
    with home.state.tx() as con:
        home.state.audit(con, "cli", "user.forget", "user:sha256:x", {})
    R.retention(ctx)
    R.retention(ctx)  # one more after the deletion's own, for a score run that committed late
    R.retention(ctx)
    assert len(calls) == 3


def test_drafts_of_an_open_window_go_after_an_hour(home):
    """Each run rewrites today's window with the day so far: those drafts go an hour after a newer computation of
    the window (not after the history period); the last computation before the window closed, and revisions of a
    closed window (late data), stay the history period. The `metrics` view never changes."""
    day = dt.datetime(2026, 11, 19)  # the window [day, day + 1)
    at = [day + dt.timedelta(hours=h) for h in (9, 10, 11)] + [day + dt.timedelta(days=1, hours=2)]
    for i, t in enumerate(at):  # three runs during the day, one after it closed
        _run(home, t, f"d{i}", [day], float(i))
    _run(home, day - dt.timedelta(days=2), "old", [W], 0.5)          # a closed window computed long after it closed,
    _run(home, day + dt.timedelta(days=1), "late", [W], 0.6)        # revised by late data: a revision, not a draft
    now = day + dt.timedelta(days=1, hours=3)
    before = _view(home)
    assert prune_superseded_metrics(home, now, history_days=7, force=True) == 2  # d0 and d1
    con = connect(home)
    try:
        left = {r[0] for r in con.execute("SELECT run_id FROM metrics_log").fetchall()}
    finally:
        con.close()
    assert left == {"d2", "d3", "old", "late"} and _view(home) == before
    # a draft superseded less than an hour ago stays (a reader may be looking at it)
    _run(home, now + dt.timedelta(minutes=1), "t0", [now.replace(hour=0)], 1.0)
    _run(home, now + dt.timedelta(minutes=6), "t1", [now.replace(hour=0)], 2.0)
    assert prune_superseded_metrics(home, now + dt.timedelta(minutes=30), history_days=7, force=True) == 0
    assert prune_superseded_metrics(home, now + dt.timedelta(hours=2), history_days=7, force=True) == 1
