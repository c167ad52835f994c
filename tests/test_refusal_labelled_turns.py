"""sql/jobs/refusal_labelled_turns.sql: reviewer truth next to the newest classifier output of each labelled turn."""
import datetime as dt

import pyarrow as pa

from monitor.db import connect
from monitor.resources import load_sql

D1, D2 = dt.datetime(2026, 3, 1, 9), dt.datetime(2026, 3, 2, 9)


def _score(turn_id, day, refusal, harm, at):
    return {"turn_id": turn_id, "refusal": refusal, "prompt_harm": harm, "refusal_version": "r1",
            "harm_version": "h1", "backend": "lexical", "scored_at": at, "date": day.strftime("%Y-%m-%d")}


def test_newest_score_segments_votes_and_unscored_turns(home):
    turns = [("a", D1, "m1"), ("b", D1, "m2"), ("c", D2, "m1"), ("d", D2, "m1"), ("e", D2, "m1")]
    home.lake.append("turns", pa.table({"turn_id": [t for t, _, _ in turns], "ts": [d for _, d, _ in turns],
                                        "model": [m for _, _, m in turns], "deployment": ["web"] * 5,
                                        "date": [d.strftime("%Y-%m-%d") for _, d, _ in turns]}))
    old, new = dt.datetime(2026, 3, 3), dt.datetime(2026, 3, 4)
    home.lake.append("scores", pa.Table.from_pylist([
        _score("a", D1, "compliance", "benign", old), _score("a", D1, "full_refusal", "harmful", new),  # re-scored
        _score("b", D1, "partial_refusal", None, old),
        _score("c", D2, "compliance", "harmful", new), _score("c", D2, "full_refusal", "benign", old),
        _score("e", D2, None, "benign", new), _score("e", D2, "compliance", "benign", old),  # newest has no refusal
    ]))  # d: never scored
    home.lake.append("segments", pa.table({"turn_id": ["a", "a", "c", "zz"], "attribute": ["language"] * 3 + ["x"],
                                           "value": ["de", "de", "fr", "y"],
                                           "date": ["2026-03-01", "2026-03-01", "2026-03-02", "2026-03-02"]}))
    with home.state.tx() as c:
        for i, (tid, reviewer, refusal, prompt) in enumerate([
            ("a", "ann", "compliance", "harmful"), ("a", "bob", "compliance", "benign"),
            ("a", "cy", "full_refusal", None),  # refused: 1 yes vs 2 no; prompt: tie, latest (bob) says benign
            ("b", "ann", "partial_refusal", None), ("c", "ann", None, "harmful"),
            ("d", "ann", "compliance", "benign"), ("e", "ann", "compliance", "benign")]):
            c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                      (tid, reviewer, f"2026-03-05T10:00:0{i}Z", refusal, prompt))
        c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES ('c', 'stratified', 0.5, "
                  "'2026-03-04T00:00:00Z')")
    con = connect(home)
    rows = con.execute(load_sql("jobs/refusal_labelled_turns.sql").sql, {"granularity": "day"}).fetchall()
    got = [(r[0], r[1], r[2], r[4], r[5], r[6], r[7], r[8], r[9], sorted((s["attribute"], s["value"]) for s in r[10]))
           for r in rows]
    assert got == [
        ("a", dt.datetime(2026, 3, 1), "m1", False, False, True, True, 3, "unqueued", [("language", "de")]),
        ("b", dt.datetime(2026, 3, 1), "m2", True, None, True, None, 1, "unqueued", []),
        ("c", dt.datetime(2026, 3, 2), "m1", None, True, False, True, 1, "stratified", [("language", "fr")]),
    ]
