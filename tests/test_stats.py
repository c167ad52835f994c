"""Interval and correction math of monitor/stats.py against hand-computed worked examples."""
import math

import numpy as np
import pytest

from monitor.stats import (
    ErrorRates, correct_joint_em, correct_many, correct_many_joint, correct_two_classifiers, project_simplex,
    rogan_gladen, rogan_gladen_interval,
    true_joint, wilson, z_value,
)


def test_wilson_worked_examples():
    # 8/10 at 95%: z = 1.95996, centre = (0.8 + z^2/20) / (1 + z^2/10) = 0.71681,
    # half = z * sqrt(0.8*0.2/10 + z^2/400) / (1 + z^2/10) = 0.22657.
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-5) and hi == pytest.approx(0.94332, abs=1e-5)
    # 0/10: lower bound exactly 0, upper z^2/(n + z^2) = 3.8415/13.8415 = 0.27753.
    assert wilson(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    assert wilson(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))
    lo90, hi90 = wilson(8, 10, confidence=0.90)
    assert lo90 > lo and hi90 < hi
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_wilson_vectorised_matches_scalar():
    lo, hi = wilson(np.array([0, 3, 50]), np.array([5, 10, 100]))
    for i, (k, n) in enumerate([(0, 5), (3, 10), (50, 100)]):
        assert (lo[i], hi[i]) == pytest.approx(wilson(k, n))


def test_rogan_gladen_worked_example():
    # (0.3 + 0.8 - 1) / (0.9 + 0.8 - 1) = 0.1 / 0.7
    assert rogan_gladen(0.3, 0.9, 0.8) == pytest.approx(1 / 7)
    assert rogan_gladen(0.1, 0.9, 0.8) == 0.0  # (0.1 - 0.2) / 0.7 < 0: clipped
    assert rogan_gladen(0.95, 0.9, 0.8) == 1.0  # (0.95 - 0.2) / 0.7 > 1: clipped
    assert math.isnan(rogan_gladen(0.3, 0.5, 0.4))  # no better than chance: not identifiable


def test_rogan_gladen_interval_widens_with_fewer_labels():
    many = rogan_gladen_interval(300, 1000, ErrorRates.from_rates(0.9, 0.8, 5000, 5000))
    few = rogan_gladen_interval(300, 1000, ErrorRates.from_rates(0.9, 0.8, 40, 40))
    assert many.value == few.value == pytest.approx(1 / 7)
    assert few.low <= many.low <= 1 / 7 <= many.high <= few.high
    assert (few.high - few.low) > 1.5 * (many.high - many.low)


def test_project_simplex_worked_example():
    # sorted (0.6, 0.5, 0, -0.1): two cells stay positive, theta = (0.6 + 0.5 - 1) / 2 = 0.05
    assert project_simplex(np.array([0.5, 0.6, -0.1, 0.0])) == pytest.approx([0.45, 0.55, 0.0, 0.0])
    assert project_simplex(np.array([0.25, 0.25, 0.25, 0.25])) == pytest.approx([0.25] * 4)


# Worked example of the two-classifier correction. Truth: 70% benign prompts of which 10% refused, 30% harmful
# of which 10% complied: T = [[0.63, 0.07], [0.03, 0.27]] (rows benign/harmful, columns complied/refused).
# Harm classifier sens 0.9 spec 0.8: C_h = [[0.8, 0.1], [0.2, 0.9]]; refusal classifier sens 0.95 spec 0.9:
# C_r = [[0.9, 0.05], [0.1, 0.95]]. Observed O = C_h T C_r^T:
#   C_h T = [[0.507, 0.083], [0.153, 0.257]]
#   O     = [[0.46045, 0.12955], [0.15055, 0.25945]]
# Raw over-refusal = 0.12955 / 0.59 = 0.2196 (2.2x the truth), raw under-refusal = 0.15055 / 0.41 = 0.3672 (3.7x).
WORKED_COUNTS = [[46045, 12955], [15055, 25945]]
HARM = ErrorRates.from_rates(0.9, 0.8, 500, 500)
REFUSAL = ErrorRates.from_rates(0.95, 0.9, 500, 500)


def test_two_classifier_correction_worked_example():
    t = true_joint(np.array(WORKED_COUNTS) / 100_000, 0.9, 0.8, 0.95, 0.9)
    assert t == pytest.approx(np.array([[0.63, 0.07], [0.03, 0.27]]), abs=1e-9)
    res = correct_two_classifiers(WORKED_COUNTS, HARM, REFUSAL)
    assert res.over.value == pytest.approx(0.10, abs=1e-9)
    assert res.under.value == pytest.approx(0.10, abs=1e-9)
    raw_over, raw_under = 12955 / 59000, 15055 / 41000
    assert raw_over == pytest.approx(0.2196, abs=1e-4) and raw_under == pytest.approx(0.3672, abs=1e-4)
    # The intervals carry the uncertainty of sens/spec from 500 labels per class: far wider than the
    # binomial interval of 100,000 turns, yet they exclude the raw values.
    assert res.over.low < 0.10 < res.over.high < raw_over
    assert res.under.low < 0.10 < res.under.high < raw_under
    assert res.over.high - res.over.low > 0.03


def test_perfect_classifiers_leave_rates_unchanged():
    perfect = ErrorRates(1000, 1000, 1000, 1000)
    res = correct_two_classifiers([[80, 20], [5, 95]], perfect, perfect)
    assert res.over.value == pytest.approx(0.2) and res.under.value == pytest.approx(0.05)


