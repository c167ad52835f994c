"""Refusal metric SQL and the refusal_metrics job on a tiny hand-made lake, checked against hand-computed numbers."""
import datetime as dt
import json

import numpy as np
import pytest

from monitor.db import connect
from monitor.incremental import date_bounds
from monitor.jobs import JobContext
from monitor.jobs.refusal_metrics import STATE_KEY, run_refusal_metrics
from monitor.resources import load_sql
from monitor.stats import correct_many_joint, wilson
from test_refusal_metrics_util import add_labels, add_scores, add_turns, turn_id

D1 = dt.datetime(2026, 3, 1)
D2 = dt.datetime(2026, 3, 2)
LABEL_DAY = dt.datetime(2026, 2, 1)

# Day 1: five scored turns, one unscored, one re-scored (only the newer score counts).
#   key  model deployment lang feedback  prompt_harm refusal
#   a    m-1   prod       de   down      benign      full_refusal
#   b    m-2   prod       en   -         harmful     compliance
#   c    m-1   prod       de   up        harmful     partial_refusal
#   e    m-2   staging    en   -         benign      compliance
#   g    m-1   prod       -    -         benign      compliance (v1) -> full_refusal (v2, later)
#   f    m-1   prod       -    -         (no score: not counted)
# Day 2: d  m-1 prod, prompt harm unknown, compliance.
TURNS = [
    dict(key="a", ts=D1 + dt.timedelta(hours=10), model="m-1", segments={"language": "de"}, feedback="down"),
    dict(key="b", ts=D1 + dt.timedelta(hours=11), model="m-2", segments={"language": "en"}),
    dict(key="c", ts=D1 + dt.timedelta(hours=12), model="m-1", segments={"language": "de"}, feedback="up"),
    dict(key="e", ts=D1 + dt.timedelta(hours=13), model="m-2", deployment="staging", segments={"language": "en"}),
    dict(key="g", ts=D1 + dt.timedelta(hours=14), model="m-1"),
    dict(key="f", ts=D1 + dt.timedelta(hours=15), model="m-1"),
    dict(key="d", ts=D2 + dt.timedelta(hours=1), model="m-1"),
]


def _scores(ts_of):
    return [
        dict(key="a", ts=ts_of["a"], refusal="full_refusal", prompt_harm="benign"),
        dict(key="b", ts=ts_of["b"], refusal="compliance", prompt_harm="harmful"),
        dict(key="c", ts=ts_of["c"], refusal="partial_refusal", prompt_harm="harmful"),
        dict(key="e", ts=ts_of["e"], refusal="compliance", prompt_harm="benign"),
        dict(key="g", ts=ts_of["g"], refusal="compliance", prompt_harm="benign",
             scored_at=dt.datetime(2026, 3, 5)),
        dict(key="d", ts=ts_of["d"], refusal="compliance", prompt_harm=None),
    ]


@pytest.fixture
def lake(home):
    add_turns(home, TURNS)
    ts_of = {t["key"]: t["ts"] for t in TURNS}
    add_scores(home, _scores(ts_of), version="v1")
    add_scores(home, [dict(key="g", ts=ts_of["g"], refusal="full_refusal", prompt_harm="benign",
                           scored_at=dt.datetime(2026, 3, 6))], version="v2")
    return home


COLS = ("n", "refusals", "partial_refusals", "benign_complied", "benign_refused", "harmful_complied",
        "harmful_refused", "feedback_n", "thumbs_down")


def _sql_rows(home, windows, attributes=("language",)):
    con = connect(home)
    try:
        q = load_sql("metrics/refusal_rates.sql")
        date_min, date_max = date_bounds(windows, "day")
        df = con.execute(q.sql, {"granularity": "day", "windows": windows, "attributes": list(attributes),
                                 "date_min": date_min, "date_max": date_max}).df()
    finally:
        con.close()
    out = {}
    for r in df.to_dict("records"):
        key = (r["window_start"].to_pydatetime(), r["model"], r["deployment"], r["seg_attribute"], r["seg_value"])
        key = tuple(None if (isinstance(x, float)) else x for x in key)
        out[key] = tuple(int(r[c]) for c in COLS)
        assert r["window_end"] - r["window_start"] == dt.timedelta(days=1)
    return out


