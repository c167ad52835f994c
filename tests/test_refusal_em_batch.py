"""correct_joint_em_many (point EMs batched across metric rows) gives exactly correct_joint_em's results row by row."""
import numpy as np

from monitor.stats import correct_joint_em, correct_joint_em_many

MATRIX = np.array([[150, 3, 0, 0], [0, 17, 0, 0], [14, 0, 20, 11], [0, 0, 0, 82]], float)
SINGULAR = np.array([[10, 2, 0, 0], [10, 2, 0, 0], [0, 0, 5, 5], [0, 0, 5, 5]], float)  # solve() fails: EM from 1/4


def _cases():
    rng = np.random.default_rng(11)
    out = []
    for r in range(30):
        lg = np.zeros((4, 4))
        for _ in range(rng.integers(0, 7)):
            lg[rng.integers(0, 4), rng.integers(0, 4)] += 1
        obs = rng.integers(0, 400, 4).astype(float) + lg.sum(axis=0)
        if r == 3:
            obs[:] = 0  # no traffic: NaN
        if r == 5:
            obs[2:] = 0  # nothing predicted harmful: no under-refusal
        base = SINGULAR if r in (7, 8) else MATRIX
        out.append((obs, lg, np.clip(base - lg, 0, None)))
    out.append((np.array([5.0, 1, 1, 1]), np.zeros((4, 4)), np.zeros((4, 4))))  # a true cell without labels: NaN
    return out


def _same(a, b):
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_batched_equals_row_by_row():
    cases = _cases()
    many = correct_joint_em_many([c[0] for c in cases], [c[1] for c in cases], [c[2] for c in cases], draws=60,
                                 chunk=8)
    assert len(many) == len(cases)
    finite = 0
    for (obs, lg, lo), got in zip(cases, many):
        want = correct_joint_em(obs, lg, lo, draws=60)
        for which in ("over", "under"):
            g, w = getattr(got, which), getattr(want, which)
            assert all(_same(getattr(g, k), getattr(w, k)) for k in ("value", "low", "high")), (obs, which)
            finite += np.isfinite(g.value)
        assert np.array_equal(got.joint, want.joint, equal_nan=True)
    assert finite > 40  # most rows have both rates