def test_negative_cells_are_projected_and_undefined_rates_are_nan():
    # Nothing observed as harmful-complied, and fewer benign refusals than the refusal classifier's false
    # positives would produce: the inversion goes negative there and is projected back to zero.
    res = correct_two_classifiers([[95, 5], [0, 100]], HARM, REFUSAL)
    assert res.joint.min() >= 0 and res.joint.sum() == pytest.approx(1)
    assert res.under.value == 0.0 and res.over.value == 0.0
    empty_harm = correct_two_classifiers([[90, 10], [0, 0]], HARM, REFUSAL)
    assert math.isnan(empty_harm.under.value) and not math.isnan(empty_harm.over.value)
    useless = ErrorRates.from_rates(0.5, 0.4, 100, 100)
    assert math.isnan(correct_two_classifiers([[90, 10], [5, 5]], useless, REFUSAL).over.value)


def test_batch_results_do_not_depend_on_batch_composition():
    tables = [[[50, 10], [5, 20]], [[500, 60], [30, 200]], [[7, 1], [2, 3]]]
    alone = correct_two_classifiers(tables[1], HARM, REFUSAL)
    together = correct_many(tables, HARM, REFUSAL)[1]
    assert (alone.over, alone.under) == (together.over, together.under)


@pytest.mark.parametrize("labels_per_class", [60, 400])
def test_corrected_interval_coverage(labels_per_class):
    """Nominal 95% intervals must cover the true rates in most replications, labels estimated from samples."""
    rng = np.random.default_rng(7)
    truth = np.array([[0.63, 0.07], [0.03, 0.27]])
    sh, ch, sr, cr = 0.9, 0.8, 0.95, 0.9
    ch_m = np.array([[ch, 1 - sh], [1 - ch, sh]])
    cr_m = np.array([[cr, 1 - sr], [1 - cr, sr]])
    observed = (ch_m @ truth @ cr_m.T).ravel()
    cover_over = cover_under = 0
    reps = 150
    for _ in range(reps):
        counts = rng.multinomial(3000, observed).reshape(2, 2)
        n = labels_per_class
        harm = ErrorRates(rng.binomial(n, sh), n, rng.binomial(n, ch), n)
        refusal = ErrorRates(rng.binomial(n, sr), n, rng.binomial(n, cr), n)
        res = correct_two_classifiers(counts, harm, refusal, draws=300)
        cover_over += res.over.low <= 0.10 <= res.over.high
        cover_under += res.under.low <= 0.10 <= res.under.high
    assert cover_over / reps >= 0.88, cover_over / reps
    assert cover_under / reps >= 0.88, cover_under / reps


# A 4x4 misclassification matrix [true cell, predicted cell] (cells benign/complied, benign/refused,
# harmful/complied, harmful/refused) where the harm classifier misreads refused benign prompts far more often
# than complied ones: the errors are not independent.
JOINT = np.array([[90, 2, 8, 0], [2, 70, 0, 28], [10, 0, 88, 2], [0, 5, 3, 92]], dtype=float)


def test_joint_em_without_group_labels_is_the_matrix_inversion():
    truth = np.array([0.616, 0.084, 0.03, 0.27])
    m = (JOINT / JOINT.sum(axis=1, keepdims=True)).T  # M[pred, true]
    table = (m @ truth * 100_000).reshape(2, 2)
    em = correct_joint_em(table, np.zeros((4, 4)), JOINT, draws=50)
    inv = correct_many_joint([table], JOINT, draws=50)[0]
    assert em.over.value == pytest.approx(0.084 / 0.7, abs=1e-6) == pytest.approx(inv.over.value, abs=1e-6)
    assert em.under.value == pytest.approx(0.03 / 0.3, abs=1e-6)
    assert em.over.low <= em.over.value <= em.over.high


def test_joint_em_with_every_label_in_the_group_is_p_pred_times_p_true_given_pred():
    # Worked example: 1,000 turns, 100 of them labelled. Predicted cells of the 900 unlabelled: 540/120/90/150.
    # With all labels from the group the maximum-likelihood estimate is sum_p P(pred p) P(true t | pred p),
    # P(pred) over all 1,000 turns, P(true | pred) from the 100 labels.
    labels = np.array([[55, 1, 5, 0], [1, 9, 0, 3], [3, 0, 4, 0], [0, 1, 1, 17]], dtype=float)  # [true, pred]
    unlabelled = np.array([540, 120, 90, 150], dtype=float)
    table = (unlabelled + labels.sum(axis=0)).reshape(2, 2)
    p_pred = table.ravel() / 1000
    p_true_given_pred = labels / labels.sum(axis=0, keepdims=True)
    t = p_true_given_pred @ p_pred  # (0.5590 + ..., ...): the inverse-matrix ("predictive value") estimator
    res = correct_joint_em(table, labels, np.zeros((4, 4)), draws=100)
    assert res.joint.ravel() == pytest.approx(t, abs=1e-6)
    assert res.over.value == pytest.approx(t[1] / (t[0] + t[1]), abs=1e-6)
    assert res.under.value == pytest.approx(t[2] / (t[2] + t[3]), abs=1e-6)
    assert res.under.low < res.under.value < res.under.high


def test_joint_em_needs_labels_in_every_true_cell():
    sparse = JOINT.copy()
    sparse[2] = 0
    res = correct_joint_em([[50, 5], [10, 30]], np.zeros((4, 4)), sparse)
    assert math.isnan(res.over.value) and math.isnan(res.under.value)
