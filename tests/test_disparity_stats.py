"""Worked examples for the disparity statistics: tests, BH, four-fifths, min-n and bounded groups."""
import json

import pandas as pd
import pytest

from monitor.disparity.compute import OTHER, Settings, bound_groups, compare
from monitor.disparity.stats import benjamini_hochberg, four_fifths, two_by_two

W = pd.Timestamp("2026-11-01")


def test_chi_square_worked_example():
    # 30/100 vs 15/100: expected 22.5 / 77.5 per row; chi2 = 7.5^2 * (2/22.5 + 2/77.5) = 6.452, df 1.
    r = two_by_two(30, 100, 15, 100)
    assert r.test == "chi2"
    assert r.statistic == pytest.approx(6.4516, abs=1e-3)
    assert r.p_value == pytest.approx(0.01108, abs=1e-4)


def test_chi_square_equals_scipy_chi2_contingency_exactly():
    import numpy as np
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(7)
    tested = 0
    for _ in range(500):
        n, n_ref = (int(x) for x in rng.integers(20, 5000, 2))
        k, k_ref = int(rng.integers(0, n + 1)), int(rng.integers(0, n_ref + 1))
        r = two_by_two(k, n, k_ref, n_ref)
        if r.test != "chi2":
            continue
        stat, p, _, _ = chi2_contingency(np.array([[k, n - k], [k_ref, n_ref - k_ref]], dtype=float),
                                         correction=False)
        assert (r.statistic, r.p_value) == (float(stat), float(p))
        tested += 1
    assert tested > 400


def test_fisher_when_an_expected_count_is_below_five():
    # [[3, 7], [0, 10]]: expected refusals 1.5 per row -> Fisher exact; two-sided p = 2 * C(10,3)/C(20,3) = 0.2105.
    r = two_by_two(3, 10, 0, 10)
    assert r.test == "fisher"
    assert r.p_value == pytest.approx(0.21053, abs=1e-4)


def test_no_test_without_variation_or_data():
    assert two_by_two(0, 50, 0, 80).test is None  # nobody refused anywhere
    assert two_by_two(5, 10, 0, 0).p_value is None


def test_benjamini_hochberg_worked_example():
    # sorted 0.005, 0.01, 0.03, 0.04 (m=4): p*m/rank = 0.02, 0.02, 0.04, 0.04 (already monotone).
    reject, q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005], 0.05)
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert reject == [True, True, True, True]
    reject, q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005], 0.03)
    assert reject == [True, False, False, True]


def test_four_fifths_uses_good_outcome_rates():
    # Over-refusal 30% vs 10%: served 0.70 / 0.90 = 0.778 < 0.8 -> flagged; 20% vs 10%: 0.889 -> not flagged.
    r, flag = four_fifths(0.30, 0.10)
    assert r == pytest.approx(0.7778, abs=1e-4) and flag
    r, flag = four_fifths(0.20, 0.10)
    assert r == pytest.approx(0.8889, abs=1e-4) and not flag
    assert four_fifths(0.05, 0.30)[1] is False  # a group better served than the reference is never flagged


def _counts(groups: dict[str, tuple[int, int]], attribute="language", model=None, window=W) -> pd.DataFrame:
    """Rows of load_counts' shape where every turn is benign: (n, refusals) per group."""
    rows = []
    for g, (n, k) in groups.items():
        rows.append({"window_start": window, "model": model, "source_kind": "production", "attribute": attribute,
                     "group": g, "segment": json.dumps({attribute: g}), "pair": False, "n": n, "refusals": k,
                     "n_benign": n, "over_refusals": k, "n_harmful": 0, "under_refusals": 0})
    return pd.DataFrame(rows)


def _by(results, metric, group):
    return next(r for r in results if r["metric"] == metric and r["group"] == group)


def test_compare_against_rest_of_traffic_with_hand_numbers():
    s = Settings(min_n=50, fdr=0.05)
    res = compare(_counts({"hi": (100, 30), "en": (100, 15)}), s)
    hi = _by(res, "over_refusal_disparity", "hi")
    assert hi["rate"] == 0.30 and hi["reference_rate"] == 0.15 and hi["reference_n"] == 100
    assert hi["gap"] == pytest.approx(0.15) and hi["ratio"] == pytest.approx(2.0)
    assert hi["p_value"] == pytest.approx(0.01108, abs=1e-4) and hi["test"] == "chi2"
    assert hi["ci_low"] == pytest.approx(0.2189, abs=1e-3) and hi["ci_high"] == pytest.approx(0.3958, abs=1e-3)
    # Family: hi and en for two metrics (refusal and over-refusal tables are identical here but are different
    # hypotheses) = 4 tests, all p = 0.01108 -> q = 0.01108; significant.
    assert hi["bh_family_size"] == 4
    assert hi["q_value"] == pytest.approx(0.01108, abs=1e-4) and hi["significant"]
    assert not any(r["metric"] == "under_refusal_disparity" for r in res)  # no harmful traffic: no row


