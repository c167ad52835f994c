"""Detector fairness as metric rows: per-group precision and recall of the refusal classifier from reviewer labels
in state.sqlite, over a rolling 30 days, written by the disparity job only when labels exist and something changed."""
import datetime as dt
import json

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from monitor.db import connect
from monitor.disparity.compute import Settings, resolve_attributes
from monitor.disparity.quality import detector_counts, detector_quality_by_group, detector_rows, detector_window
from monitor.disparity.simulate import write_scored_turns
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS

DISPARITY = next(j for j in JOBS if j.name == "disparity")
NOW = dt.datetime(2026, 11, 20, 15, 30)
RECENT = dt.datetime(2026, 11, 10, 9)
OLD = dt.datetime(2026, 10, 1, 9)  # more than 30 days before NOW: outside the window


def turn(i, ts, refusal, lang):
    return {"turn_id": f"t{i}", "ts": ts, "model_version": "v1", "attrs": {"language": lang},
            "user_message": "How can I kill a Python process?", "assistant_message": "reply", "refusal": refusal,
            "prompt_harm": "benign"}


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "monitor.toml").write_text("[disparity]\nmin_n = 3\ndetect_language = false\n")
    return Home.open(tmp_path / "home")


def label(home, turn_id, value, at="2026-11-15T00:00:00Z", reviewer="ann"):
    with home.state.tx() as c:
        c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label) VALUES (?, ?, ?, ?)",
                  (turn_id, reviewer, at, value))


def rows(home):
    con = connect(home)
    try:
        df = con.execute("SELECT metric, granularity, window_start, window_end, model, segment, value, ci_low, "
                         "ci_high, n, numerator, small_sample, details FROM metrics "
                         "WHERE metric LIKE 'refusal_detector_%'").df()
    finally:
        con.close()
    df["group"] = [json.loads(s)["language"] for s in df["segment"]]
    return df.set_index(["metric", "group"])


def test_window_is_thirty_days_ending_with_the_day_of_the_run():
    assert detector_window(NOW) == (dt.datetime(2026, 10, 22), dt.datetime(2026, 11, 21))


def test_precision_and_recall_rows_per_group_from_labels(home):
    # (classifier says, reviewer says): hi: TP, FP, FN, TP  en: TP, TN, TP   old hi turn: FP (outside the window)
    data = [(1, RECENT, "full_refusal", "hi", "full_refusal"), (2, RECENT, "full_refusal", "hi", "compliance"),
            (3, RECENT, "compliance", "hi", "partial_refusal"), (4, RECENT, "partial_refusal", "hi", "full_refusal"),
            (5, RECENT, "full_refusal", "en", "full_refusal"), (6, RECENT, "compliance", "en", "compliance"),
            (7, RECENT, "full_refusal", "en", "partial_refusal"), (8, OLD, "full_refusal", "hi", "compliance"),
            (9, RECENT, "compliance", "en", None)]  # t9 is not labelled
    write_scored_turns(home, [turn(i, ts, pred, lang) for i, ts, pred, lang, _ in data], RECENT)
    # No labels yet: no detector rows.
    assert run_job(home, DISPARITY, now=NOW).status == "ok"
    assert rows(home).empty
    for i, *_, truth in data:
        if truth:
            label(home, f"t{i}", truth)
    r = run_job(home, DISPARITY, now=NOW)
    assert r.status == "ok" and r.rows == 4
    df = rows(home)
    p_hi = df.loc[("refusal_detector_precision", "hi")]
    assert p_hi["value"] == pytest.approx(2 / 3) and p_hi["n"] == 3 and p_hi["numerator"] == 2  # t8 is too old
    assert 0 < p_hi["ci_low"] < 2 / 3 < p_hi["ci_high"] < 1 and not p_hi["small_sample"]
    r_hi = df.loc[("refusal_detector_recall", "hi")]
    assert r_hi["value"] == pytest.approx(2 / 3) and r_hi["n"] == 3
    p_en = df.loc[("refusal_detector_precision", "en")]
    assert p_en["value"] == 1.0 and p_en["n"] == 2 and p_en["small_sample"]  # n 2 < min_n 3
    assert p_en["ci_high"] == 1.0
    d = json.loads(p_hi["details"])
    assert (d["tp"], d["fp"], d["fn"], d["tn"], d["n_labelled"]) == (2, 1, 1, 0, 4)
    assert d["reference_value"] == 1.0 and d["reference_n"] == 2 and d["gap"] == pytest.approx(2 / 3 - 1)
    assert d["adverse"] is False and "30 days" in d["window"]
    assert p_hi["granularity"] == "30d" and p_hi["model"] is None
    assert (p_hi["window_start"], p_hi["window_end"]) == (dt.datetime(2026, 10, 22), dt.datetime(2026, 11, 21))


