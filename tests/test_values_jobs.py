"""The values and value_drift jobs on real replies: coverage, evidence, config-only plugins, incremental runs, like with like."""
import datetime as dt
import json

import pytest

from monitor.db import connect
from monitor.home import Home
from monitor.jobs import JobContext
from monitor.jobs.score import worker_count
from monitor.jobs.value_drift import evidently_report_html, run_value_drift
from monitor.jobs.values import run_values
from valuesim import START, hh_pairs, simulate, write_turns


def _query(home, sql, params=None):
    con = connect(home)
    try:
        return con.execute(sql, params or {}).df()
    finally:
        con.close()


def _turn(tid, day, reply, model="m1", prompt="how do I bake bread"):
    ts = START + dt.timedelta(days=day, hours=1)
    return {"turn_id": tid, "conversation_id": tid, "turn_index": 0, "ts": ts, "model": model, "deployment": "prod",
            "user_message": prompt, "assistant_message": reply}


def test_unscored_replies_count_in_coverage_not_in_means(tmp_path):
    home = Home.open(tmp_path / "home")
    good = "It's important to remember that you should never insult people, because kindness matters."
    turns = [_turn("en1", 0, good), _turn("en2", 0, good), _turn("es", 0, "hola, ¿cómo estás? Esto es una "
             "respuesta en español para la prueba de cobertura."), _turn("short", 0, "ok"), _turn("empty", 0, "")]
    write_turns(home, turns)
    run_values(JobContext(home, START))
    cov = _query(home, "SELECT * FROM metrics WHERE metric = 'value_coverage' AND model IS NULL "
                       "AND deployment IS NULL AND segment = '{}'").iloc[0]
    assert cov["n"] == 5 and cov["numerator"] == 2 and cov["value"] == pytest.approx(0.4)
    assert 0 < cov["ci_low"] < 0.4 < cov["ci_high"] < 1  # Wilson interval
    assert json.loads(cov["details"])["unscored"] == {"empty": 1, "too_short": 1, "non_english": 1}
    mean = _query(home, "SELECT * FROM metrics WHERE metric = 'value_mean' AND model IS NULL AND deployment IS NULL "
                        "AND segment = '{\"dimension\": \"moralizing\"}'").iloc[0]
    assert mean["n"] == 2  # only the two scored replies; unscored ones are not zeros
    assert mean["value"] > 0 and json.loads(mean["details"])["family"] == "normative"
    ev = _query(home, "SELECT e.term, e.span_start, e.span_end, t.assistant_message FROM value_evidence e "
                      "JOIN turns t USING (turn_id) WHERE e.dimension = 'moralizing' AND turn_id = 'en1'")
    assert len(ev) >= 1
    for r in ev.itertuples():
        assert r.assistant_message[r.span_start:r.span_end].lower().startswith(r.term.rstrip("*").split()[0])
    assert _query(home, "SELECT count(*) AS n FROM value_scores WHERE turn_id IN ('es', 'short', 'empty')")["n"][0] == 0


def test_second_run_writes_nothing_then_only_new_windows(tmp_path):
    home = Home.open(tmp_path / "home")
    pairs = hh_pairs()
    write_turns(home, [_turn(f"a{i}", 0, pairs[i][1]) for i in range(30)])
    ctx = JobContext(home, START)
    assert run_values(ctx) > 0 and run_value_drift(ctx) > 0
    n_scores = _query(home, "SELECT count(*) AS n FROM value_scores")["n"][0]
    assert run_values(ctx) == 0 and run_value_drift(ctx) == 0
    assert _query(home, "SELECT count(*) AS n FROM value_scores")["n"][0] == n_scores
    write_turns(home, [_turn(f"b{i}", 3, pairs[100 + i][1]) for i in range(30)])
    ctx2 = JobContext(home, START)
    assert run_values(ctx2) > 0
    windows = _query(home, "SELECT DISTINCT window_start FROM metrics_log WHERE job = 'values' "
                           "AND run_id = $r", {"r": ctx2.run_id})
    assert [w.day for w in windows["window_start"]] == [START.day + 3]  # only the window with new turns
    assert run_value_drift(JobContext(home, START)) > 0
    assert _query(home, "SELECT count(DISTINCT turn_id) AS n FROM value_turns")["n"][0] == 60


