"""Review labels, queue, agreement statistics and export (monitor/review.py) on a small synthetic home."""
import io
import json

import pyarrow.parquet as pq
import pytest

from monitor import review
from monitor.review import ReviewError, cohen_kappa, fleiss_kappa, percent_agreement


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory):
    from dashboards.sample import build_sample_home

    return build_sample_home(tmp_path_factory.mktemp("review") / "home", n_turns=1500, days=10, seed=3)


def _turn_ids(home, n):
    from monitor.db import connect

    con = connect(home)
    try:
        return [r[0] for r in con.execute("SELECT turn_id FROM turns ORDER BY turn_id LIMIT ?", [n]).fetchall()]
    finally:
        con.close()


def test_add_label_writes_row_and_audit(sample_home):
    tid = _turn_ids(sample_home, 1)[0]
    lid = review.add_label(sample_home, tid, "ana", refusal_label="compliance", prompt_label="benign",
                           refusal_correct=True, over_refusal=False, note="fine")
    rows = review.labels(sample_home, [tid])
    assert [(r["id"], r["reviewer"], r["refusal_label"], r["refusal_correct"], r["over_refusal"]) for r in rows] == [
        (lid, "ana", "compliance", 1, 0)]
    audit = sample_home.state.query("SELECT actor, action, target FROM audit_log WHERE target=?", (f"turn:{tid}",))
    assert audit == [{"actor": "ana", "action": "label.add", "target": f"turn:{tid}"}]
    # the same reviewer relabelling replaces their row (one vote per reviewer) and is audited as an update
    review.add_label(sample_home, tid, "ana", refusal_label="partial_refusal")
    rows = review.labels(sample_home, [tid])
    assert len(rows) == 1 and rows[0]["refusal_label"] == "partial_refusal" and rows[0]["note"] is None
    actions = [r["action"] for r in sample_home.state.query(
        "SELECT action FROM audit_log WHERE target=? ORDER BY id", (f"turn:{tid}",))]
    assert actions == ["label.add", "label.update"]


@pytest.mark.parametrize("kwargs, words", [
    ({"reviewer": ""}, "reviewer name is required"),
    ({"refusal_label": "maybe"}, "refusal_label' must be one of"),
    ({"over_refusal": "perhaps"}, "over_refusal' must be yes/no"),
    ({}, "is empty"),
])
def test_add_label_refuses_bad_input(sample_home, kwargs, words):
    args = {"reviewer": "bo", **kwargs}
    reviewer = args.pop("reviewer")
    with pytest.raises(ReviewError, match=words.replace("(", r"\(")):
        review.add_label(sample_home, "some-turn", reviewer, **args)


def test_cohen_kappa_worked_example():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> po=0.70, pe=0.50, kappa=0.40
    a = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.40)
    from sklearn.metrics import cohen_kappa_score

    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_fleiss_kappa_worked_example():
    # Fleiss (1971) style example: 10 items, 14 raters, 5 categories; kappa = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    ratings = {f"i{i}": [cat for cat, k in enumerate(row) for _ in range(k)] for i, row in enumerate(table)}
    assert fleiss_kappa(ratings) == pytest.approx(0.20993, abs=1e-4)
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    assert fleiss_kappa(ratings) == pytest.approx(sm_fleiss(table), abs=1e-9)


def test_percent_agreement_and_agreement_report():
    assert percent_agreement({"a": [1, 1, 0], "b": [1, 1]}) == pytest.approx(2 / 4)
    rows = [
        {"turn_id": "t1", "reviewer": "ana", "refusal_label": "compliance", "over_refusal": 0},
        {"turn_id": "t1", "reviewer": "bo", "refusal_label": "compliance", "over_refusal": 1},
        {"turn_id": "t2", "reviewer": "ana", "refusal_label": "full_refusal", "over_refusal": 1},
        {"turn_id": "t2", "reviewer": "bo", "refusal_label": "full_refusal", "over_refusal": 1},
        {"turn_id": "t3", "reviewer": "ana", "refusal_label": "full_refusal", "over_refusal": None},
    ]
    rep = {r["field"]: r for r in review.agreement(rows, ["refusal_label", "over_refusal"])}
    assert rep["refusal_label"]["items"] == 2 and rep["refusal_label"]["percent_agreement"] == 1.0
    assert rep["refusal_label"]["cohen_kappa_mean"] == pytest.approx(1.0)
    assert rep["over_refusal"]["percent_agreement"] == 0.5


def test_build_queue_samples_uncertain_alert_examples_and_groups(sample_home):
    from monitor.db import connect

    res = review.build_queue(sample_home, size=40, actor="ana")
    assert res.added == 40
    assert set(res.by_reason) <= set(review.QUEUE_REASONS)
    assert res.by_reason.get("alert_example", 0) >= 1
    assert res.by_reason.get("uncertain_refusal", 0) >= 1
    assert res.by_reason.get("stratified", 0) >= 4
    q = sample_home.state.query("SELECT * FROM review_queue")
    assert len(q) == 40
    con = connect(sample_home)
    try:
        scores = dict(con.execute("SELECT turn_id, refusal_score FROM latest_scores").fetchall())
    finally:
        con.close()
    unc = [r for r in q if r["reason"] == "uncertain_refusal"]
    assert all(abs(scores[r["turn_id"]] - 0.5) <= 0.15 for r in unc)
    # every language group got stratified items, the small ones included
    groups = {r["group_key"] for r in q if r["reason"] == "stratified"}
    assert {"en", "es", "hi", "fr"} <= groups
    # a second build never re-queues what is queued
    res2 = review.build_queue(sample_home, size=10, actor="ana")
    q2 = sample_home.state.query("SELECT turn_id FROM review_queue")
    assert len(q2) == 40 + res2.added and len({r["turn_id"] for r in q2}) == len(q2)
    # a reviewer's queue leaves out what they already labelled
    first = review.queue_items(sample_home, "bo", limit=1)[0]["turn_id"]
    review.add_label(sample_home, first, "bo", refusal_correct=True)
    assert first not in {r["turn_id"] for r in review.queue_items(sample_home, "bo", limit=500)}
    assert first in {r["turn_id"] for r in review.queue_items(sample_home, "cy", limit=500)}
    audit = sample_home.state.query("SELECT actor, details FROM audit_log WHERE action='queue.build' ORDER BY id")
    assert audit[0]["actor"] == "ana" and json.loads(audit[0]["details"])["added"] == 40


def test_export_labels_jsonl_and_parquet(sample_home):
    tids = _turn_ids(sample_home, 3)
    for t in tids:
        review.add_label(sample_home, t, "dee", prompt_label="benign", value_concern="moralizing")
    n = len(review.labels(sample_home))
    lines = review.export_labels(sample_home, "jsonl", actor="dee").decode().splitlines()
    assert len(lines) == n
    rec = [json.loads(x) for x in lines if json.loads(x)["reviewer"] == "dee"]
    assert {r["turn_id"] for r in rec} == set(tids)
    assert all(r["user_message"] and r["assistant_message"] and r["predicted_refusal"] for r in rec)
    table = pq.read_table(io.BytesIO(review.export_labels(sample_home, "parquet", actor="dee")))
    assert table.num_rows == n and "refusal_score" in table.column_names
    with pytest.raises(ReviewError, match="jsonl or parquet"):
        review.export_labels(sample_home, "csv")
    assert len(sample_home.state.query("SELECT * FROM audit_log WHERE action='labels.export'")) == 2