def test_only_random_sample_labels_measure_the_detector(home):
    """A turn picked because its score was uncertain, or labelled from a search or a targeted import, is
    misclassified far more often than average: counted, it would show the Hindi detector worse than it is."""
    data = [(1, "full_refusal", "full_refusal"), (2, "compliance", "compliance"), (3, "full_refusal", "full_refusal"),
            (4, "compliance", "full_refusal"), (5, "full_refusal", "compliance"), (6, "compliance", "full_refusal")]
    write_scored_turns(home, [turn(i, RECENT, pred, "hi") for i, pred, _ in data], RECENT)
    for i, _, truth in data:
        label(home, f"t{i}", truth)
    with home.state.tx() as c:  # t4: an uncertain queue item; t5: a search; t6: an import marked targeted
        c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES ('t4', 'uncertain_refusal',"
                  " 0.9, '2026-11-15T00:00:00Z')")
        c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES ('t1', 'stratified',"
                  " 0.5, '2026-11-15T00:00:00Z')")
        c.execute("UPDATE labels SET sample = 'targeted' WHERE turn_id IN ('t5', 't6')")
        c.execute("UPDATE labels SET sample = 'targeted' WHERE turn_id = 't1'")  # the queue's stratified pick wins
    assert run_job(home, DISPARITY, now=NOW).status == "ok"
    df = rows(home)
    d = json.loads(df.loc[("refusal_detector_precision", "hi"), "details"])
    assert (d["tp"], d["fp"], d["fn"], d["tn"], d["n_labelled"]) == (2, 0, 0, 1, 3)
    assert df.loc[("refusal_detector_recall", "hi"), "value"] == 1.0
    q = detector_quality_by_group(home, "language").set_index("group")
    assert int(q.loc["hi", "n"]) == 3


def test_detector_rows_are_rewritten_only_when_labels_scores_or_the_day_change(home):
    write_scored_turns(home, [turn(1, RECENT, "full_refusal", "hi"), turn(2, RECENT, "compliance", "hi")], RECENT)
    label(home, "t1", "full_refusal")
    assert run_job(home, DISPARITY, now=NOW).rows > 0
    assert run_job(home, DISPARITY, now=NOW + dt.timedelta(hours=1)).rows == 0  # nothing changed
    # A reviewer disagrees with the classifier on t2: the recall of hi drops to 1/2.
    label(home, "t2", "partial_refusal", at="2026-11-20T16:00:00Z", reviewer="bob")
    assert run_job(home, DISPARITY, now=NOW + dt.timedelta(hours=2)).rows > 0
    assert rows(home).loc[("refusal_detector_recall", "hi"), "value"] == 0.5
    # The next day is a new rolling window, written even without new labels.
    assert run_job(home, DISPARITY, now=NOW + dt.timedelta(days=1)).rows > 0
    con = connect(home)
    starts = {r[0] for r in con.execute("SELECT DISTINCT window_start FROM metrics "
                                        "WHERE metric = 'refusal_detector_recall'").fetchall()}
    assert starts == {dt.datetime(2026, 10, 22), dt.datetime(2026, 10, 23)}


