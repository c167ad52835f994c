"""Interval estimates for rates and corrections of rates for classifier error.

Three tools, all numpy:

- `wilson`: the Wilson score interval of a binomial proportion (good coverage at small n and near 0 or 1).
- `rogan_gladen`: the prevalence of a condition corrected for a classifier with known sensitivity and
  specificity, p = (p_obs + spec - 1) / (sens + spec - 1), clipped to [0, 1].
- `correct_two_classifiers`: over- and under-refusal corrected for *both* classifiers at once. Under-refusal is
  P(comply | truly harmful), but we only see "predicted harmful" and "predicted refused". Write the observed
  2x2 table of proportions as O[h_pred, r_pred] and the unknown true table as T[h, r] (index 0 = benign /
  complied, 1 = harmful / refused). With each classifier's confusion matrix C[pred, true] =
  [[spec, 1 - sens], [1 - spec, sens]], and **assuming the two classifiers' errors are independent given the
  truth** (the harm classifier's mistake on a prompt does not depend on whether the reply refused, and the
  refusal classifier's mistake does not depend on whether the prompt was harmful),
  P(h_pred, r_pred | h, r) = C_h[h_pred, h] * C_r[r_pred, r], i.e. vec(O) = (C_h kron C_r) vec(T), or
  O = C_h T C_r^T. So T = C_h^-1 O C_r^-T, projected onto the probability simplex (sampling noise can make
  cells negative), and then over-refusal = T[0, 1] / T[0, :].sum(), under-refusal = T[1, 0] / T[1, :].sum().

Intervals for the corrected values come from a **parametric bootstrap** (400 draws by default, seeded) that
redraws both the observed table and every sensitivity/specificity from their sampling distributions, so the
interval widens with the uncertainty of the error rates, not only with the traffic volume. Draws use Jeffreys
posteriors (Dirichlet(counts + 1/2) for the observed table, Beta(k + 1/2, n - k + 1/2) for each error rate)
rather than plug-in binomials, so that a perfect 30/30 on labelled items does not claim zero uncertainty. The
interval is the percentile interval of the draws, widened if needed to contain the point estimate. Each
table's draws are seeded from its own counts, so a window recomputed later (late data elsewhere) gets exactly
the same interval.
"""
from __future__ import annotations

import functools
import math
import multiprocessing
import os
import signal
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy
from scipy.stats import norm
from scipy.stats import t as student_t

from monitor.errors import JobError

DEFAULT_DRAWS = 400
# A bootstrap draw's EM first stops at the first of these step sizes; only the draws whose rate could lie near the
# interval's quantiles go on to the next and finally to the point estimate's tolerance (correct_joint_em_many).
# DRAW_MARGIN times a row's last step times its SQUAREM step length bounds its distance to its maximum.
DRAW_TOLS = (1e-5, 1e-6)
DRAW_MARGIN = 30
REFINE_CHUNKS = 6  # chunks of groups whose draws are refined together (correct_joint_em_many)
# correct_joint_em_many computes a share of its groups in each of EM_WORKERS - 1 forked children while this process
# computes the last share, when it has at least EM_MIN_PARALLEL groups. Measured on the 140k benchmark home's groups
# (600 labels, 400 draws), with the second core free: one process takes ~6 ms a group at 8 groups and ~4.5 ms at 180;
# in a worker process after a run of every job (7 threads, 2.6 GB mapped) os.fork takes 2-4 ms, the child's exit
# 3-5 ms, pickling 90 results back ~1 ms, and copy-on-write page faults add ~10-15 ms of CPU to each side at 8-32
# groups. Wall, one process -> two (best of 7): 8 groups 0.057 -> 0.059 s, 12 groups 0.074 -> 0.061 s, 16 groups
# 0.10 -> 0.084 s; (median of 7) 32 groups 0.26 -> 0.175 s, 180 groups (an incremental run) 1.07 -> 0.67 s; 2,601
# groups (a first run) 10.7 -> 6.8 s. Below 16 groups the gain is under ~15 ms and gone as soon as a core is busy;
# the split itself costs no CPU (two halves of 180 groups 0.78 s, like the whole). With both cores busy it saves
# nothing and costs those ~10% more CPU.
EM_WORKERS = min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
EM_MIN_PARALLEL = 16
EM_CHILD_TIMEOUT = 600.0  # seconds a child may still run once this process has computed its own share


@functools.lru_cache(maxsize=32)  # called once per Wilson interval, with one or two confidence levels
def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile for a confidence level (1.96 at 0.95)."""
    return float(norm.ppf(0.5 + confidence / 2))


def t_quantiles(n, confidence: float = 0.95) -> dict[int, float]:
    """The two-sided Student t quantile with n - 1 degrees of freedom for every distinct sample size n >= 2 given."""
    # One vectorised scipy call instead of one per metric row (scipy's per-call overhead is ~0.2 ms); each value
    # equals the scalar `student_t.ppf(0.5 + confidence / 2, n - 1)` bit for bit (the same stdtrit ufunc).
    sizes = sorted({int(x) for x in n if x >= 2})
    if not sizes:
        return {}
    q = student_t.ppf(0.5 + confidence / 2, np.asarray(sizes, dtype=float) - 1)
    return dict(zip(sizes, (float(x) for x in q)))


def wilson(k, n, confidence: float = 0.95):
    """Wilson score interval (low, high) of k successes in n trials; NaN where n is 0 (scalars or arrays)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = z_value(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
        # At k = 0 (k = n) the bound is exactly 0 (1); floating point would leave ~1e-17 there.
        lo = np.where(n > 0, np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0)), np.nan)
        hi = np.where(n > 0, np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0)), np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


