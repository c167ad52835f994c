"""The joint EM's bootstrap draws stop early and only the draws near the interval's quantiles are refined: the same
corrected rates and intervals as running every draw to the point estimate's tolerance, for about half the EM work.

Label sets: realistic groups (reviewers agree with the classifiers ~90% of the time, a few to a few hundred of the
group's own turns labelled, from 60 to 60,000 turns), the near-singular and singular matrices of
tests/test_em_acceleration.py, a group with nothing predicted harmful and one without traffic.
"""
import numpy as np
import pytest

import monitor.stats as stats
from monitor.stats import _em_iterate, _em_joint, _EMRun, _near_quantiles, _with_draws, correct_joint_em_many
from tests.test_em_acceleration import BENCH

CELLS = 4


def _group(rng, n_turns: int, n_in: int, n_out: int, agreement: float):
    """(observed table, labelled turns of the group [true, pred], labelled turns elsewhere [true, pred])."""
    shares = rng.dirichlet([30, 6, 3, 4])  # benign/complied, benign/refused, harmful/complied, harmful/refused
    m = np.full((CELLS, CELLS), (1 - agreement) / 3) + np.eye(CELLS) * (agreement - (1 - agreement) / 3)
    m = np.array([rng.dirichlet(row * 200) for row in m])  # each classifier pair errs a little differently
    truth = rng.choice(CELLS, n_turns, p=shares)
    pred = np.array([rng.choice(CELLS, p=m[t]) for t in truth])
    table = np.bincount(pred, minlength=CELLS).astype(float)
    lg = np.zeros((CELLS, CELLS))
    for i in rng.choice(n_turns, min(n_in, n_turns), replace=False):
        lg[truth[i], pred[i]] += 1
    lo = np.zeros((CELLS, CELLS))
    for t in rng.choice(CELLS, n_out, p=[0.55, 0.2, 0.1, 0.15]):
        lo[t, rng.choice(CELLS, p=m[t])] += 1
    return table, lg, lo


def _label_sets():
    rng = np.random.default_rng(2026)
    sets = {}
    for name, (n_turns, n_in, n_out, agreement) in {
        "small_day": (60, 3, 450, 0.9), "busy_day": (4500, 20, 580, 0.9), "segment": (800, 6, 590, 0.9),
        "many_own_labels": (3000, 200, 400, 0.9), "whole_window": (60000, 150, 450, 0.9),
        "poor_classifiers": (2000, 10, 590, 0.7),
    }.items():
        sets[name] = [_group(rng, n_turns, n_in, n_out, agreement) for _ in range(6)]
    sets["bench"] = [tuple(np.asarray(x, float) for x in case) for case in BENCH.values()]
    table, lg, lo = sets["segment"][0]
    sets["edges"] = [(np.array([table[0], table[1], 0, 0]), np.zeros((4, 4)), lo + lg),  # nothing predicted harmful
                     (np.zeros(4), lg, lo),  # no traffic: NaN
                     (table, lg, lo)]
    return sets


SETS = _label_sets()


def _values(res):
    return np.array([[getattr(getattr(r, w), f) for w in ("over", "under") for f in ("value", "low", "high")]
                     for r in res])


@pytest.mark.parametrize("name", sorted(SETS))
def test_refined_draws_give_the_intervals_of_fully_converged_draws(name, monkeypatch):
    groups = SETS[name]
    args = ([g[0] for g in groups], [g[1] for g in groups], [g[2] for g in groups])
    steps = []
    em_step = stats._em_step
    monkeypatch.setattr(stats, "_em_step", lambda x, *a: steps.append(x.shape[1]) or em_step(x, *a))
    full = correct_joint_em_many(*args, draw_tols=None)
    full_work = sum(steps)
    steps.clear()
    fast = correct_joint_em_many(*args)
    got, want = _values(fast), _values(full)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.isfinite(want[:, 0]).sum() >= len(groups) - 2  # the cases have rates to compare
    # Point estimates: the same EM to the same tolerance.
    assert np.abs(got[:, [0, 3]] - want[:, [0, 3]])[ok[:, [0, 3]]].max(initial=0) <= 1e-7
    # Interval bounds: every draw that decides a quantile is converged as far as before.
    assert np.abs(got - want)[ok].max(initial=0) <= 1e-4
    for f, w in zip(fast, full):
        assert np.array_equal(f.joint, w.joint, equal_nan=True)
    if name not in ("edges", "bench"):  # realistic labels (0.46-0.74 of the work); bench's near-singular matrices 0.77
        assert sum(steps) < 0.8 * full_work  # the early stop is taken


def test_a_resumed_row_ends_exactly_where_one_em_to_the_tolerance_ends():
    table, lg, lo = SETS["busy_day"][0]
    u, lgb, lob = _with_draws(np.clip(table - lg.sum(axis=0), 0, None), lg, lo, table, 60, 0)
    run = _EMRun.start(u, lgb, lob)
    rows = np.arange(len(u))
    _em_iterate(run, rows, 1e-5, 2000)
    _em_iterate(run, rows[::3], 1e-6, 2000)
    _em_iterate(run, rows[::6], 1e-9, 2000)
    want = _em_joint(u, lgb, lob, 2000, 1e-9)
    assert np.array_equal(run.out[:4].T[::6], want[::6])
    assert not np.array_equal(run.out[:4].T[1::6], want[1::6])  # the others did stop early
    capped = _EMRun.start(u, lgb, lob)
    _em_iterate(capped, rows, 1e-5, 3)
    _em_iterate(capped, rows, 1e-9, 3)  # a row capped at `iters` stays where it was
    assert np.array_equal(capped.out[:4].T, _em_joint(u, lgb, lob, 3, 1e-9))


def test_near_quantiles_picks_the_draws_that_can_reorder_the_interpolated_order_statistics():
    # 41 draws (0-based ranks 0..40): np.quantile at 0.025 sits at rank 1, at 0.975 at rank 39; the next rank up is
    # taken too (interpolation).
    values = np.arange(41, dtype=float)[None].repeat(2, axis=0)
    err = np.zeros_like(values)
    near = _near_quantiles(values, err, 0.025)
    assert set(np.flatnonzero(near[0])) == {1, 2, 39, 40}
    values[1, 30] = np.nan  # the undefined rate of an unconverged draw: refined; 40 finite draws, ranks 0-1, 38-39
    err[1, 10] = 9.5  # 10 +- 9.5 could be the smallest or second smallest value
    err[1, 20] = 1.0  # 20 +- 1 is far from every quantile
    near = _near_quantiles(values, err, 0.025)
    assert set(np.flatnonzero(near[1])) == {0, 1, 10, 30, 39, 40}


def test_results_do_not_depend_on_how_groups_are_chunked():
    groups = SETS["busy_day"] + SETS["segment"] + SETS["edges"]
    args = ([g[0] for g in groups], [g[1] for g in groups], [g[2] for g in groups])
    one = _values(correct_joint_em_many(*args, draws=100))
    many = _values(correct_joint_em_many(*args, draws=100, chunk=1))  # several refinement batches of 6 groups
    assert np.array_equal(one, many, equal_nan=True)