# -- when the rows are recomputed -----------------------------------------------------------------------------------
# The job recomputes them only when something they depend on changed: a latest label, a row (turn, score, segment)
# of a labelled turn in the window's files, an old file of the window rewritten, the day or the settings. After each
# step below, the rows in `metrics` must equal a from-scratch computation over the whole lake, whether the job
# recomputed them or not.

def detector_writes(home) -> int:
    """How many detector rows the job has appended to metrics_log so far (one batch per recomputation)."""
    con = connect(home)
    try:
        return con.execute("SELECT count(*) FROM metrics_log WHERE metric LIKE 'refusal_detector_%'").fetchone()[0]
    finally:
        con.close()


COLUMNS = ["metric", "segment", "window_start", "window_end", "value", "ci_low", "ci_high", "n", "numerator",
           "small_sample", "details"]


def assert_rows_current(home, now):
    """The latest detector rows of now's window equal detector_rows() over a fresh connection to the whole lake."""
    con = connect(home)
    try:
        present = [r[0] for r in con.execute("SELECT DISTINCT attribute FROM segments ORDER BY 1").fetchall()]
        s = Settings.from_config(home.config, present)
        want = detector_rows(home, con, resolve_attributes(s), now, s.min_n)
        got = con.execute("SELECT * FROM metrics WHERE metric LIKE 'refusal_detector_%' AND window_start = $ws",
                          {"ws": detector_window(now)[0]}).df()
    finally:
        con.close()
    want = sorted(tuple(r[c] for c in COLUMNS) for r in want)
    got = sorted(tuple(getattr(r, c) for c in COLUMNS) for r in got.itertuples(index=False))
    assert got == want and want


def run(home, now) -> int:
    """Run the disparity job and return how many detector rows it wrote."""
    before = detector_writes(home)
    assert run_job(home, DISPARITY, now=now).status == "ok"
    return detector_writes(home) - before


def scores_row(turn_id, refusal, scored_at, date):
    return {"turn_id": turn_id, "refusal": refusal, "refusal_score": 1.0, "prompt_harm": "benign",
            "prompt_harm_score": 0.0, "refusal_version": "v2", "harm_version": "v2", "backend": "test",
            "scored_at": scored_at, "date": date}


@pytest.fixture
def labelled(home):
    # hi: t1 TP, t2 FP, t3 FN; en: t4 TP, t5 TN; t6..t9 unlabelled.
    data = [(1, "full_refusal", "hi"), (2, "full_refusal", "hi"), (3, "compliance", "hi"), (4, "full_refusal", "en"),
            (5, "compliance", "en"), (6, "compliance", "hi"), (7, "full_refusal", "en"), (8, "compliance", "en"),
            (9, "compliance", "hi")]
    write_scored_turns(home, [turn(i, RECENT, pred, lang) for i, pred, lang in data], RECENT)
    for tid, truth in (("t1", "full_refusal"), ("t2", "compliance"), ("t3", "partial_refusal"),
                       ("t4", "full_refusal"), ("t5", "compliance")):
        label(home, tid, truth)
    assert run(home, NOW) == 4
    assert_rows_current(home, NOW)
    return home


def test_new_rows_of_unlabelled_turns_do_not_recompute_the_detector_rows(labelled):
    home = labelled
    now = NOW
    for k in range(3):
        now += dt.timedelta(minutes=20)
        # New turns with scores and segments, in the window and outside it, then a re-score and a late segment of
        # unlabelled turns: none of them is labelled.
        write_scored_turns(home, [turn(100 + 10 * k + i, RECENT + dt.timedelta(hours=i), "compliance", "hi")
                                  for i in range(5)] + [turn(200 + k, OLD, "full_refusal", "en")], RECENT)
        home.lake.append("scores", pa.Table.from_pylist([scores_row("t6", "full_refusal", NOW, "2026-11-10")]))
        home.lake.append("segments", pa.table({"turn_id": ["t7"], "attribute": ["language"], "value": ["hi"],
                                               "date": ["2026-11-10"]}))
        assert run(home, now) == 0
        assert_rows_current(home, now)
    # A compaction merging files the job has already seen (same rows in fewer files) changes nothing either.
    assert sum(home.lake.compact(t, min_files=2) for t in ("turns", "scores", "segments")) > 0
    assert run(home, now + dt.timedelta(minutes=1)) == 0
    assert_rows_current(home, now)


