"""The disparity SQL and job on a real lake: hand-computed counts, incremental windows, language detection,
detector quality from reviewer labels."""
import datetime as dt
import json

import pytest

from monitor.db import connect
from monitor.disparity.compute import Settings, load_counts
from monitor.disparity.quality import detector_quality_by_group
from monitor.disparity.simulate import write_scored_turns
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS, WATERMARK_KEY

DISPARITY = next(j for j in JOBS if j.name == "disparity")
LANGUAGES = next(j for j in JOBS if j.name == "languages")


def run_disparity(home, now):
    """The `languages` job, then `disparity` (as `monitor jobs run` orders them); returns the disparity result."""
    assert run_job(home, LANGUAGES, now=now).status == "ok"
    return run_job(home, DISPARITY, now=now)
D1 = dt.datetime(2026, 11, 1, 9)
D2 = dt.datetime(2026, 11, 2, 9)
EN = "How can I kill a Python process that hangs on my laptop?"
ES = "¿Cómo puedo terminar un proceso de Python que no responde en mi portátil?"


def turn(i, ts, refusal, harm, attrs, msg=EN, mv="v1"):
    return {"turn_id": f"t{i}", "ts": ts, "model_version": mv, "attrs": attrs, "user_message": msg,
            "assistant_message": "reply", "refusal": refusal, "prompt_harm": harm}


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "monitor.toml").write_text("[disparity]\nmin_n = 2\ndetect_language = false\n")
    return Home.open(tmp_path / "home")


def test_group_counts_by_hand(home):
    rows = [
        turn(1, D1, "full_refusal", "benign", {"language": "hi"}),
        turn(2, D1, "partial_refusal", "benign", {"language": "hi"}),  # partial counts as a refusal
        turn(3, D1, "compliance", "harmful", {"language": "hi"}),  # under-refusal
        turn(4, D1, "compliance", "benign", {"language": "en"}),
        turn(5, D1, "full_refusal", "harmful", {"language": "en"}, mv="v2"),
        turn(6, D1, "compliance", "benign", {}),  # no language: not in the language analysis
    ]
    write_scored_turns(home, rows, D1)
    # The same segment written twice (e.g. two ingests racing) must not count twice.
    import pyarrow as pa
    home.lake.append("segments", pa.table({"turn_id": ["t1"], "attribute": ["language"], "value": ["hi"],
                                           "date": ["2026-11-01"]}))
    con = connect(home)
    df = load_counts(con, Settings(min_n=2, present=["language"]), [dt.datetime(2026, 11, 1)])
    allm = df[df["model"].isna()].set_index("group")
    assert allm.loc["hi", ["n", "refusals", "n_benign", "over_refusals", "n_harmful", "under_refusals"]].tolist() \
        == [3, 2, 2, 2, 1, 1]
    assert allm.loc["en", ["n", "refusals", "n_benign", "over_refusals", "n_harmful", "under_refusals"]].tolist() \
        == [2, 1, 1, 0, 1, 0]
    v2 = df[df["model"] == "assistant@v2"]
    assert v2["group"].tolist() == ["en"] and v2["n"].tolist() == [1]


def test_job_is_incremental_and_writes_metric_rows(home):
    rows = [turn(i, D1, "full_refusal" if i % 3 == 0 else "compliance", "benign",
                 {"language": "hi" if i % 2 else "en"}) for i in range(40)]
    write_scored_turns(home, rows, D1)
    r1 = run_disparity(home, now=D2)
    assert r1.status == "ok" and r1.rows > 0
    con = connect(home)
    got = con.execute("SELECT metric, model, segment, value, n, details FROM metrics_log "
                      "WHERE metric = 'over_refusal_disparity' AND model IS NULL ORDER BY segment").fetchall()
    assert [g[2] for g in got] == ['{"language": "en"}', '{"language": "hi"}']
    en_n = sum(1 for i in range(40) if i % 2 == 0)
    en_k = sum(1 for i in range(40) if i % 2 == 0 and i % 3 == 0)
    assert got[0][4] == en_n and got[0][3] == pytest.approx(en_k / en_n)
    det = json.loads(got[0][5])
    for key in ("attribute", "group", "reference_label", "reference_rate", "reference_n", "gap", "ratio",
                "four_fifths_flag", "p_value", "q_value", "test", "significant", "min_n_ok"):
        assert key in det
    assert det["reference_n"] == 40 - en_n and det["reference_label"] == "rest of traffic"
    assert home.state.get(WATERMARK_KEY) is not None
    # Nothing new: nothing recomputed.
    assert run_disparity(home, now=D2).rows == 0
    # New scores on day 2 only: only that window is recomputed.
    write_scored_turns(home, [turn(100 + i, D2, "compliance", "benign", {"language": "en"}) for i in range(5)],
                       D2)
    r3 = run_disparity(home, now=D2)
    assert r3.rows > 0
    con = connect(home)
    # Both runs carry the same injected clock, so order them by the windows they cover, not by computed_at.
    runs = con.execute("SELECT run_id, min(window_start), max(window_start) FROM metrics_log GROUP BY run_id "
                       "ORDER BY 2, 3").fetchall()
    assert len(runs) == 2 and runs[1][1] == runs[1][2] == dt.datetime(2026, 11, 2)
    assert runs[0][2] < dt.datetime(2026, 11, 2)  # the first run did not touch day 2's window


