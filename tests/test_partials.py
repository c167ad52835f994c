"""monitor.partials: a day's cached sums extended with its new turns equal the day recomputed from all its rows.

Each step changes the lake the way the pipeline can (new turns, a re-score, a late segment, a deletion, compaction
that merges old and new rows, an identity change) and compares DateSums.rows() with the same query over the whole
lake, and checks which path was taken (extending must not be the one taken when it would be wrong).
"""
import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from monitor import db
from monitor.partials import DateSums
from monitor.schema import SCORES, SEGMENTS, TURNS

DAY_A, DAY_B = "2026-03-01", "2026-03-02"

QUERY = """
SELECT date_trunc('day', t.ts) AS window_start, coalesce(t.model, 'unknown') AS model, g.value AS language,
       count(*) AS n, count(*) FILTER (WHERE s.refusal = 'full_refusal') AS refusals, sum(s.refusal_score) AS total
FROM turns AS t
JOIN latest_scores AS s ON s.turn_id = t.turn_id AND s.date = t.date
LEFT JOIN segments AS g ON g.turn_id = t.turn_id AND g.date = t.date AND g.attribute = 'language'
WHERE t.date BETWEEN $date_min AND $date_max
GROUP BY ALL
"""


def query(con, date_min, date_max):
    return con.execute(QUERY, {"date_min": date_min, "date_max": date_max}).df()


def _table(spec, rows):
    return pa.Table.from_pylist([{f.name: r.get(f.name) for f in spec.schema} for r in rows], schema=spec.schema)


def add_turns(home, prefix, day, n, scored_at=dt.datetime(2026, 3, 3)):
    base = dt.datetime.fromisoformat(day)
    turns, scores, segs = [], [], []
    for i in range(n):
        tid = f"{prefix}-{i}"
        turns.append({"turn_id": tid, "ts": base + dt.timedelta(minutes=7 * i), "model": ("m1", "m2", None)[i % 3],
                      "date": day})
        scores.append({"turn_id": tid, "refusal": "full_refusal" if i % 4 == 0 else "compliance",
                       "refusal_score": (i % 10) / 10, "scored_at": scored_at, "date": day})
        if i % 5:
            segs.append({"turn_id": tid, "attribute": "language", "value": ("en", "hi", "de")[i % 3], "date": day})
    with home.lake.transaction() as tx:
        tx.add("turns", _table(TURNS, turns))
        tx.add("scores", _table(SCORES, scores))
        tx.add("segments", _table(SEGMENTS, segs))


def sums(home, identity="q1"):
    return DateSums(home, "test.q", identity, ("turns", "scores", "segments"), ("n", "refusals", "total"))


def check(home, ds, dates, expect):
    got = ds.rows(home.lake.manifest(), dates, query)
    con = db.connect(home)
    try:
        want = query(con, min(dates), max(dates))
    finally:
        con.close()
    keys = ["window_start", "model", "language"]
    assert set(got.columns) == set(want.columns)
    got = got[list(want.columns)].sort_values(keys, na_position="first").reset_index(drop=True)
    want = want.sort_values(keys, na_position="first").reset_index(drop=True)
    assert len(got) == len(want) > 0
    for c in want.columns:
        if c == "total":
            assert got[c].to_numpy() == pytest.approx(want[c].to_numpy(), rel=1e-12)
        elif c in ("n", "refusals"):
            assert got[c].astype("int64").tolist() == want[c].astype("int64").tolist()
        else:
            assert got[c].astype(object).where(got[c].notna(), None).tolist() == \
                want[c].astype(object).where(want[c].notna(), None).tolist(), c
    assert {k: v for k, v in ds.stats.items() if v} == expect


def test_extends_with_new_turns_and_recomputes_when_it_would_be_wrong(home):
    ds = sums(home)
    add_turns(home, "a", DAY_A, 30)
    check(home, ds, [DAY_A], {"recomputed": 1})
    check(home, ds, [DAY_A], {"cached": 1})  # nothing new

    add_turns(home, "a2", DAY_A, 20)
    add_turns(home, "b", DAY_B, 9)
    check(home, ds, [DAY_A, DAY_B], {"extended": 1, "recomputed": 1})

    # Re-scored old turns: their contribution changes, so the day is recomputed.
    rescored = [{"turn_id": f"a-{i}", "refusal": "full_refusal", "refusal_score": 0.99,
                 "scored_at": dt.datetime(2026, 3, 4), "date": DAY_A} for i in range(3)]
    home.lake.append("scores", _table(SCORES, rescored))
    check(home, ds, [DAY_A], {"recomputed": 1})

    # A segment detected late for an old turn (turn a-0 had none): recomputed.
    home.lake.append("segments", _table(SEGMENTS, [{"turn_id": "a-0", "attribute": "language", "value": "fr",
                                                    "date": DAY_A}]))
    check(home, ds, [DAY_A], {"recomputed": 1})

    # New turns again: extended on top of the recomputed cache.
    add_turns(home, "a3", DAY_A, 11)
    check(home, ds, [DAY_A], {"extended": 1})


def computed_day(home, n):
    """A DateSums whose cache holds day A with `n` turns (computed from all rows)."""
    ds = sums(home)
    add_turns(home, "a", DAY_A, n)
    check(home, ds, [DAY_A], {"recomputed": 1})
    return ds