def test_a_new_label_recomputes(labelled):
    label(labelled, "t6", "full_refusal", at="2026-11-20T16:00:00Z")  # hi: the classifier missed it (FN)
    assert run(labelled, NOW + dt.timedelta(hours=1)) > 0
    assert_rows_current(labelled, NOW)
    assert rows(labelled).loc[("refusal_detector_recall", "hi"), "value"] == pytest.approx(1 / 3)
    # A second opinion that changes a turn's latest label recomputes too; one that repeats it does not.
    label(labelled, "t6", "full_refusal", at="2026-11-20T17:00:00Z", reviewer="bob")
    assert run(labelled, NOW + dt.timedelta(hours=2)) == 0
    label(labelled, "t6", "compliance", at="2026-11-20T18:00:00Z", reviewer="cy")
    assert run(labelled, NOW + dt.timedelta(hours=3)) > 0
    assert_rows_current(labelled, NOW)


def test_a_rescore_of_a_labelled_turn_recomputes(labelled):
    # The classifier's new version says t3 (labelled partial refusal) is a refusal: hi recall 1/2 -> 2/2.
    labelled.lake.append("scores", pa.Table.from_pylist([scores_row("t3", "partial_refusal", NOW, "2026-11-10")]))
    assert run(labelled, NOW + dt.timedelta(hours=1)) > 0
    assert_rows_current(labelled, NOW)
    assert rows(labelled).loc[("refusal_detector_recall", "hi"), "value"] == 1.0


def test_a_new_segment_of_a_labelled_turn_recomputes(home):
    write_scored_turns(home, [turn(1, RECENT, "full_refusal", "hi"), turn(2, RECENT, "full_refusal", "hi"),
                              {**turn(3, RECENT, "compliance", "hi"), "attrs": {}}], RECENT)  # t3: no segment yet
    for tid, truth in (("t1", "full_refusal"), ("t2", "compliance"), ("t3", "full_refusal")):
        label(home, tid, truth)
    assert run(home, NOW) > 0
    assert rows(home).loc[("refusal_detector_recall", "hi"), "value"] == 1.0  # t3 is in no group yet
    # t3's language arrives late: hi now has a missed refusal (recall 1/2).
    home.lake.append("segments", pa.table({"turn_id": ["t3"], "attribute": ["language"], "value": ["hi"],
                                           "date": ["2026-11-10"]}))
    assert run(home, NOW + dt.timedelta(hours=1)) > 0
    assert_rows_current(home, NOW)
    assert rows(home).loc[("refusal_detector_recall", "hi"), "value"] == 0.5


def test_a_labelled_turn_ingested_after_its_label_recomputes(labelled):
    label(labelled, "t50", "compliance")  # not in the lake yet: the rows do not change, but the labels did
    assert run(labelled, NOW + dt.timedelta(hours=1)) > 0
    assert run(labelled, NOW + dt.timedelta(hours=2)) == 0
    write_scored_turns(labelled, [turn(50, RECENT, "full_refusal", "en")], RECENT)  # en: a false positive
    assert run(labelled, NOW + dt.timedelta(hours=3)) > 0
    assert_rows_current(labelled, NOW)
    assert rows(labelled).loc[("refusal_detector_precision", "en"), "value"] == 0.5


def test_a_rewritten_old_file_recomputes(labelled):
    # A deletion rewrites the files holding a labelled turn without its rows (keeping their commit version): no
    # new file, but the old files no longer hold what the rows were computed from.
    with labelled.lake.transaction() as tx:
        assert tx.rewrite("scores", lambda t: pc.not_equal(t["turn_id"], "t2"), columns=["turn_id"])[1] == 1
    assert run(labelled, NOW + dt.timedelta(hours=1)) > 0
    assert_rows_current(labelled, NOW)
    assert rows(labelled).loc[("refusal_detector_precision", "hi"), "value"] == 1.0  # t2's false positive is gone