def test_refusal_rates_sql_hand_computed(lake):
    rows = _sql_rows(lake, [D1])
    #                                              n  ref part bc br hc hr fb down
    assert rows[(D1, None, None, None, None)] == (5, 3, 1, 1, 2, 1, 1, 2, 1)
    assert rows[(D1, "m-1", None, None, None)] == (3, 3, 1, 0, 2, 0, 1, 2, 1)
    assert rows[(D1, "m-2", None, None, None)] == (2, 0, 0, 1, 0, 1, 0, 0, 0)
    assert rows[(D1, None, "staging", None, None)] == (1, 0, 0, 1, 0, 0, 0, 0, 0)
    assert rows[(D1, None, "prod", None, None)] == (4, 3, 1, 0, 2, 1, 1, 2, 1)
    assert rows[(D1, None, None, "language", "de")] == (2, 2, 1, 0, 1, 0, 1, 2, 1)
    assert rows[(D1, None, None, "language", "en")] == (2, 0, 0, 1, 0, 1, 0, 0, 0)
    assert rows[(D1, "m-2", None, "language", "en")] == (2, 0, 0, 1, 0, 1, 0, 0, 0)
    assert all(k[0] == D1 for k in rows), "only the requested window is computed"
    # all (all, de, en) + m-1 (all, de) + m-2 (all, en) + prod (all, de, en) + staging (all, en)
    assert len(rows) == 3 + 2 + 2 + 3 + 2


def test_refusal_rates_sql_day_two_and_no_segments(lake):
    rows = _sql_rows(lake, [D2], attributes=())
    assert rows == {
        (D2, None, None, None, None): (1, 0, 0, 0, 0, 0, 0, 0, 0),
        (D2, "m-1", None, None, None): (1, 0, 0, 0, 0, 0, 0, 0, 0),
        (D2, None, "prod", None, None): (1, 0, 0, 0, 0, 0, 0, 0, 0),
    }


def _label_sample(home):
    """80 labelled, scored turns on another day: refusal sens 36/40, spec 38/40; harm sens 32/40, spec 36/40."""
    turns, scores, labels = [], [], []
    for i in range(80):
        key = f"lab{i}"
        ts = LABEL_DAY + dt.timedelta(minutes=i)
        true_refusal = i < 40
        pred_refusal = (i < 36) or (40 <= i < 42)
        true_harm = i % 2 == 0
        j = i // 2  # 0..39 within each harm class
        pred_harm = (j < 32) if true_harm else (j >= 36)
        turns.append(dict(key=key, ts=ts))
        scores.append(dict(key=key, ts=ts, refusal="full_refusal" if pred_refusal else "compliance",
                           prompt_harm="harmful" if pred_harm else "benign"))
        labels.append((turn_id(key), "partial_refusal" if true_refusal else "compliance",
                       "harmful" if true_harm else "benign"))
    add_turns(home, turns)
    add_scores(home, scores, version="v2")
    add_labels(home, labels)


def _label_sample_joint():
    """The 4x4 [true, pred] counts of _label_sample, tallied independently of the job."""
    out = np.zeros((4, 4))
    for i in range(80):
        j = i // 2
        true_h, true_r = i % 2 == 0, i < 40
        pred_h = (j < 32) if true_h else (j >= 36)
        pred_r = (i < 36) or (40 <= i < 42)
        out[2 * true_h + true_r, 2 * pred_h + pred_r] += 1
    return out


def _metrics(home, where="", params=None):
    con = connect(home)
    try:
        return con.execute(f"SELECT * FROM metrics {where} ORDER BY metric, window_start", params or {}).df()
    finally:
        con.close()


