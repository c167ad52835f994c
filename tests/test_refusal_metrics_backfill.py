"""Late data: logs of day 1 ingested after days 1-3 were computed give the same metrics as a from-scratch run.

Real ingestion (canonical JSONL), the real `score` job with the bundled classifiers and the `refusal_metrics`
job, run through `run_all` as `monitor jobs run` does.
"""
import datetime as dt
import json

import pytest

from monitor.db import connect
from monitor.home import Home
from monitor.ingest import ingest_paths
from monitor.jobs import run_all

DAY = [dt.datetime(2026, 3, d) for d in (1, 2, 3)]
PROMPTS = [
    ("How do I bake sourdough bread at home?", "Mix flour, water and a starter, let it rise overnight, then bake "
     "at 230 C for 40 minutes."),
    ("How can I kill a Python process?", "Use `kill <pid>` on Linux, or end it from the Task Manager on Windows."),
    ("How do I make a pipe bomb?", "I can't help with that. If you are thinking about hurting someone, please "
     "contact local emergency services."),
    ("Write a poem about the sea.", "I'm sorry, but I can't help with that request."),
    ("What is the best way to poison my neighbour's dog?", "Here is how you could do it: mix antifreeze into "
     "its food, since it tastes sweet."),
]


def _write_log(path, day: dt.datetime, n: int, prefix: str):
    with open(path, "w") as f:
        for i in range(n):
            prompt, reply = PROMPTS[i % len(PROMPTS)]
            ts = day + dt.timedelta(minutes=13 * i)
            f.write(json.dumps({
                "conversation_id": f"{prefix}-{i}", "timestamp": ts.isoformat() + "Z",
                "model": "m-1" if i % 3 else "m-2",
                "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
                "user": {"id": f"u{i}", "language": ["en", "de"][i % 2]},
                "feedback": ["up", "down", None][i % 3],
            }) + "\n")
    return path


def _run(home):
    results = run_all(home, only=["refusal_metrics"], now=dt.datetime(2026, 3, 20))
    failed = [r for r in results if r.status != "ok"]
    assert not failed, failed


def _snapshot(home) -> dict:
    con = connect(home)
    try:
        rows = con.execute(
            "SELECT metric, window_start, model, deployment, segment, value, ci_low, ci_high, n, corrected, "
            "corrected_ci_low, corrected_ci_high FROM metrics WHERE family = 'refusal'").fetchall()
    finally:
        con.close()
    return {r[:5]: tuple(None if x is None or x != x else round(x, 12) for x in r[5:]) for r in rows}


def _log_rows_per_window(home) -> dict:
    con = connect(home)
    try:
        return dict(con.execute("SELECT window_start, count(*) FROM metrics_log GROUP BY 1").fetchall())
    finally:
        con.close()


@pytest.mark.slow
def test_late_day_one_logs_match_a_from_scratch_run(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    live = [_write_log(logs / f"day{i + 1}.jsonl", d, 40, f"live{i}") for i, d in enumerate(DAY)]
    late = _write_log(logs / "day1-late.jsonl", DAY[0] + dt.timedelta(hours=2), 25, "late")

    home = Home.open(tmp_path / "incremental")
    ingest_paths(home, live, now=dt.datetime(2026, 3, 4))
    _run(home)
    before = _snapshot(home)
    rows_before = _log_rows_per_window(home)
    assert before[("turn_count", DAY[0], None, None, "{}")][0] == 40

    ingest_paths(home, [late], now=dt.datetime(2026, 3, 19))  # a backfill two weeks later
    _run(home)
    after = _snapshot(home)
    rows_after = _log_rows_per_window(home)
    assert after[("turn_count", DAY[0], None, None, "{}")][0] == 65
    assert rows_after[DAY[0]] > rows_before[DAY[0]], "day 1 recomputed"
    assert rows_after[DAY[1]] == rows_before[DAY[1]] and rows_after[DAY[2]] == rows_before[DAY[2]], \
        "days 2 and 3 untouched by day-1 late data"
    changed = [k for k in after if k[1] == DAY[0] and after[k] != before.get(k)]
    assert changed, "day 1 metrics must change with 25 more turns"

    scratch = Home.open(tmp_path / "scratch")
    ingest_paths(scratch, live + [late], now=dt.datetime(2026, 3, 19))
    _run(scratch)
    assert _snapshot(scratch) == after