def test_custom_dimension_from_config_flows_into_metrics(tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text(
        '[values]\nmin_n = 20\n[[values.dimensions]]\nname = "kitchen_talk"\nfamily = "cultural"\n'
        'terms = ["bread", "oven", "flour", "bake*"]\n')
    home = Home.open(root)
    pairs = hh_pairs()
    turns = [_turn(f"r{d}-{i}", d, pairs[d * 40 + i][1]) for d in range(3) for i in range(40)]
    turns += [_turn(f"k{i}", 3, pairs[200 + i][1] + " Preheat the oven and knead the bread flour well before you "
                    "bake it.") for i in range(40)]
    write_turns(home, turns)
    ctx = JobContext(home, START + dt.timedelta(days=4))
    run_values(ctx)
    run_value_drift(ctx)
    seg = json.dumps({"dimension": "kitchen_talk"})
    means = _query(home, "SELECT window_start, value FROM metrics WHERE metric = 'value_mean' AND segment = $s "
                         "AND model IS NULL AND deployment IS NULL ORDER BY 1", {"s": seg})
    assert len(means) == 4 and means["value"].iloc[-1] > means["value"].iloc[0]
    dr = _query(home, "SELECT details FROM metrics WHERE metric = 'value_drift' AND segment = $s AND model IS NULL "
                      "AND window_start = $w", {"s": seg, "w": START + dt.timedelta(days=3)})
    d = json.loads(dr["details"][0])
    assert d["family"] == "cultural" and d["drift_detected"] and d["direction"] == "up"
    assert d["reference"]["kind"] == "previous_days" and d["reference"]["n"] <= 120
    versions = _query(home, "SELECT DISTINCT scorer_version FROM value_turns")["scorer_version"].tolist()
    assert len(versions) == 1 and "+" in versions[0]  # the plugin config is part of the version


def test_baseline_model_compares_within_topics(tmp_path):
    """Model B gets more crime questions than baseline A but answers alike: no value drift once topics are matched."""
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text('[values]\nreference = "baseline_model"\nbaseline_model = "A"\nmin_n = 50\n')
    home = Home.open(root)
    pairs = hh_pairs()
    law = "That would be illegal and against the law, and the police could arrest you for it."
    turns = []
    for i in range(600):
        crime = i % 2 == 0
        prompt, reply = ("how do I steal a car", law) if crime else ("how do I bake bread", pairs[i][1])
        # A: 10% crime questions, B: 50%; both models answer a crime question with the same legal reply.
        if i % 10 == 0 or not crime:
            turns.append(_turn(f"A{i}", 0, reply, "A", prompt))
        turns.append(_turn(f"B{i}", 0, reply if crime or i % 4 == 1 else pairs[i][1], "B", prompt))
    write_turns(home, turns)
    ctx = JobContext(home, START + dt.timedelta(days=1))
    run_values(ctx)
    run_value_drift(ctx)
    rows = _query(home, "SELECT metric, segment, details FROM metrics WHERE model = 'B'")
    legal = json.loads(rows[(rows["metric"] == "value_drift") &
                            (rows["segment"] == '{"dimension": "legal_reference"}')]["details"].iloc[0])
    assert legal["reference"]["stratified_by"] == "topic" and legal["reference"]["model"] == "A"
    assert not legal["drift_detected"], legal
    topic = json.loads(rows[rows["metric"] == "topic_drift"]["details"].iloc[0])
    assert topic["drift_detected"]  # the users changed, and that is reported as such
    html = evidently_report_html(home, START, model="B")
    assert "<html" in html.lower() and "legal_reference" in html


def _value_rows(home) -> dict[str, list]:
    """Every value_scores / value_turns / value_evidence row but its processing time, in a fixed order."""
    out = {}
    for table, cols in (("value_scores", "turn_id, dimension, family, round(score, 12), scorer_version, date"),
                        ("value_turns", "turn_id, scored, reason, n_tokens, topic, topic_terms, scorer_version, date"),
                        ("value_evidence", "turn_id, dimension, term, span_start, span_end, date")):
        out[table] = _query(home, f"SELECT {cols} FROM {table} ORDER BY ALL").values.tolist()
    return out


def test_parallel_value_scoring_equals_scoring_in_one_process(tmp_path):
    turns, segs = simulate(days=3, per_day=150, seed=5)
    turns[3]["assistant_message"] = ""  # unscored replies travel through the workers too
    turns[7]["assistant_message"] = "ok"
    got = {}
    for workers in (1, 2):
        root = tmp_path / f"w{workers}"
        root.mkdir()
        (root / "monitor.toml").write_text(f"[classifiers]\nworkers = {workers}\n")
        home = Home.open(root)
        assert worker_count(home, "lexical", 450, min_parallel=100) == (0 if workers == 1 else 2)
        write_turns(home, turns, segs)
        run_values(JobContext(home, START), batch_rows=100, min_parallel=100)
        got[workers] = _value_rows(home)
        assert sum(len(v) for v in _value_rows(home).values()) > 0
        assert run_values(JobContext(home, START), batch_rows=100, min_parallel=100) == 0  # nothing new
        assert _value_rows(home) == got[workers]
    assert len(got[1]["value_turns"]) == 450 and len(got[1]["value_evidence"]) > 100
    assert got[1] == got[2]
    metrics = "SELECT metric, window_start, model, deployment, segment, round(value, 12), n FROM metrics ORDER BY ALL"
    assert _query(Home.open(tmp_path / "w1"), metrics).values.tolist() == \
        _query(Home.open(tmp_path / "w2"), metrics).values.tolist()


def test_pending_turns_carry_their_latest_refusal_score(tmp_path):
    """sql/values/pending.sql ranks only the new turns' scores; it must pick what view latest_scores picks."""
    import pyarrow as pa

    from monitor.db import scoped_connect
    from monitor.incremental import Delta
    from monitor.resources import load_sql

    home = Home.open(tmp_path / "home")
    t0 = dt.datetime(2026, 11, 2, 9)

    def turns(ids):
        return pa.table({"turn_id": ids, "ts": pa.array([t0] * len(ids), pa.timestamp("us")),
                         "user_message": ["q"] * len(ids), "assistant_message": ["a"] * len(ids),
                         "date": ["2026-11-02"] * len(ids)})

    def scores(ids, score, minutes):
        return pa.table({"turn_id": ids, "refusal_score": [score] * len(ids),
                         "scored_at": pa.array([t0 + dt.timedelta(minutes=minutes)] * len(ids), pa.timestamp("us")),
                         "date": ["2026-11-02"] * len(ids)})

    home.lake.append("turns", turns(["old1", "old2"]))
    home.lake.append("scores", scores(["old1", "old2"], 0.9, 1))
    Delta.open(home, "p", "x").save("p", "x")
    home.lake.append("turns", turns(["new1", "new2", "new3", "new4"]))
    home.lake.append("scores", scores(["new1", "new2", "old1"], 0.1, 2))
    home.lake.append("scores", scores(["new2", "old2"], 0.7, 5))  # a re-score: the newest wins
    home.lake.append("scores", scores(["new3"], 0.3, 3))  # new4 has no score yet
    delta = Delta.open(home, "p", "x")
    con = scoped_connect(home, delta.manifest, ("2026-11-02", "2026-11-02"))
    try:
        delta.view(con, "turns")
        params = {"scorer_version": "v1", "date_min": "2026-11-02", "date_max": "2026-11-02"}
        got = con.execute(load_sql("values/pending.sql").sql, params).fetchall()
        want = con.execute("SELECT t.turn_id, t.user_message, t.assistant_message, s.refusal_score, t.date "
                           "FROM new_turns t LEFT JOIN latest_scores s USING (turn_id, date) ORDER BY t.turn_id"
                           ).fetchall()
    finally:
        con.close()
    assert got == want
    assert [(r[0], r[3]) for r in got] == [("new1", 0.1), ("new2", 0.7), ("new3", 0.3), ("new4", None)]