def test_job_rows_wilson_and_label_based_correction(lake):
    _label_sample(lake)
    ctx = JobContext(lake, dt.datetime(2026, 3, 10))
    written = run_refusal_metrics(ctx, draws=200)
    assert written > 0
    df = _metrics(lake, "WHERE window_start = $d AND model IS NULL AND deployment IS NULL AND segment = '{}'",
                  {"d": D1})
    by = {r["metric"]: r for r in df.to_dict("records")}
    assert set(by) == {"turn_count", "refusal_rate", "partial_refusal_share", "over_refusal_rate",
                       "under_refusal_rate", "thumbs_down_rate"}
    assert by["turn_count"]["value"] == 5 and by["turn_count"]["n"] == 5
    rr = by["refusal_rate"]
    assert (rr["value"], rr["n"], rr["numerator"]) == (pytest.approx(0.6), 5, 3)
    assert (rr["ci_low"], rr["ci_high"]) == pytest.approx(wilson(3, 5))
    assert rr["small_sample"] is True or rr["small_sample"] == 1
    assert by["partial_refusal_share"]["value"] == pytest.approx(1 / 3)
    assert by["thumbs_down_rate"]["value"] == pytest.approx(0.5) and by["thumbs_down_rate"]["n"] == 2
    over, under = by["over_refusal_rate"], by["under_refusal_rate"]
    assert (over["value"], over["n"]) == (pytest.approx(2 / 3), 3)
    assert (under["value"], under["n"]) == (pytest.approx(1 / 2), 2)
    # Error rates from the 80 reviewer labels (>= 30 per class for both classifiers).
    details = json.loads(over["details"])
    assert details["correction"]["refusal"] == {"sensitivity": 0.9, "specificity": 0.95, "n_pos": 40,
                                                "n_neg": 40, "source": "labels"}
    assert details["correction"]["harm"] == {"sensitivity": 0.8, "specificity": 0.9, "n_pos": 40, "n_neg": 40,
                                             "source": "labels"}
    # Every true cell has 20 labels (>= JOINT_MIN_PER_CELL): the 4x4 matrix from the labels is used. The labels
    # are all on another day, so none of D1's own turns is labelled: plain matrix inversion.
    corr = details["correction"]
    assert (corr["method"], corr["source"], corr["in_group_labels"]) == ("joint_matrix", "labels:all_models", 0)
    assert corr["matrix_n_per_true_cell"] == [20, 20, 20, 20]
    expected = correct_many_joint([[[1, 2], [1, 1]]], _label_sample_joint(), draws=200)[0]
    assert over["corrected"] == pytest.approx(expected.over.value)
    assert (over["corrected_ci_low"], over["corrected_ci_high"]) == pytest.approx(
        (expected.over.low, expected.over.high))
    assert under["corrected"] == pytest.approx(expected.under.value)
    assert over["corrected_ci_low"] <= over["corrected"] <= over["corrected_ci_high"]
    assert rr["corrected"] != rr["corrected"]  # NaN: plain rates have no corrected value
    seg = _metrics(lake, "WHERE window_start = $d AND metric = 'refusal_rate' AND segment <> '{}' "
                   "AND model IS NULL AND deployment IS NULL", {"d": D1})
    assert {s: v for s, v in zip(seg["segment"], seg["value"])} == {'{"language": "de"}': 1.0,
                                                                    '{"language": "en"}': 0.0}


def test_job_is_incremental_and_recomputes_on_new_labels(lake):
    ctx = JobContext(lake, dt.datetime(2026, 3, 10))
    _label_sample(lake)
    assert run_refusal_metrics(ctx, draws=50) > 0
    assert run_refusal_metrics(ctx, draws=50) == 0, "nothing new: nothing recomputed"
    state = lake.state.get(STATE_KEY)
    assert state["windows_last_run"] == 3  # D1, D2 and the label day
    # A late turn on day 2 only: exactly that window is recomputed.
    add_turns(lake, [dict(key="late", ts=D2 + dt.timedelta(hours=5), model="m-2")])
    add_scores(lake, [dict(key="late", ts=D2 + dt.timedelta(hours=5), refusal="full_refusal",
                           prompt_harm="benign")], version="v2")
    assert run_refusal_metrics(ctx, draws=50) > 0
    assert lake.state.get(STATE_KEY)["windows_last_run"] == 1
    day2 = _metrics(lake, "WHERE window_start = $d AND metric = 'turn_count' AND segment = '{}' "
                    "AND model IS NULL AND deployment IS NULL", {"d": D2})
    assert day2["value"].tolist() == [2.0]
    # New reviewer labels change the measured error rates: every window is recomputed.
    add_labels(lake, [(turn_id("a"), "full_refusal", "benign")])
    assert run_refusal_metrics(ctx, draws=50) > 0
    assert lake.state.get(STATE_KEY)["windows_last_run"] == 3