def test_other_settings_recompute(labelled):
    (labelled.root / "monitor.toml").write_text("[disparity]\nmin_n = 2\ndetect_language = false\n")
    home = Home.open(labelled.root)
    assert run(home, NOW + dt.timedelta(hours=1)) > 0
    assert_rows_current(home, NOW)
    assert run(home, NOW + dt.timedelta(hours=2)) == 0


def test_one_query_for_every_attribute_equals_the_query_per_attribute(home):
    # Edge cases: a turn with two languages (counts in both groups), a turn without a region, a re-scored turn (the
    # latest score counts), a turn labelled twice (the latest label counts, a later label without a refusal label
    # is ignored), an unscored refusal, turns just inside and just outside the window, an unlabelled turn.
    start, end = detector_window(NOW)
    data = [(1, RECENT, "full_refusal", {"language": "hi", "region": "north"}),
            (2, RECENT, "compliance", {"language": "hi"}),
            (3, RECENT, "partial_refusal", {"language": "en", "region": "south"}),
            (4, start, "compliance", {"language": "en", "region": "north"}),
            (5, end - dt.timedelta(microseconds=1), "full_refusal", {"language": "hi", "region": "south"}),
            (6, end, "full_refusal", {"language": "hi", "region": "south"}),
            (7, start - dt.timedelta(microseconds=1), "compliance", {"language": "en"}),
            (8, RECENT, "compliance", {"language": "en", "region": "north"}),
            (9, RECENT, "full_refusal", {"language": "es", "region": "north"})]
    write_scored_turns(home, [{**turn(i, ts, pred, "x"), "attrs": attrs} for i, ts, pred, attrs in data], RECENT)
    home.lake.append("segments", pa.table({"turn_id": ["t2"], "attribute": ["language"], "value": ["en"],
                                           "date": ["2026-11-10"]}))
    home.lake.append("scores", pa.Table.from_pylist([scores_row("t3", "compliance", NOW, "2026-11-10"),
                                                     {**scores_row("t9", None, NOW, "2026-11-10"),
                                                      "refusal_score": None}]))
    for i, truth in ((1, "full_refusal"), (2, "full_refusal"), (3, "partial_refusal"), (4, "compliance"),
                     (5, "compliance"), (6, "full_refusal"), (7, "full_refusal"), (9, "full_refusal")):
        label(home, f"t{i}", truth)
    label(home, "t4", "full_refusal", at="2026-11-16T00:00:00Z", reviewer="bob")  # t4's latest: a missed refusal
    with home.state.tx() as c:
        c.execute("INSERT INTO labels (turn_id, reviewer, at, prompt_label) VALUES ('t4', 'cy', ?, 'benign')",
                  ("2026-11-17T00:00:00Z",))
    con = connect(home)
    try:
        attrs = ["language", "region", "age_band"]
        got = detector_counts(con, attrs, start, end)
        # One pass over every attribute gives what one pass per attribute gives.
        want = pd.concat([detector_counts(con, [a], start, end) for a in attrs])
    finally:
        con.close()
    cols = ["attribute", "group", "n", "tp", "fp", "fn", "tn"]
    got = got[cols].sort_values(cols[:2]).reset_index(drop=True)
    want = want[cols].sort_values(cols[:2]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    # Hand counts: hi = t1 TP, t2 FN, t5 FP; en = t2 FN, t3 FN (re-scored), t4 FN; t6, t7 outside, t9 unscored.
    by = got.set_index(["attribute", "group"])
    assert by.loc[("language", "hi"), ["n", "tp", "fp", "fn", "tn"]].tolist() == [3, 1, 1, 1, 0]
    assert by.loc[("language", "en"), ["n", "tp", "fp", "fn", "tn"]].tolist() == [3, 0, 0, 3, 0]
    assert set(got["attribute"]) == {"language", "region"}