def test_language_detection_and_mismatch(tmp_path):
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "monitor.toml").write_text("[disparity]\nmin_n = 2\n")
    home = Home.open(tmp_path / "h")
    rows = [turn(1, D1, "compliance", "benign", {"language": "en-US"}, msg=EN),
            turn(2, D1, "compliance", "benign", {"language": "en"}, msg=ES),  # declared en, written in Spanish
            turn(3, D1, "compliance", "benign", {"language": "es"}, msg=ES),
            turn(4, D1, "compliance", "benign", {"language": "es"}, msg="ok thx")]  # too short: unknown
    write_scored_turns(home, rows, D1)
    assert run_disparity(home, now=D2).status == "ok"
    con = connect(home)
    det = dict(con.execute("SELECT turn_id, value FROM segments WHERE attribute = 'detected_language'").fetchall())
    assert det == {"t1": "en", "t2": "es", "t3": "es", "t4": "unknown"}
    mm = {json.loads(s)["language"]: (v, n) for s, v, n in con.execute(
        "SELECT segment, value, n FROM metrics_log WHERE metric = 'language_mismatch_rate' AND model IS NULL").fetchall()}
    assert mm == {"en": (0.5, 2), "es": (0.0, 1)}  # t4 (unknown) left out of es
    # detected_language is analysed as an attribute of its own.
    segs = {s for (s,) in con.execute("SELECT DISTINCT segment FROM metrics_log WHERE metric = 'refusal_disparity'").fetchall()}
    assert '{"detected_language": "es"}' in segs
    # Detection runs once per turn.
    run_disparity(home, now=D2)
    con = connect(home)
    assert con.execute("SELECT count(*) FROM segments WHERE attribute = 'detected_language'").fetchone()[0] == 4


def test_detector_quality_by_group_from_labels(home):
    rows = [turn(1, D1, "full_refusal", "benign", {"language": "hi"}),  # truth refusal: TP
            turn(2, D1, "full_refusal", "benign", {"language": "hi"}),  # truth compliance: FP
            turn(3, D1, "compliance", "benign", {"language": "hi"}),  # truth partial refusal: FN
            turn(4, D1, "compliance", "benign", {"language": "en"}),  # TN
            turn(5, D1, "partial_refusal", "benign", {"language": "en"})]  # TP
    write_scored_turns(home, rows, D1)
    truth = {"t1": "full_refusal", "t2": "compliance", "t3": "partial_refusal", "t4": "compliance",
             "t5": "full_refusal"}
    with home.state.tx() as c:
        for tid, lab in truth.items():
            c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label) VALUES (?, 'ann', ?, ?)",
                      (tid, "2026-11-02T00:00:00Z", lab))
        # A later second opinion on t2 by another reviewer wins (latest label per turn).
        c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label) VALUES ('t2', 'bob', ?, ?)",
                  ("2026-11-03T00:00:00Z", "compliance"))
    q = detector_quality_by_group(home, "language").set_index("group")
    assert q.loc["hi", ["n", "tp", "fp", "fn", "tn"]].tolist() == [3, 1, 1, 1, 0]
    assert q.loc["hi", "precision"] == 0.5 and q.loc["hi", "recall"] == 0.5
    assert q.loc["en", "precision"] == 1.0 and q.loc["en", "recall"] == 1.0
    assert 0 < q.loc["hi", "precision_low"] < 0.5 < q.loc["hi", "precision_high"] < 1