@dataclass(frozen=True)
class ErrorRates:
    """A binary classifier's sensitivity and specificity with the labelled counts they were estimated from."""

    tp: float  # positives the classifier called positive
    n_pos: int  # labelled positives
    tn: float  # negatives the classifier called negative
    n_neg: int  # labelled negatives
    source: str = ""  # e.g. "labels" or "shared_eval"

    @classmethod
    def from_rates(cls, sensitivity: float, specificity: float, n_pos: int, n_neg: int, source: str = ""):
        """Build from rates and sample sizes (counts are rate * n, not necessarily whole)."""
        return cls(sensitivity * n_pos, int(n_pos), specificity * n_neg, int(n_neg), source)

    @property
    def sensitivity(self) -> float:
        return self.tp / self.n_pos if self.n_pos else math.nan

    @property
    def specificity(self) -> float:
        return self.tn / self.n_neg if self.n_neg else math.nan

    @property
    def usable(self) -> bool:
        """True when both rates are estimated and the classifier beats chance (sens + spec > 1)."""
        return self.n_pos > 0 and self.n_neg > 0 and self.sensitivity + self.specificity > 1

    def as_dict(self) -> dict:
        return {"sensitivity": round(self.sensitivity, 4), "specificity": round(self.specificity, 4),
                "n_pos": self.n_pos, "n_neg": self.n_neg, "source": self.source}

    def draw(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Jeffreys-posterior draws of (sensitivity, specificity)."""
        s = rng.beta(self.tp + 0.5, self.n_pos - self.tp + 0.5, size)
        c = rng.beta(self.tn + 0.5, self.n_neg - self.tn + 0.5, size)
        return s, c


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval (NaN when undefined)."""

    value: float
    low: float
    high: float


def rogan_gladen(p_obs, sensitivity, specificity):
    """Prevalence corrected for classifier error, clipped to [0, 1]; NaN when sens + spec <= 1."""
    p_obs = np.asarray(p_obs, dtype=float)
    spec = np.asarray(specificity, dtype=float)
    j = np.asarray(sensitivity, dtype=float) + spec - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(j > 0, np.clip((p_obs + spec - 1) / j, 0.0, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def _percentile_interval(draws: np.ndarray, point: float, confidence: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if not math.isfinite(point) or draws.size == 0:
        return math.nan, math.nan
    a = (1 - confidence) / 2
    lo, hi = np.quantile(draws, [a, 1 - a])
    return float(min(lo, point)), float(max(hi, point))


def _seed_for(seed: int, counts) -> list[int]:
    # Seed from the counts themselves so a table's interval never depends on what else is in the batch.
    return [int(seed)] + [int(round(float(c) * 1000)) for c in np.ravel(counts)]


def rogan_gladen_interval(k: float, n: int, rates: ErrorRates, confidence: float = 0.95,
                          draws: int = DEFAULT_DRAWS, seed: int = 0) -> Estimate:
    """Rogan-Gladen corrected prevalence of k positives in n with a bootstrap interval over k, sens and spec."""
    if n <= 0 or not rates.usable:
        return Estimate(math.nan, math.nan, math.nan)
    point = rogan_gladen(k / n, rates.sensitivity, rates.specificity)
    rng = np.random.default_rng(_seed_for(seed, [k, n, rates.tp, rates.n_pos, rates.tn, rates.n_neg]))
    p = rng.beta(k + 0.5, n - k + 0.5, draws)
    s, c = rates.draw(rng, draws)
    lo, hi = _percentile_interval(rogan_gladen(p, s, c), point, confidence)
    return Estimate(point, lo, hi)


def confusion_matrix(sensitivity, specificity) -> np.ndarray:
    """C[pred, true] for a binary classifier (broadcasts over arrays of rates: shape (..., 2, 2))."""
    s = np.asarray(sensitivity, dtype=float)
    c = np.asarray(specificity, dtype=float)
    return np.stack([np.stack([c, 1 - s], -1), np.stack([1 - c, s], -1)], -2)


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row of v (shape (..., k)) onto the probability simplex."""
    v = np.asarray(v, dtype=float)
    shape = v.shape
    x = v.reshape(-1, shape[-1])
    u = -np.sort(-x, axis=1)
    css = np.cumsum(u, axis=1) - 1
    idx = np.arange(1, x.shape[1] + 1)
    cond = u - css / idx > 0
    rho = x.shape[1] - 1 - np.argmax(cond[:, ::-1], axis=1)
    theta = css[np.arange(x.shape[0]), rho] / (rho + 1)
    return np.maximum(x - theta[:, None], 0).reshape(shape)


def true_joint(observed, harm_sens, harm_spec, refusal_sens, refusal_spec) -> np.ndarray:
    """The estimated true table T[harmful, refused] from observed proportions O[h_pred, r_pred] (broadcasts)."""
    o = np.asarray(observed, dtype=float)
    inv_h = np.linalg.inv(confusion_matrix(harm_sens, harm_spec))
    inv_r = np.linalg.inv(confusion_matrix(refusal_sens, refusal_spec))
    t = inv_h @ o @ np.swapaxes(inv_r, -1, -2)
    flat = project_simplex(t.reshape(*t.shape[:-2], 4))
    return flat.reshape(t.shape)


def _over_under(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        benign = t[..., 0, 0] + t[..., 0, 1]
        harmful = t[..., 1, 0] + t[..., 1, 1]
        over = np.where(benign > 0, t[..., 0, 1] / benign, np.nan)
        under = np.where(harmful > 0, t[..., 1, 0] / harmful, np.nan)
    return over, under


@dataclass(frozen=True)
class TwoWayCorrection:
    """Over- and under-refusal corrected for both classifiers, with the estimated true joint table."""

    over: Estimate
    under: Estimate
    joint: np.ndarray  # T[harmful, refused], proportions summing to 1


_NAN = Estimate(math.nan, math.nan, math.nan)


def correct_two_classifiers(counts, harm: ErrorRates, refusal: ErrorRates, confidence: float = 0.95,
                            draws: int = DEFAULT_DRAWS, seed: int = 0) -> TwoWayCorrection:
    """Correct over-/under-refusal for both classifiers' errors from counts[h_pred, r_pred] (see module doc)."""
    return correct_many([counts], harm, refusal, confidence, draws, seed)[0]


def _kron(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched Kronecker product of (..., 2, 2) matrices -> (..., 4, 4), index order (a_row*2 + b_row)."""
    k = np.einsum("...ij,...kl->...ikjl", a, b)
    return k.reshape(*k.shape[:-4], 4, 4)


def correct_many(tables, harm: ErrorRates, refusal: ErrorRates, confidence: float = 0.95,
                 draws: int = DEFAULT_DRAWS, seed: int = 0, chunk: int = 2000) -> list[TwoWayCorrection]:
    """`correct_two_classifiers` for many 2x2 count tables sharing the same classifier error rates."""
    tables = np.asarray(tables, dtype=float).reshape(-1, 2, 2)
    if not (harm.usable and refusal.usable):
        return [TwoWayCorrection(_NAN, _NAN, np.full((2, 2), np.nan)) for _ in tables]
    rates = (harm.tp, harm.n_pos, harm.tn, harm.n_neg, refusal.tp, refusal.n_pos, refusal.tn, refusal.n_neg)
    # Error-rate draws are shared by every table: they do not depend on the traffic.
    rng = np.random.default_rng(_seed_for(seed, rates))
    sh, ch = harm.draw(rng, draws)
    sr, cr = refusal.draw(rng, draws)
    inv_point = _kron(np.linalg.inv(confusion_matrix(harm.sensitivity, harm.specificity)),
                      np.linalg.inv(confusion_matrix(refusal.sensitivity, refusal.specificity)))
    inv_draws = _kron(np.linalg.inv(confusion_matrix(sh, ch)), np.linalg.inv(confusion_matrix(sr, cr)))
    return _correct(tables, inv_point, inv_draws, list(rates), confidence, draws, seed, chunk)


def joint_error_counts(truth_harmful, truth_refused, pred_harmful, pred_refused) -> np.ndarray:
    """Counts[true cell, predicted cell] (cells ordered benign/complied, benign/refused, harmful/complied,
    harmful/refused) from labelled items: the full misclassification table of both classifiers together."""
    t = np.asarray(truth_harmful, int) * 2 + np.asarray(truth_refused, int)
    p = np.asarray(pred_harmful, int) * 2 + np.asarray(pred_refused, int)
    out = np.zeros((4, 4))
    np.add.at(out, (t, p), 1)
    return out


def correct_many_joint(tables, joint_counts, confidence: float = 0.95, draws: int = DEFAULT_DRAWS,
                       seed: int = 0, chunk: int = 2000) -> list[TwoWayCorrection]:
    """Two-classifier correction with the 4x4 misclassification matrix estimated directly from labelled items.

    Drops the independence assumption of `correct_many`: P(h_pred, r_pred | h, r) is estimated per true cell
    from reviewer-labelled turns (`joint_error_counts`), so a harm classifier that misreads exactly the benign
    prompts a model tends to refuse is accounted for. Needs labelled items in every true cell; each column is
    redrawn from Dirichlet(counts + 1/2) in the bootstrap.
    """
    tables = np.asarray(tables, dtype=float).reshape(-1, 2, 2)
    jc = np.asarray(joint_counts, dtype=float).reshape(4, 4)
    if (jc.sum(axis=1) <= 0).any():
        return [TwoWayCorrection(_NAN, _NAN, np.full((2, 2), np.nan)) for _ in tables]
    m = (jc / jc.sum(axis=1, keepdims=True)).T  # M[pred, true]
    if abs(np.linalg.det(m)) < 1e-9:
        return [TwoWayCorrection(_NAN, _NAN, np.full((2, 2), np.nan)) for _ in tables]
    rng = np.random.default_rng(_seed_for(seed, jc))
    cols = np.stack([rng.dirichlet(jc[i] + 0.5, draws) for i in range(4)], axis=-1)  # (draws, pred, true)
    return _correct(tables, np.linalg.inv(m), np.linalg.inv(cols), list(jc.ravel()), confidence, draws, seed,
                    chunk)


def _correct(tables, inv_point, inv_draws, seed_key, confidence, draws, seed, chunk) -> list[TwoWayCorrection]:
    uniq, inverse = np.unique(tables.reshape(-1, 4), axis=0, return_inverse=True)
    results: list[TwoWayCorrection] = []
    a = (1 - confidence) / 2
    for start in range(0, len(uniq), chunk):
        block = uniq[start:start + chunk]
        n = block.sum(axis=1)
        safe = np.where(n > 0, n, 1)[:, None]
        t = project_simplex((inv_point @ (block / safe).T).T).reshape(-1, 2, 2)
        over, under = _over_under(t)
        obs = np.stack([
            np.random.default_rng(_seed_for(seed, seed_key + list(c))).dirichlet(c + 0.5, draws) for c in block
        ])  # (m, draws, 4)
        tb = project_simplex(np.einsum("dij,mdj->mdi", inv_draws, obs)).reshape(len(block), draws, 2, 2)
        ob, ub = _over_under(tb)
        oq, uq = _quantiles(ob, a), _quantiles(ub, a)  # all-NaN rows are handled below
        for i, c in enumerate(block):
            if n[i] <= 0:
                results.append(TwoWayCorrection(_NAN, _NAN, np.full((2, 2), np.nan)))
                continue
            # Only report a rate where some traffic was predicted in its class (benign for over-refusal,
            # harmful for under-refusal): otherwise it would be a pure extrapolation from the correction.
            o_est = _estimate(over[i], oq[0, i], oq[1, i]) if c[0] + c[1] > 0 else _NAN
            u_est = _estimate(under[i], uq[0, i], uq[1, i]) if c[2] + c[3] > 0 else _NAN
            results.append(TwoWayCorrection(o_est, u_est, t[i]))
    return [results[i] for i in np.ravel(inverse)]


def _quantiles(draws: np.ndarray, a: float) -> np.ndarray:
    """The a and 1 - a quantiles (2, G) of each row of draws (G, D), NaN draws ignored."""
    # np.quantile gives nanquantile's values when no draw is NaN (the same partition and interpolation) at a sixth
    # of the cost: nanquantile loops over the rows in Python.
    if np.isnan(draws).any():
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row gives NaN
            return np.nanquantile(draws, [a, 1 - a], axis=1)
    return np.quantile(draws, [a, 1 - a], axis=1)


def _estimate(point: float, lo: float, hi: float) -> Estimate:
    point = float(point)
    if not math.isfinite(point) or not math.isfinite(lo):
        return Estimate(point, math.nan, math.nan)
    return Estimate(point, float(min(lo, point)), float(max(hi, point)))


def _em_start(u: np.ndarray, lg: np.ndarray, la: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = la / np.maximum(la.sum(-1, keepdims=True), 1e-12)  # M[t, p] = P(pred p | true t)
    # Start from the plain matrix inversion: EM then only has to fold in the group's own labels, which saves
    # most iterations when few of the group's turns are labelled.
    share = ((u + lg.sum(-2)) / np.maximum(n, 1e-12)[..., None])[..., None]
    mt = np.swapaxes(m, -1, -2)
    try:
        t = np.linalg.solve(mt, share)[..., 0]
    except np.linalg.LinAlgError:  # a row with a singular matrix starts from uniform shares, the others as usual
        t = np.empty(u.shape)
        for i in range(len(t)):
            try:
                t[i] = np.linalg.solve(mt[i], share[i])[..., 0]
            except np.linalg.LinAlgError:
                t[i] = 0.25
    # EM cannot leave an exact zero, and from a share near zero it can take ~10^4 iterations to climb away when
    # the maximum is not there (EM stalls beside the face it cannot leave): start at least 1e-3 inside.
    t = np.maximum(project_simplex(t), 1e-3)
    return t / t.sum(-1, keepdims=True), m


def _em_step(x: np.ndarray, u, lg_t, la, la_rows, n) -> tuple[np.ndarray, np.ndarray]:
    """One EM step on states x (20, B) = shares T[t] then matrix M[t, p] row-major; also returns P(pred) at x (4, B)."""
    # The batch axis is last so that every operation, sums over the 4-long axes included, runs on long contiguous
    # rows: with the batch axis first, numpy's operations over the tiny axes cost several times more.
    joint = x[4:].reshape(4, 4, -1) * x[:4, None]  # [true, pred, row]
    pred = joint[0] + joint[1] + joint[2] + joint[3]
    e = joint * (u / np.maximum(pred, 1e-300))  # expected unlabelled counts [true, pred, row]
    e_t = e[:, 0] + e[:, 1] + e[:, 2] + e[:, 3]
    out = np.empty_like(x)
    out[:4] = (lg_t + e_t) / n
    out[4:] = ((la + e) / np.maximum(la_rows + e_t, 1e-12)[:, None]).reshape(16, -1)
    return out, pred


def _colsum(a: np.ndarray) -> np.ndarray:
    """Column sums of a (k, B) added row after row, so that a column's sum does not depend on B."""
    # ndarray.sum(0) changes its order of additions with B, and a last-bit difference in the likelihood or the step
    # length then changes a row's path: a group would no longer get the same result alone as batched with others.
    out = a[0].copy()
    for row in a[1:]:
        out += row
    return out


def _loglik(x: np.ndarray, pred: np.ndarray, u, lg_t, la) -> np.ndarray:
    """Observed-data log-likelihood per row: unlabelled turns by predicted cell, the group's labelled turns by true
    cell, every labelled turn by predicted cell given the true one (pred: P(pred) at x)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _colsum(xlogy(u, pred)) + _colsum(xlogy(lg_t, x[:4])) + _colsum(xlogy(la.reshape(16, -1), x[4:]))


@dataclass
class _EMRun:
    """The state of B EM rows between calls of `_em_iterate`, so that a row stopped early can resume its own path."""

    x: np.ndarray  # (20, B) each row's current iterate: shares T[t] then matrix M[t, p] row-major
    data: tuple  # (u, lg_t, la, la_rows, n) with the batch axis last, as `_em_step` takes them
    step_max: np.ndarray  # SQUAREM's step-length bound per row
    ll: np.ndarray  # log-likelihood at x when the last cycle computed it, else NaN
    cycles: np.ndarray  # cycles done per row
    out: np.ndarray  # (20, B) each row's result when it stopped
    step: np.ndarray  # the largest share change of the EM step that stopped the row (inf: capped at `iters`)
    alpha: np.ndarray  # the largest unclipped SQUAREM step length the row met, ~1 / (1 - EM's rate of convergence)

    @classmethod
    def start(cls, u: np.ndarray, lg: np.ndarray, lo: np.ndarray) -> "_EMRun":
        """Rows started from the matrix inversion, from u (B, 4), lg and lo (B, 4, 4) as `_em_joint` takes them."""
        la = lg + lo
        n = np.maximum(u.sum(-1) + lg.sum((-1, -2)), 1e-12)
        t, m = _em_start(u, lg, la, n)
        x = np.ascontiguousarray(np.concatenate([t, m.reshape(-1, 16)], axis=1).T)  # (20, B)
        b = x.shape[1]
        data = (u.T.copy(), lg.sum(-1).T.copy(), np.moveaxis(la, 0, -1).copy(), la.sum(-1).T.copy(), n)
        return cls(x, data, np.ones(b), np.full(b, np.nan), np.zeros(b, int), x.copy(), np.full(b, np.inf),
                   np.full(b, np.nan))


    @classmethod
    def concat(cls, runs: list["_EMRun"]) -> "_EMRun":
        """One run holding the rows of `runs`, in order."""
        cat = [np.concatenate(f, axis=-1) for f in zip(*[(r.x, *r.data, r.step_max, r.ll, r.cycles, r.out, r.step,
                                                             r.alpha) for r in runs])]
        return cls(cat[0], tuple(cat[1:6]), *cat[6:])


def _em_iterate(run: _EMRun, rows: np.ndarray, tol, iters: int, accelerate: bool = True) -> None:
    """Iterate `rows` of `run` from their saved state until an EM step moves no share by `tol` (scalar or one per
    row) or they have done `iters` cycles; saves each row's state where it stopped, so a later call with a smaller
    tol continues exactly the path one call with that tol would have taken."""
    idx = np.asarray(rows)
    tol = np.broadcast_to(np.asarray(tol, dtype=float), idx.shape)
    # np.take / np.compress keep the batch axis last in memory (a[..., idx] does not: it puts the batch axis first,
    # and every later operation on the array then costs ~20% more).
    x, step_max, ll, cyc = np.take(run.x, idx, -1), run.step_max[idx], run.ll[idx], run.cycles[idx]
    alpha_raw = run.alpha[idx]
    u, lg_t, la, la_rows, n = (np.take(a, idx, -1) for a in run.data)

    def save(sel, result, step):
        at = idx[sel]
        run.out[:, at], run.step[at], run.x[:, at] = result, step, np.compress(sel, x, -1)
        run.step_max[at], run.ll[at], run.cycles[at], run.alpha[at] = step_max[sel], ll[sel], cyc[sel], alpha_raw[sel]

    while len(idx):
        capped = cyc >= iters
        x1, pred0 = _em_step(x, u, lg_t, la, la_rows, n)
        d = np.abs(x1[:4] - x[:4])
        step = np.maximum(np.maximum(d[0], d[1]), np.maximum(d[2], d[3]))
        done = (step < tol) | capped
        if done.any():
            # A row capped at `iters` keeps its last iterate, as it would have after the loop's last cycle.
            c = capped[done]
            result = np.where(c, np.compress(done, x, -1), np.compress(done, x1, -1))
            save(done, result, np.where(c, np.inf, step[done]))
            keep = ~done
            if not keep.any():
                break
            idx, tol, n, step_max, ll, cyc, alpha_raw = (a[keep] for a in (idx, tol, n, step_max, ll, cyc, alpha_raw))
            x, x1, pred0, u, lg_t, la, la_rows = (np.compress(keep, a, -1)
                                                  for a in (x, x1, pred0, u, lg_t, la, la_rows))
        cyc = cyc + 1
        if not accelerate:
            x = x1
            continue
        x2, _ = _em_step(x1, u, lg_t, la, la_rows, n)
        r = x1 - x
        v = x2 - x1 - r
        sr2 = _colsum(r * r)
        sv2 = _colsum(v * v)
        with np.errstate(divide="ignore", invalid="ignore"):
            alpha = np.where(sv2 > 0, np.sqrt(sr2 / sv2), 1.0)
        alpha_raw = np.fmax(alpha_raw, alpha)
        alpha = np.clip(alpha, 1.0, step_max)
        xx = r * (2 * alpha)  # x + 2 alpha r + alpha^2 v, in place and in that order
        xx += x
        v *= alpha * alpha
        xx += v
        # A share the EM step keeps positive must stay positive: EM could never leave an exact zero again.
        ok = ~((xx < 0) | ((xx == 0) & (x1 > 0))).any(0)
        if not ok.all():
            xx = np.where(ok, xx, x2)
        x3, _ = _em_step(xx, u, lg_t, la, la_rows, n)
        # A row that could not extrapolate took three plain EM steps: accepted as EM; one whose likelihood fell (beyond
        # rounding) falls back to its two plain EM steps.
        joint3 = x3[4:].reshape(4, 4, -1) * x3[:4, None]
        miss = np.flatnonzero(np.isnan(ll))
        if len(miss):
            ll[miss] = _loglik(*(np.take(a, miss, -1) for a in (x, pred0, u, lg_t, la)))
        ll3 = _loglik(x3, joint3[0] + joint3[1] + joint3[2] + joint3[3], u, lg_t, la)
        accept = ~ok | (ll3 >= ll - 1e-12 * np.abs(ll))
        at_max = alpha == step_max
        # The standard step-length safeguard: a step at the bound that worked raises the bound, one that failed
        # (left the simplex or lowered the likelihood) lowers it.
        step_max = np.where(at_max, np.where(accept & ok, 4 * step_max, np.maximum(1.0, step_max / 4)), step_max)
        x = x3 if accept.all() else np.where(accept, x3, x2)
        ll = np.where(accept, ll3, np.nan)


def _em_joint(u: np.ndarray, lg: np.ndarray, lo: np.ndarray, iters: int, tol: float,
              accelerate: bool = True, with_matrix: bool = False):
    """Maximum-likelihood true-cell shares T (shape (B, 4)) of B independent groups or draws.

    u: (B, 4) unlabelled turns of the group per predicted cell; lg: (B, 4, 4) labelled turns of the group
    [true, pred]; lo: (B, 4, 4) labelled turns elsewhere [true, pred], which inform only the matrix. Each row stops
    when an EM step from its current point moves no share by `tol` or more, or after `iters` cycles (a cycle is one
    EM step, or with `accelerate` one SQUAREM step of three EM steps). `with_matrix` also returns the matrices M.
    """
    # EM converges linearly here with a rate close to 1 (much of the information is missing): 500 plain
    # iterations left bootstrap draws up to 0.5 from their maximum. SQUAREM (Varadhan & Roland 2008, scheme S3)
    # extrapolates along two EM steps with a per-row step length, then takes one EM step from there; it keeps
    # EM's fixed point, and a row whose extrapolation leaves the simplex or lowers the likelihood takes the plain
    # EM steps instead, so every cycle increases the likelihood like EM.
    run = _EMRun.start(u, lg, lo)
    _em_iterate(run, np.arange(run.x.shape[1]), tol, iters, accelerate)
    t, m = run.out[:4].T.copy(), run.out[4:].T.reshape(-1, 4, 4).copy()
    return (t, m) if with_matrix else t


def _em_joint_groups(u: np.ndarray, lg: np.ndarray, lo: np.ndarray, iters: int, tol: float,
                     accelerate: bool = True) -> np.ndarray:
    """`_em_joint` on each of G groups at once (u (G, B, 4), lg and lo (G, B, 4, 4)), equal to calling it per group."""
    # Every row of `_em_joint` iterates on its own (own step length, own convergence test, then frozen), so the G
    # groups' rows are simply stacked: only the numpy calls are shared, and many small groups become cheap.
    g, b = u.shape[:2]
    return _em_joint(u.reshape(g * b, 4), lg.reshape(g * b, 4, 4), lo.reshape(g * b, 4, 4), iters, tol,
                     accelerate).reshape(g, b, 4)


def _with_draws(u, lg, lo, obs, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The group's (u, lg, lo) as row 0 and its `draws` Dirichlet redraws as rows 1.., seeded from its counts."""
    rng = np.random.default_rng(_seed_for(seed, np.concatenate([obs, lg.ravel(), lo.ravel()])))
    ub = rng.dirichlet(u + 0.5, draws) * u.sum()
    n_in = lg.sum()
    lgb = (rng.dirichlet(lg.ravel() + 0.5, draws) * n_in).reshape(draws, 4, 4) if n_in > 0 else \
        np.zeros((draws, 4, 4))
    lob = np.stack([rng.dirichlet(lo[i] + 0.5, draws) * lo[i].sum() for i in range(4)], axis=1)
    return np.concatenate([u[None], ub]), np.concatenate([lg[None], lgb]), np.concatenate([lo[None], lob])


def correct_joint_em(table, in_group, elsewhere, confidence: float = 0.95, draws: int = DEFAULT_DRAWS,
                     seed: int = 0, iters: int = 2000, tol: float = 1e-9,
                     draw_tols: tuple[float, ...] | None = DRAW_TOLS) -> TwoWayCorrection:
    """Two-classifier correction by maximum likelihood when some of the group's own turns are labelled.

    `table` is the group's observed 2x2 count table (labelled turns included), `in_group` the 4x4 counts
    [true cell, predicted cell] of the group's labelled turns, `elsewhere` those of other labelled turns (same
    misclassification matrix, other windows or segments). The model: every turn's predicted cell follows the
    shared matrix M[pred | true]; the group's true shares T are free. EM maximises the likelihood of both
    labelled and unlabelled turns. With no labels in the group this is the matrix inversion of
    `correct_many_joint`; with every label from the group it is P(pred) x P(true | pred), which is several
    times more precise than inverting a matrix estimated from the same labels. Interval: the EM is rerun on
    Dirichlet redraws of the three count tables (see `correct_joint_em_many` for `draw_tols`).
    """
    return correct_joint_em_many([table], [in_group], [elsewhere], confidence, draws, seed, iters, tol,
                                 draw_tols=draw_tols)[0]


def correct_joint_em_many(tables, in_groups, elsewheres, confidence: float = 0.95, draws: int = DEFAULT_DRAWS,
                          seed: int = 0, iters: int = 2000, tol: float = 1e-9, chunk: int = 32,
                          draw_tols: tuple[float, ...] | None = DRAW_TOLS,
                          workers: int | None = None) -> list[TwoWayCorrection]:
    """`correct_joint_em` for many groups (the same results, group by group) with their EMs batched.

    Every point EM converges to `tol`. A bootstrap draw matters only through its rank, except the few draws the
    interval's quantiles interpolate between: every draw first converges to `draw_tols[0]`, then, stage by stage
    down to `tol`, only the draws whose rate could lie near a quantile (given a bound on their distance to their
    maximum) go on, from where they stopped, so a draw that reaches `tol` ends exactly where one EM to `tol` would
    have. `draw_tols=None` runs every draw to `tol` (the same intervals at about twice the cost). The groups are
    shared out in contiguous shares over `workers` processes (default `EM_WORKERS`; forked children, see
    `_in_forked_children`), which changes no result.
    """
    tables = [np.asarray(x, dtype=float).reshape(4) for x in tables]
    in_groups = [np.asarray(x, dtype=float).reshape(4, 4) for x in in_groups]
    elsewheres = [np.asarray(x, dtype=float).reshape(4, 4) for x in elsewheres]
    nan = TwoWayCorrection(_NAN, _NAN, np.full((2, 2), np.nan))
    out: list[TwoWayCorrection] = [nan] * len(tables)
    ok = [i for i in range(len(tables))
          if tables[i].sum() > 0 and not ((in_groups[i] + elsewheres[i]).sum(axis=1) <= 0).any()]

    def share(groups: list[int]) -> list[TwoWayCorrection]:
        return _em_groups(tables, in_groups, elsewheres, groups, confidence, draws, seed, iters, tol, chunk,
                          draw_tols)

    n = _em_worker_count(EM_WORKERS if workers is None else workers, len(ok))
    if n > 1:
        # Each group's results depend only on its own rows (test_refusal_em_batch, test_em_parallel), so any split
        # gives the same numbers; contiguous shares of equal size keep the join trivial.
        bounds = np.linspace(0, len(ok), n + 1).round().astype(int)
        shares = [ok[bounds[k]:bounds[k + 1]] for k in range(n)]
        results = [r for part in _in_forked_children(share, shares) for r in part]
    else:
        results = share(ok)
    for i, r in zip(ok, results):
        out[i] = r
    return out


def _em_worker_count(workers: int, groups: int) -> int:
    """How many processes `correct_joint_em_many` uses for `groups` groups when asked for `workers`."""
    # A daemonic process (a multiprocessing pool worker, or one of our own children) may not fork children.
    if workers <= 1 or groups < EM_MIN_PARALLEL or multiprocessing.current_process().daemon:
        return 1
    return int(min(workers, groups // max(1, EM_MIN_PARALLEL // 2)))


def _em_child(fn, share, conn) -> None:
    """Send ("ok", fn(share)) or ("error", traceback text) on conn; runs in a forked child."""
    # The parent's signal handlers (the worker's graceful shutdown) must not run here, and a shutdown signal sent to
    # the whole process group must not kill the share the parent waits for: the child finishes it (seconds) and
    # leaves; the parent kills it if it gives up first.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        msg = ("ok", fn(share))
    except BaseException:  # noqa: BLE001 -- every failure goes to the parent, which raises it
        msg = ("error", traceback.format_exc())
    conn.send(msg)
    conn.close()


def _in_forked_children(fn, shares: list) -> list:
    """[fn(share) for share in shares], all but the last computed in forked children, in the order of `shares`."""
    # The child inherits the arguments by fork (nothing pickled on the way in) and runs only numpy code, so DuckDB
    # connections or scheduler threads of this process are never touched there; multiprocessing ends it with
    # os._exit. It is daemonic: it cannot fork again, and it is terminated if this process exits first.
    ctx = multiprocessing.get_context("fork")
    children = []
    finished = False
    try:
        for part in shares[:-1]:
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_em_child, args=(fn, part, send), name="joint-em", daemon=True)
            proc.start()
            send.close()  # the child holds the only write end: its death wakes `recv` with EOFError
            children.append((proc, recv))
        last = fn(shares[-1])
        deadline = time.monotonic() + EM_CHILD_TIMEOUT
        results = []
        for proc, recv in children:
            if not recv.poll(max(0.0, deadline - time.monotonic())):
                raise JobError(f"a joint-EM child process (pid {proc.pid}) sent no result within "
                               f"{EM_CHILD_TIMEOUT:.0f} s after this process's share",
                               hint="set monitor.stats.EM_WORKERS = 1 to compute in one process")
            try:
                status, value = recv.recv()
            except EOFError:
                proc.join(5)
                raise JobError(f"a joint-EM child process (pid {proc.pid}) died without a result "
                               f"(exit code {proc.exitcode})",
                               hint="check memory limits, or set monitor.stats.EM_WORKERS = 1") from None
            if status != "ok":
                # The child's traceback, chained, goes to the log with this error.
                raise JobError(f"the joint EM failed in a child process: {value.strip().splitlines()[-1]}",
                               hint="set monitor.stats.EM_WORKERS = 1 to debug it in one process") \
                    from RuntimeError(value)
            results.append(value)
        finished = True
        return results + [last]
    finally:
        # A child that sent its result is leaving; after a failure here or there, one still running is killed.
        for proc, recv in children:
            recv.close()
            proc.join(5 if finished else 0)
            if proc.is_alive():
                proc.kill()
                proc.join()


def _em_groups(tables, in_groups, elsewheres, groups: list[int], confidence, draws, seed, iters, tol, chunk,
               draw_tols) -> list[TwoWayCorrection]:
    """The results of `correct_joint_em_many` for the listed usable groups, in their order, in this process."""
    # Every row of `_em_iterate` (a group's point or one of its draws) iterates and stops on its own, so `chunk`
    # groups' points and draws run as one batch: the few slow rows of each group share their late iterations'
    # numpy call overhead with the other groups' instead of paying it alone.
    out: list[TwoWayCorrection] = []
    a = (1 - confidence) / 2
    tols = [t for t in (draw_tols or ()) if t > tol] + [tol]
    # The few draws refined per chunk are the slow ones: refined together for REFINE_CHUNKS chunks, they share their
    # numpy calls; more would hold every chunk's EM state at once (~80 doubles per draw).
    for first in range(0, len(groups), chunk * REFINE_CHUNKS):
        batch_groups = groups[first:first + chunk * REFINE_CHUNKS]
        runs = []
        for start in range(0, len(batch_groups), chunk):
            rows = batch_groups[start:start + chunk]
            batch = [_with_draws(np.clip(tables[i] - in_groups[i].sum(axis=0), 0, None), in_groups[i],
                                 elsewheres[i], tables[i], draws, seed) for i in rows]
            u, lg, lo = (np.concatenate(x) for x in zip(*batch))
            run = _EMRun.start(u, lg, lo)
            is_point = np.zeros((len(rows), draws + 1), bool)
            is_point[:, 0] = True
            _em_iterate(run, np.arange(len(u)), np.where(is_point.ravel(), tol, tols[0]), iters)
            runs.append(run)
        run = _EMRun.concat(runs) if len(runs) > 1 else runs[0]
        del runs
        if len(tols) > 1:
            _refine_near_quantiles(run, len(batch_groups), draws, a, tols[1:], iters)
        res = run.out[:4].T.reshape(len(batch_groups), draws + 1, 4)
        points = res[:, 0]
        ob, ubr = _over_under(res[:, 1:].reshape(len(batch_groups), draws, 2, 2))
        oq, uq = _quantiles(ob, a), _quantiles(ubr, a)
        for j, i in enumerate(batch_groups):
            point = points[j].reshape(2, 2)
            over, under = _over_under(point)
            obs = tables[i]
            o_est = _estimate(over, oq[0, j], oq[1, j]) if obs[0] + obs[1] > 0 else _NAN
            u_est = _estimate(under, uq[0, j], uq[1, j]) if obs[2] + obs[3] > 0 else _NAN
            out.append(TwoWayCorrection(o_est, u_est, point))
    return out


def _refine_near_quantiles(run: _EMRun, groups: int, draws: int, a: float, tols, iters: int) -> None:
    """Continue the draws of `run` (G groups of a point then `draws` draws) that could move a quantile, through the
    decreasing tolerances `tols` (the last is the point's): each stage narrows the draws the next one needs."""
    shape = (groups, draws + 1)
    for tol in tols:
        while True:
            t = run.out[:4].T.reshape(groups, draws + 1, 4)[:, 1:]
            # Rows converged to tol, or capped at iters (they would stop there with tol too), are done.
            done = ((run.step < tol) | (run.cycles >= iters)).reshape(shape)[:, 1:]
            final = (run.step < tols[-1]) | (run.cycles >= iters)
            # A row that stopped after an EM step of s is about s * alpha from its maximum, alpha the largest
            # SQUAREM step length (~1 / (1 - EM's rate of convergence)) it met: on the 140k benchmark home's groups
            # with 600 labels the true distance of 99.9% of the rows was within 5x that (at most 13x at s = 1e-6,
            # 100x for one row at 1e-5), hence the margin.
            refine = np.zeros((groups, draws), bool)
            with np.errstate(invalid="ignore", divide="ignore"):
                alpha = np.maximum(np.nan_to_num(run.alpha, nan=np.inf), 1)  # NaN: no SQUAREM cycle yet, unbounded
                err_t = np.where(final, 0.0, DRAW_MARGIN * run.step * alpha).reshape(shape)[:, 1:]
                benign, harmful = t[..., 0] + t[..., 1], t[..., 2] + t[..., 3]
                # Over-refusal is T[benign, refused] / T[benign], under-refusal T[harmful, complied] / T[harmful];
                # |d rate| <= max |d share| / share, unbounded when the share could reach 0.
                for rate, share in ((t[..., 1] / benign, benign), (t[..., 2] / harmful, harmful)):
                    err = np.where(err_t == 0, 0.0, np.where(share > 2 * err_t, err_t / (share - err_t), np.inf))
                    refine |= _near_quantiles(rate, err, a) & ~done
            if not refine.any():
                break
            at = np.flatnonzero(np.concatenate([np.zeros((groups, 1), bool), refine], axis=1).ravel())
            _em_iterate(run, at, tol, iters)


def _near_quantiles(values: np.ndarray, err: np.ndarray, a: float) -> np.ndarray:
    """Draws (G, D) whose value, known within +-err, could be or reorder the order statistics that `np.nanquantile`
    interpolates between at a and 1 - a (NaN values and unbounded errors included)."""
    # The k-th smallest true value lies between the k-th smallest lower bound and the k-th smallest upper bound; a
    # draw whose whole interval is below (above) that range is below (above) it whatever its exact value.
    fin = np.isfinite(values)
    n = fin.sum(axis=1)
    lows = np.sort(np.where(fin, values - err, np.inf), axis=1)
    highs = np.sort(np.where(fin, values + err, np.inf), axis=1)
    near = ~fin | ~np.isfinite(err)
    g = np.arange(len(values))
    last = np.maximum(n - 1, 0)
    for q in (a, 1 - a):
        k = np.floor(q * last).astype(int)
        low, high = lows[g, k], highs[g, np.minimum(k + 1, last)]
        near |= fin & (values + err >= low[:, None]) & (values - err <= high[:, None])
    return near