def test_small_group_reported_but_never_tested():
    s = Settings(min_n=50)
    res = compare(_counts({"hi": (20, 15), "en": (500, 50)}), s)
    hi = _by(res, "over_refusal_disparity", "hi")
    assert hi["rate"] == 0.75 and hi["n"] == 20 and hi["ci_low"] is not None
    assert hi["min_n_ok"] is False and hi["p_value"] is None and hi["significant"] is False
    # en is compared with hi (the rest of traffic): reference n 20 < min_n, so en is not tested either.
    assert _by(res, "over_refusal_disparity", "en")["min_n_ok"] is False


def test_multiple_comparisons_hide_a_lone_nominal_p_value():
    # 20 groups, one at p ~ 0.02 on its own: significant alone, not after BH over the 40 tests of the window.
    groups = {f"g{i:02d}": (200, 20) for i in range(19)}
    groups["hit"] = (200, 32)
    res = compare(_counts(groups), Settings(min_n=50, fdr=0.05))
    hit = _by(res, "over_refusal_disparity", "hit")
    assert hit["p_value"] < 0.05
    assert hit["q_value"] > 0.05 and not hit["significant"]
    res_alone = compare(_counts({"hit": (200, 32), "rest": (3800, 380)}), Settings(min_n=50, fdr=0.05))
    assert _by(res_alone, "over_refusal_disparity", "hit")["p_value"] == pytest.approx(hit["p_value"])


def test_configured_reference_group():
    s = Settings(min_n=50, reference_group={"language": "en"})
    res = compare(_counts({"en": (200, 20), "hi": (100, 30), "es": (100, 10)}), s)
    hi = _by(res, "over_refusal_disparity", "hi")
    assert hi["reference_label"] == "language=en" and hi["reference_rate"] == 0.10 and hi["reference_n"] == 200
    assert hi["ratio"] == pytest.approx(3.0)
    en = _by(res, "over_refusal_disparity", "en")
    assert en["is_reference"] and en["p_value"] is None and en["gap"] is None


def test_bound_groups_pools_the_long_tail():
    df = _counts({"en": (500, 50), "es": (300, 30), "fr": (100, 10), "xx": (20, 2), "yy": (10, 9)})
    out = bound_groups(df, Settings(max_groups=3, min_n=50))
    assert sorted(out["group"]) == sorted(["en", "es", "fr", OTHER])
    other = out[out["group"] == OTHER].iloc[0]
    assert other["n"] == 30 and other["refusals"] == 11 and json.loads(other["segment"]) == {"language": OTHER}
    # The configured reference group is always kept, even if small.
    out = bound_groups(df, Settings(max_groups=2, min_n=50, reference_group={"language": "yy"}))
    assert set(out["group"]) == {"yy", "en", OTHER}


def test_intersection_groups_below_min_n_are_pooled():
    df = _counts({"hi&18-24": (120, 10), "hi&65+": (30, 3), "en&18-24": (400, 40)}, attribute="language&age_band")
    df["pair"] = True
    out = bound_groups(df, Settings(max_groups=10, min_n=50))
    assert set(out["group"]) == {"hi&18-24", "en&18-24", OTHER}


def test_two_models_with_equal_counts_are_two_hypotheses():
    import numpy as np
    from scipy.stats import chi2_contingency
    from statsmodels.stats.multitest import multipletests

    per_model = {"hi": (100, 30), "en": (100, 15)}
    both = {"hi": (200, 60), "en": (200, 30)}
    df = pd.concat([_counts(per_model, model="assistant@a"), _counts(per_model, model="assistant@b"),
                    _counts(both)], ignore_index=True)
    res = compare(df, Settings(min_n=50, fdr=0.05))
    # Model a's and model b's tables happen to be equal, but they are different traffic: 2 groups x 2 metrics x
    # (a, b, all models) = 12 hypotheses, not 8.
    assert {r["bh_family_size"] for r in res} == {12}

    def p(k, n, k_ref, n_ref):
        return chi2_contingency(np.array([[k, n - k], [k_ref, n_ref - k_ref]]), correction=False)[1]

    one = [p(30, 100, 15, 100), p(15, 100, 30, 100)] * 4  # a and b, hi and en, two metrics
    ps = one + [p(60, 200, 30, 200), p(30, 200, 60, 200)] * 2
    q = multipletests(ps, 0.05, "fdr_bh")[1]
    hi_a = next(r for r in res if r["model"] == "assistant@a" and r["group"] == "hi")
    hi_all = next(r for r in res if r["model"] is None and r["group"] == "hi")
    assert hi_a["q_value"] == pytest.approx(q[0], rel=1e-12)
    assert hi_all["q_value"] == pytest.approx(q[8], rel=1e-12)
    # One model in the window: its rows are the all-models rows' twins, one hypothesis each.
    res = compare(pd.concat([_counts(per_model, model="assistant@a"), _counts(per_model)], ignore_index=True),
                  Settings(min_n=50, fdr=0.05))
    assert {r["bh_family_size"] for r in res} == {4}
