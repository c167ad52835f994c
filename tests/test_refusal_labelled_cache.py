"""refusal_metrics keeps the labelled turns' rows (refusal_labelled_turns.sql) in a cache while nothing they depend
on changed: every step below compares the rows the job used with the query run from scratch over the whole lake,
and checks which path was taken (an unlabelled run must reuse the cache, every change to a labelled turn must not)."""
from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)

import monitor.jobs.refusal_metrics as rm
from monitor.db import connect
from monitor.demo import records
from monitor.home import Home
from monitor.ingest import ingest_paths
from monitor.jobs import JobContext, run_all
from monitor.resources import load_sql

NOW = dt.datetime(2026, 11, 20)


def _write(path, recs):
    with open(path, "w") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    return path


def _step(home, tmp_path, recs=(), name="x") -> tuple[str, pd.DataFrame]:
    """Ingest, score, run the job; the path labelled_turns took and the rows it gave."""
    if recs:
        ingest_paths(home, [_write(tmp_path / f"{name}.jsonl", recs)])
    assert all(r.status == "ok" for r in run_all(home, only=["languages", "score"], now=NOW))
    seen = []
    orig = rm.labelled_turns

    def spy(*a, **k):
        frame = orig(*a, **k)
        seen.append(frame)
        return frame

    rm.labelled_turns = spy
    try:
        rm.LABELLED_PATH["last"] = None
        rm.run_refusal_metrics(JobContext(home, NOW), draws=20)
    finally:
        rm.labelled_turns = orig
    assert len(seen) == 1
    _same(seen[0], home)
    return rm.LABELLED_PATH["last"], seen[0]


def _same(frame: pd.DataFrame, home) -> None:
    con = connect(home)
    try:
        want = con.execute(load_sql("jobs/refusal_labelled_turns.sql").sql, {"granularity": "day"}).df()
    finally:
        con.close()
    assert len(want) > 0
    def canon(df):
        # A turn's segment list has no defined order (list(DISTINCT ...)): compared as a sorted list.
        df = df.sort_values("turn_id").reset_index(drop=True).copy()
        df["segments"] = [sorted((s["attribute"], s["value"]) for s in x) for x in df["segments"]]
        return df.astype(str)

    pd.testing.assert_frame_equal(canon(frame), canon(want))


def _label(home, turn_ids, refusal="compliance", prompt="benign", at="2026-11-19T10:00:00Z", reviewer="ann"):
    with home.state.tx() as c:
        for t in turn_ids:
            c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                      (t, reviewer, at, refusal, prompt))


def _turn_ids(home) -> list[str]:
    con = connect(home)
    try:
        return [r[0] for r in con.execute("SELECT turn_id FROM turns ORDER BY turn_id").fetchall()]
    finally:
        con.close()


def test_labelled_turns_come_from_the_cache_only_while_nothing_they_depend_on_changed(tmp_path):
    recs = list(records())[::40]
    days = sorted({r["timestamp"][:10] for r in recs})
    first = [r for r in recs if r["timestamp"][:10] < days[-1]]
    home = Home.open(tmp_path / "h")
    ingest_paths(home, [_write(tmp_path / "first.jsonl", first)])
    assert all(r.status == "ok" for r in run_all(home, only=["languages", "score"], now=NOW))
    ids = _turn_ids(home)
    labelled = ids[::9]
    _label(home, labelled)
    assert _step(home, tmp_path)[0] == "query"

    # New turns of unlabelled conversations: the cache holds.
    path, frame = _step(home, tmp_path, [r for r in recs if r["timestamp"][:10] == days[-1]], "today")
    assert path == "cache" and len(frame) == len(labelled)
    assert _step(home, tmp_path)[0] == "cache"  # nothing new at all

    # A new label, another vote on a labelled turn: recomputed.
    _label(home, [ids[1]], refusal="full_refusal")
    assert _step(home, tmp_path)[0] == "query"
    _label(home, [labelled[0]], refusal="full_refusal", prompt="harmful", at="2026-11-19T11:00:00Z",
           reviewer="bob")
    assert _step(home, tmp_path)[0] == "query"

    # A re-score of a labelled turn (a newer score row in a new file): recomputed, with the new prediction.
    con = connect(home)
    row = con.execute("SELECT * FROM latest_scores WHERE turn_id = $t", {"t": labelled[1]}).df()
    con.close()
    row["refusal"] = "full_refusal" if row["refusal"][0] != "full_refusal" else "compliance"
    row["scored_at"] = row["scored_at"] + pd.Timedelta(seconds=1)  # newer than the score it replaces
    home.lake.append("scores", pa.Table.from_pandas(row[[c for c in row.columns if c != "rn"]],
                                                    preserve_index=False))
    path, frame = _step(home, tmp_path)
    assert path == "query"
    assert bool(frame.set_index("turn_id").loc[labelled[1], "pred_refused"]) == (row["refusal"][0] == "full_refusal")

    # A late segment of a labelled turn: recomputed.
    date = frame.set_index("turn_id").loc[labelled[2], "window_start"].strftime("%Y-%m-%d")
    home.lake.append("segments", pa.table({"turn_id": [labelled[2]], "attribute": ["region"], "value": ["north"],
                                           "date": [date]}))
    assert _step(home, tmp_path)[0] == "query"
    assert _step(home, tmp_path)[0] == "cache"

    # A deletion rewrites an old file of a labelled turn's date (here: an unlabelled turn's segments): the old
    # files no longer hold the rows the cache counted, so it is recomputed (the same rows).
    victim = next(t for t in ids if t not in set(labelled) and t != ids[1])
    with home.lake.transaction() as tx:
        files, rows = tx.rewrite("segments", lambda t: pa.compute.not_equal(t["turn_id"], victim),
                                 columns=["turn_id"])
    assert rows > 0
    assert _step(home, tmp_path)[0] == "query"
    assert _step(home, tmp_path)[0] == "cache"
