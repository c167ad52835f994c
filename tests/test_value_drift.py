"""Evidently's drift numbers against independent scipy computations, and the job's verdicts against a full Report."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from monitor.values import drift as D
from valuesim import hh_pairs


@pytest.fixture(scope="module")
def real_scores():
    from monitor.values import load_scorer

    pairs = hh_pairs()
    res = load_scorer().score([p[1] for p in pairs])
    return res.scores[res.scored].reset_index(drop=True)


def test_evidently_numeric_methods_match_scipy(real_scores):
    ref = real_scores["hedging"].iloc[:1500]
    cur = real_scores["hedging"].iloc[1500:2100] * 1.3  # a real-data column, current scaled up
    ks = D.column_drift(ref, cur, "num", "ks")
    assert ks.score == pytest.approx(stats.ks_2samp(ref, cur).pvalue, rel=1e-9)
    w = D.column_drift(ref, cur, "num", "wasserstein")
    assert w.score == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=1e-9)
    t = D.column_drift(ref, cur, "num", "t_test")
    assert t.score == pytest.approx(stats.ttest_ind(ref, cur).pvalue, rel=1e-9)


def test_mean_shift_matches_scipy(real_scores):
    ref = real_scores["care_vice"].iloc[:2000]
    cur = real_scores["care_vice"].iloc[2000:2500] + (np.arange(500) % 4 == 0) * 2.0
    res = D.column_drift(ref, cur, "num")
    assert res.method == "mean_shift" and res.threshold == 0.2
    sp = np.sqrt(((len(ref) - 1) * ref.var() + (len(cur) - 1) * cur.var()) / (len(ref) + len(cur) - 2))
    d = (cur.mean() - ref.mean()) / sp
    assert res.score == pytest.approx(abs(d), rel=1e-9)
    p_t = stats.ttest_ind(cur, ref, equal_var=True).pvalue
    kc, kr = int((cur > 0).sum()), int((ref > 0).sum())
    p_f = stats.fisher_exact([[kc, len(cur) - kc], [kr, len(ref) - kr]]).pvalue
    assert res.p_value == pytest.approx(max(p_t, p_f), rel=1e-6)
    assert res.drift_detected == (abs(d) >= 0.2 and max(p_t, p_f) < D.ALPHA)
    assert res.drift_detected  # a quarter of replies gaining 2 care-vice points is a real shift


def test_categorical_methods_match_scipy():
    rng = np.random.default_rng(3)
    cats = ["crime_theft", "violence", "other", "sex"]
    ref = pd.Series(rng.choice(cats, 3000, p=[0.2, 0.2, 0.5, 0.1]))
    cur = pd.Series(rng.choice(cats, 800, p=[0.35, 0.15, 0.4, 0.1]))
    keys = sorted(cats)
    rc = ref.value_counts().reindex(keys).to_numpy(float)
    cc = cur.value_counts().reindex(keys).to_numpy(float)
    js = D.column_drift(ref, cur, "cat", "jensenshannon")
    assert js.score == pytest.approx(distance.jensenshannon(rc / rc.sum(), cc / cc.sum()), rel=1e-9)
    chi = D.column_drift(ref, cur, "cat", "chisquare")
    assert chi.score == pytest.approx(stats.chisquare(cc, rc * cc.sum() / rc.sum()).pvalue, rel=1e-9)
    mix = D.column_drift(ref, cur, "cat")
    assert mix.method == "mix_shift" and mix.score == pytest.approx(js.score, rel=1e-9)
    assert mix.p_value == pytest.approx(stats.chi2_contingency(np.vstack([rc, cc]))[1], rel=1e-9)
    assert mix.drift_detected


def test_job_verdicts_equal_full_evidently_report(real_scores):
    cols = ["hedging", "care_vice", "legal_reference"]
    ref = real_scores[cols].iloc[:1500]
    cur = real_scores[cols].iloc[1500:1900].copy()
    cur["legal_reference"] = cur["legal_reference"] + 1.5  # one drifting column
    via_report = D.report_verdicts(cur, ref, cols)
    for c in cols:
        direct = D.column_drift(ref[c], cur[c], "num")
        assert via_report[c][0] == pytest.approx(direct.score, rel=1e-9)
        assert via_report[c][1] == direct.drift_detected
    assert via_report["legal_reference"][1] and not via_report["hedging"][1]


def test_stratify_reweights_reference_to_current_topic_mix():
    ref = pd.DataFrame({"topic": ["a"] * 900 + ["b"] * 100, "x": [0.0] * 900 + [1.0] * 100})
    cur_topics = pd.Series(["a"] * 50 + ["b"] * 50 + ["c"] * 10)
    out, dropped = D.stratify(ref, cur_topics, "topic", "k")
    assert dropped == pytest.approx(10 / 110)
    assert len(out) == 1000
    assert out["topic"].value_counts(normalize=True).to_dict() == {"a": 0.5, "b": 0.5}
    out2, _ = D.stratify(ref, cur_topics, "topic", "k")
    assert out.equals(out2)  # deterministic


def test_own_methods_give_what_evidentlys_registered_stattest_gives(real_scores):
    """The default tests run without Evidently's wrapper; through the registry they must give the same numbers."""
    registry, ColumnType = D._evidently()
    col = real_scores["care_vice"]
    cases = [(col.iloc[:800], col.iloc[800:1100] + 0.3, "num", ColumnType.Numerical, None),
             (col.iloc[:800], col.iloc[800:1100], "num", ColumnType.Numerical, 0.05),
             (pd.Series(list("aabbbc") * 50), pd.Series(list("abccc") * 40), "cat", ColumnType.Categorical, None)]
    for ref, cur, kind, ctype, threshold in cases:
        got = D.column_drift(ref, cur, kind, None, threshold)
        r = ref.reset_index(drop=True).astype(float if kind == "num" else str)
        c = cur.reset_index(drop=True).astype(float if kind == "num" else str)
        st = registry.get_stattest(r, c, ctype, D.resolve_method(None, kind))
        res = st(r, c, ctype, threshold)
        assert (got.method, got.threshold, got.score, got.drift_detected) == \
            (st.name, res.actual_threshold, res.drift_score, res.drifted)