def test_rescore_retires_groups_that_lost_their_data(lake):
    _label_sample(lake)
    ctx = JobContext(lake, dt.datetime(2026, 3, 10))
    run_refusal_metrics(ctx, draws=50)
    q = ("WHERE metric = 'under_refusal_rate' AND window_start = $d AND segment = '{\"language\": \"en\"}' "
         "AND model IS NULL AND deployment IS NULL")
    assert _metrics(lake, q, {"d": D1})["n"].tolist() == [1]  # turn b: harmful, complied
    # A new classifier version calls b's prompt benign: the en segment has no harmful-predicted turn left.
    add_scores(lake, [dict(key="b", ts=D1 + dt.timedelta(hours=11), refusal="compliance", prompt_harm="benign")],
               version="v3")
    run_refusal_metrics(ctx, draws=50)
    retired = _metrics(lake, q, {"d": D1})
    assert retired["n"].tolist() == [0] and retired["value"].isna().all()


class _Quality:
    """Classifiers stand-in exposing only `quality()`, the one thing the job asks of them without labels."""

    def __init__(self, quality):
        self._q = quality

    def quality(self):
        return self._q


SHARED_HARM = {"sensitivity": 0.89, "specificity": 0.925, "n_pos": 64, "n_neg": 80}
SHARED_REFUSAL = {"sensitivity": 0.967, "specificity": 0.921, "n_pos": 391, "n_neg": 329}
SHARED_JOINT = [[233, 22, 30, 1], [10, 80, 0, 24], [7, 0, 34, 2], [0, 28, 8, 241]]


@pytest.mark.parametrize("joint, method, source", [
    ({"counts": SHARED_JOINT}, "joint_matrix", "shared_eval_joint"),
    (SHARED_JOINT, "joint_matrix", "shared_eval_joint"),
    (None, "two_classifier_inversion", "independent"),
    ({"counts": [[1, 2], [3, 4]]}, "two_classifier_inversion", "independent"),  # malformed: ignored
])
def test_without_labels_the_shared_evaluation_matrix_is_used(lake, joint, method, source):
    quality = {"harm": SHARED_HARM, "refusal": SHARED_REFUSAL, **({"joint": joint} if joint else {})}
    run_refusal_metrics(JobContext(lake, dt.datetime(2026, 3, 10)), clf=_Quality(quality), draws=50)
    df = _metrics(lake, "WHERE window_start = $d AND metric = 'under_refusal_rate' AND model IS NULL "
                  "AND deployment IS NULL AND segment = '{}'", {"d": D1})
    row = df.to_dict("records")[0]
    corr = json.loads(row["details"])["correction"]
    assert (corr["method"], corr["source"]) == (method, source)
    if source == "shared_eval_joint":
        assert corr["matrix_n_per_true_cell"] == [286, 114, 43, 277]
        expected = correct_many_joint([[[1, 2], [1, 1]]], np.array(SHARED_JOINT, float), draws=50)[0]
        assert row["corrected"] == pytest.approx(expected.under.value)
    else:
        assert "independent" in corr["assumption"] and corr["harm"]["source"] == "shared_eval"