def test_a_deletion_recomputes_the_day(home):
    ds = computed_day(home, 30)
    with home.lake.transaction() as tx:  # rewritten files keep their commit version: only the row counts tell
        tx.rewrite("turns", lambda t: pc.invert(pc.is_in(t["turn_id"], pa.array(["a-1", "a-2"]))),
                   columns=["turn_id"])
    add_turns(home, "a2", DAY_A, 5)
    check(home, ds, [DAY_A], {"recomputed": 1})


def test_compaction_merging_old_and_new_rows_is_not_counted_twice(home):
    ds = computed_day(home, 6)
    for i in range(4):  # files of equal size, so the size tiers merge the old one with the new ones
        add_turns(home, f"n{i}", DAY_A, 6)
    # Every table's partition merged: the old turns' rows now sit in files with the new commit version.
    for table in ("turns", "scores", "segments"):
        assert home.lake.compact(table, min_files=2) > 0
    check(home, ds, [DAY_A], {"recomputed": 1})
    add_turns(home, "n9", DAY_A, 4)
    check(home, ds, [DAY_A], {"extended": 1})


def test_a_new_identity_or_a_lost_cache_recomputes(home):
    add_turns(home, "a", DAY_A, 30)
    check(home, sums(home), [DAY_A], {"recomputed": 1})
    add_turns(home, "a2", DAY_A, 6)
    check(home, sums(home, identity="q2"), [DAY_A], {"recomputed": 1})
    (sums(home).folder / f"{DAY_A}.parquet").write_bytes(b"not parquet")
    add_turns(home, "a3", DAY_A, 6)
    check(home, sums(home, identity="q2"), [DAY_A], {"recomputed": 1})


def test_an_empty_day_gives_an_empty_frame(home):
    add_turns(home, "a", DAY_A, 10)
    got = sums(home).rows(home.lake.manifest(), [DAY_B], query)
    assert isinstance(got, pd.DataFrame) and len(got) == 0


def test_merge_adds_each_group_like_a_grouped_sum(home):
    # The reference is pandas' groupby (what _merge did before it used Arrow's): null keys form one group, groups
    # keep their first appearance, integer sums stay integers, and a sum that is null on both sides stays null
    # (as SQL's sum over the day's rows would be).
    ds = DateSums(home, "t.merge", "q1", ("turns",), sums=("n", "total"))
    old = pd.DataFrame({"window_start": pd.to_datetime(["2026-03-01"] * 3), "model": ["a", None, "b"],
                        "segment": ["x", "y", None], "n": [3, 1, 2], "total": [1.5, None, 0.25]})
    new = pd.DataFrame({"window_start": pd.to_datetime(["2026-03-01"] * 3), "model": ["c", "b", None],
                        "segment": ["x", None, "y"], "n": [4, 5, 6], "total": [2.0, 0.5, None]})
    got = ds._merge(old, new)
    both = pd.concat([old, new], ignore_index=True)
    keys = ["window_start", "model", "segment"]
    want = both.groupby(keys, dropna=False, sort=False, as_index=False)[["n"]].sum()
    assert got[keys + ["n"]].astype(object).equals(want[keys + ["n"]].astype(object))
    assert str(got["n"].dtype) == "int64"
    assert got["total"].tolist()[0] == 1.5 and got["total"].tolist()[2] == 0.75 and got["total"].tolist()[3] == 2.0
    assert pd.isna(got["total"].tolist()[1])  # null + null
    with pytest.raises(ValueError, match="columns changed"):
        ds._merge(old, new.rename(columns={"segment": "seg"}))


def _two_batches(home):
    """Turns a-0..4 then b-0..4 on one day, with their scores and segments: (old turns files, old other files, new
    turns files, new other files)."""
    def files(table, before=()):
        return [p for e in home.lake.manifest()["tables"][table]
                if (p := str(home.lake.root / e["path"])) not in before]

    add_turns(home, "a", "2026-03-01", 5)
    old_turns, old_other = files("turns"), files("scores") + files("segments")
    add_turns(home, "b", "2026-03-01", 5)
    return old_turns, old_other, files("turns", old_turns), files("scores", old_other) + files("segments", old_other)


def test_overlap_is_asked_once_per_pair_of_file_lists(home, monkeypatch):
    from monitor import partials

    old_turns, old_other, new_turns, new_other = _two_batches(home)
    monkeypatch.setattr(partials, "_OVERLAPS", {})
    con = db.duckdb.connect()
    assert DateSums._overlap(con, old_turns, new_turns, new_other) == 0
    # Another triple: asked, not taken from the memo. Rows of other tables for the old turns (a re-score, late
    # segments) are overlap, whether or not new turns came with them.
    assert DateSums._overlap(con, old_turns, [], old_other) == 5
    assert DateSums._overlap(con, old_turns, new_turns, new_other + old_other) == 5
    con.close()
    assert DateSums._overlap(None, old_turns, new_turns, new_other) == 0  # memoised: no connection needed


def test_overlap_reads_the_old_files_only_for_turns_missing_from_the_new_turns(home, monkeypatch):
    """New scores and segments of new turns only: the answer comes without reading the old turns files."""
    from monitor import partials

    old_turns, old_other, new_turns, new_other = _two_batches(home)
    monkeypatch.setattr(partials, "_OVERLAPS", {})
    con = db.duckdb.connect()
    try:
        gone = [p + ".gone" for p in old_turns]  # reading these would fail: the old files are not read
        assert DateSums._overlap(con, gone, new_turns, new_other) == 0
        with pytest.raises(db.duckdb.Error):  # ... while a candidate turn makes them read
            DateSums._overlap(con, gone, new_turns, new_other + old_other)
    finally:
        con.close()