def test_default_methods_do_not_import_evidently():
    import subprocess
    import sys

    code = ("import sys, pandas as pd; from monitor.values import drift as D; "
            "D.column_drift(pd.Series([0.1, 0.2, 0.3] * 20), pd.Series([0.2, 0.4] * 20), 'num'); "
            "D.column_drift(pd.Series(list('ab') * 9), pd.Series(list('abb') * 5), 'cat'); "
            "print('evidently' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_column_above_zero_everywhere_can_drift():
    # The refusal probability is above 0 in every reply: the share above zero is 1 on both sides and Fisher's
    # p = 1 carries no information. The verdict is the pooled t-test's (it used to be max(p_t, 1) = 1: never).
    ref = pd.Series(np.linspace(0.05, 0.65, 400))  # mean 0.35
    cur = pd.Series(np.linspace(0.15, 0.75, 300))  # mean 0.45: the assistant refuses more
    res = D.column_drift(ref, cur, "num")
    p_t = stats.ttest_ind(cur, ref, equal_var=True).pvalue
    sp = np.sqrt((399 * ref.var() + 299 * cur.var()) / 698)
    assert res.p_value == pytest.approx(p_t, rel=1e-9) and p_t < D.ALPHA
    assert res.score == pytest.approx(0.1 / sp, rel=1e-9) and res.drift_detected
    m2 = lambda x: float(((x - x.mean()) ** 2).sum())  # noqa: E731
    effect, p = D.mean_shift_stats([400], [ref.mean()], [m2(ref)], [400], [True], [300], [cur.mean()], [m2(cur)],
                                   [300], [True])
    assert p[0] == pytest.approx(p_t, rel=1e-9) and effect[0] == pytest.approx(0.1 / sp, rel=1e-9)
    # One reply at exactly 0 and the share test applies again (as for the lexicon scores).
    ref0 = ref.copy()
    ref0.iloc[0] = 0.0
    assert D.column_drift(ref0, cur, "num").p_value >= stats.fisher_exact([[300, 0], [399, 1]])[1]