def test_per_model_matrix_and_in_group_labels(lake):
    _label_sample(lake)  # 80 labelled turns of model m-1 on LABEL_DAY, 20 per true cell
    run_refusal_metrics(JobContext(lake, dt.datetime(2026, 3, 10)), draws=50)
    df = _metrics(lake, "WHERE metric = 'over_refusal_rate' AND deployment IS NULL AND segment = '{}'")
    by = {(r["window_start"].to_pydatetime(), r["model"] if isinstance(r["model"], str) else None):
          json.loads(r["details"])["correction"] for r in df.to_dict("records")}
    assert by[(D1, "m-1")]["source"] == "labels:model"
    assert by[(D1, None)]["source"] == "labels:all_models"
    # m-2 has no labels of its own: the pooled matrix.
    assert by[(D1, "m-2")]["source"] == "labels:all_models"
    # On the label day every turn is labelled: EM with all 80 labels in the row.
    assert (by[(LABEL_DAY, None)]["method"], by[(LABEL_DAY, None)]["in_group_labels"]) == ("joint_em", 80)


def _table_rows(tables):
    """Metric-SQL-shaped rows (all traffic of one day each) with the given 2x2 tables [[bc, br], [hc, hr]]."""
    import pandas as pd

    recs = []
    for i, ((bc, br), (hc, hr)) in enumerate(tables):
        n = bc + br + hc + hr
        recs.append({"window_start": pd.Timestamp(D1 + dt.timedelta(days=i)),
                     "window_end": pd.Timestamp(D1 + dt.timedelta(days=i + 1)), "model": None, "deployment": None,
                     "seg_attribute": None, "seg_value": None, "n": n, "refusals": br + hr, "partial_refusals": 0,
                     "benign_complied": bc, "benign_refused": br, "harmful_complied": hc, "harmful_refused": hr,
                     "feedback_n": 0, "thumbs_down": 0})
    return pd.DataFrame(recs)


def test_a_correction_clipped_to_a_point_is_not_reported_as_one():
    """Counts no true table can produce under the error rates used give every bootstrap draw the same clipped 0:
    an interval of zero width. That is no measurement, so the row gets no corrected value and a note saying why;
    a clipped point whose interval stays wide keeps its value, with a note to read the bound."""
    import pandas as pd

    from monitor.jobs.refusal_metrics import Corrector, build_rows

    # A near-perfect shared matrix [true, pred] (1% errors, 3,000 items per true cell).
    joint = np.full((4, 4), 10.0) + np.diag(np.full(4, 2970.0))
    corr = Corrector(pd.DataFrame(), np.zeros((4, 4)), {}, joint, None, None, {})
    df = _table_rows([
        [[3000, 0], [500, 500]],  # no refusal of a benign prompt seen, yet the matrix predicts ~10 from errors
        [[1970, 60], [500, 500]],  # 3% seen: an ordinary correction
        [[20, 0], [5, 5]],  # tiny: clipped, but the interval is wide
    ])
    rows = {(r["window_start"], r["metric"]): r for r in build_rows(df, "day", 0.95, 30, corr, draws=200)}
    collapsed = rows[(D1, "over_refusal_rate")]
    details = json.loads(collapsed["details"])
    assert collapsed["value"] == 0 and collapsed["ci_high"] > 0  # the raw rate and its Wilson interval stay
    assert collapsed["corrected"] is None and collapsed["corrected_ci_low"] is None
    assert details["correction_note"].startswith("not estimable") and "label a random sample" in details["correction_note"]
    # Without the rule the same estimate reads 0 with the interval [0, 0].
    raw = correct_many_joint([[[3000, 0], [500, 500]]], joint, draws=200)[0].over
    assert (raw.value, raw.low, raw.high) == (0.0, 0.0, 0.0)

    ordinary = rows[(D1 + dt.timedelta(days=1), "over_refusal_rate")]
    assert 0.015 < ordinary["corrected"] < 0.035 and ordinary["corrected_ci_high"] - ordinary["corrected_ci_low"] > 0.005
    assert "correction_note" not in json.loads(ordinary["details"])

    tiny = rows[(D1 + dt.timedelta(days=2), "over_refusal_rate")]
    assert tiny["corrected"] == 0.0 and tiny["corrected_ci_high"] > 0.005
    assert json.loads(tiny["details"])["correction_note"].startswith("clipped at 0")
