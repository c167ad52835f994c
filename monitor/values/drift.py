"""Drift statistics of value scores and of what users ask about, computed through Evidently's stattest registry.

Why not Evidently's defaults: value scores are mostly zero (`moralizing` is above zero in about 2% of HH-RLHF
replies). Evidently picks K-S (p < 0.05) up to 1,000 reference rows and normed Wasserstein >= 0.1 above. A p-value
alone alerts on tiny, meaningless shifts once daily traffic is large, and at p < 0.05 over 24 dimensions x segments
x days it raises a false alarm somewhere nearly every day; a distance alone is noise at small n (one reply with 10
moralising terms in 100 moves a mean by 0.2 sd). So the default method, registered in Evidently as `mean_shift`,
asks for both an effect and evidence:

- statistic: |standardised mean difference| d = |mean_cur - mean_ref| / pooled sd;
- verdict: drift when d >= threshold (default 0.2, a "small" effect) **and** p < ALPHA (1e-4: 0.001 per group,
  split over the ~24 dimensions compared in it), where p is the larger of a pooled-variance t-test on the mean and
  Fisher's exact test on the share of replies scoring above zero (an intersection-union test: both must agree);
  the t-test's alone when every reply scores above zero (the `refusal` probability), where that share says nothing.

The mean is what the oversight team reads ("replies moralise more"); the t-test uses the pooled variance because
its null is "one distribution" (see `mean_shift`); with n in the hundreds the mean of these scores is close enough
to normal for the test at this alpha (see the simulation test). Topic mix and prompt-harm mix are
categorical: the default `mix_shift` method is the Jensen-Shannon distance (Evidently's categorical default above
1,000 rows, threshold 0.1) gated by a chi-square test of homogeneity (p < ALPHA) for the same reason. Any other
Evidently method can be configured (`values.drift_method`, `values.drift_threshold`); its own verdict is then
used as is.

Evidently is imported lazily (about 4 s, and it pulls plotly, which the core must not import at module import).
The job calls the registered StatTest objects directly: running a full `Report` renders plotly widgets for every
column (about 80% of its run time); `report_html` runs the real Report with the same methods and thresholds for
the dashboard, and a test checks that both give the same verdicts.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats
from scipy.spatial import distance

# 0.001 per group, Bonferroni-split over the ~24 dimensions compared in it (0.001 / 24 = 4e-5, rounded up).
ALPHA = 1e-4
MEAN_SHIFT = "mean_shift"
MIX_SHIFT = "mix_shift"
DEFAULT_THRESHOLD = {MEAN_SHIFT: 0.2, MIX_SHIFT: 0.1}
# Evidently methods whose score is a p-value (drift when below the threshold); the others are distances.
P_VALUE_METHODS = {"ks", "chisquare", "z", "fisher_exact", "g_test", "anderson", "cramer_von_mises", "mannw",
                   "epps_singleton", "t_test", "empirical_mmd"}


def mean_shift(ref, cur) -> tuple[float, float]:
    """(signed standardised mean difference, p-value: max of a pooled t-test and Fisher on the non-zero share)."""
    r = np.asarray(ref, dtype=float)
    c = np.asarray(cur, dtype=float)
    r, c = r[np.isfinite(r)], c[np.isfinite(c)]
    nr, nc = len(r), len(c)
    if nr < 2 or nc < 2:
        return math.nan, math.nan
    diff = c.mean() - r.mean()
    # Pooled (Student) variance, not Welch: the null is "nothing changed", i.e. one distribution. A day that
    # happens to miss the long tail of a mostly-zero score has a tiny variance of its own, and Welch's test then
    # called a dip significant (p = 5e-5 for a d = -0.25 dip on a 184-reply segment that Mann-Whitney gives 0.12).
    pooled = math.sqrt(((nr - 1) * r.var(ddof=1) + (nc - 1) * c.var(ddof=1)) / (nr + nc - 2))
    if pooled == 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / (pooled * math.sqrt(1 / nr + 1 / nc))
    p = float(2 * stats.t.sf(abs(t), nr + nc - 2))
    kr, kc = int((r > 0).sum()), int((c > 0).sum())
    if r.min() >= 0 and c.min() >= 0 and kr + kc < nr + nc:
        # Intersection-union with Fisher's exact test on the share of replies scoring above zero: both must
        # reject, so the level stays ALPHA. For rare dimensions (a handful of non-zero replies a day) the t-test's
        # normal approximation fails and a burst of 8 where 3 are expected looked like d = 0.23, p < 1e-4.
        # When every reply scores above zero (the `refusal` probability) the share is 1 on both sides and says
        # nothing: Fisher's p = 1 there would keep the column from ever drifting.
        p = max(p, float(stats.fisher_exact([[kc, nc - kc], [kr, nr - kr]])[1]))
    return float(diff / pooled), p


def mean_shift_weighted(ref, weights, cur) -> tuple[float, float, float]:
    """`mean_shift` of a reference whose replies carry frequency weights (copies made by `stratify`): (effect, p,
    effective reference n), the reference counted as its Kish effective sample size (sum w)^2 / sum w^2.

    Copies of one reply are not independent evidence: with 20 crime replies copied 25 times each to match a model
    that gets half crime questions, the plain test on the copies saw 500 crime replies and found drift at p < 1e-4
    in 2% of comparisons with none (simulated); counted as its effective size the reference gives none. Every weight
    1 gives `mean_shift`'s numbers.
    """
    r = np.asarray(ref, dtype=float)
    w = np.asarray(weights, dtype=float)
    c = np.asarray(cur, dtype=float)
    keep = np.isfinite(r) & (w > 0)
    r, w, c = r[keep], w[keep], c[np.isfinite(c)]
    if not len(r) or len(c) < 2:
        return math.nan, math.nan, 0.0
    total = w.sum()
    n_eff = total * total / float((w * w).sum())
    n = round(n_eff)
    if n < 2:
        return math.nan, math.nan, n_eff
    mean_r = float((w * r).sum() / total)
    # The weighted spread, as the sum of squared deviations of a sample of n replies.
    m2_r = n * float((w * (r - mean_r) ** 2).sum() / total)
    pos_r = round(n * float(w[r > 0].sum() / total))
    mean_c = float(c.mean())
    effect, p = mean_shift_stats([n], [mean_r], [m2_r], [pos_r], [r.min() >= 0], [len(c)], [mean_c],
                                 [float(((c - mean_c) ** 2).sum())], [int((c > 0).sum())], [c.min() >= 0])
    return float(effect[0]), float(p[0]), n_eff


def effect_interval(d: float | None, n_cur: int, n_ref: float, z: float = 1.959963984540054) -> tuple | None:
    """95% interval of a standardised mean difference d from n_cur and n_ref replies (Hedges & Olkin's large-sample
    variance (n_cur + n_ref) / (n_cur n_ref) + d^2 / (2 (n_cur + n_ref))); None when d is not finite or n < 2."""
    if d is None or not math.isfinite(d) or n_cur < 2 or n_ref < 2:
        return None
    se = math.sqrt((n_cur + n_ref) / (n_cur * n_ref) + d * d / (2 * (n_cur + n_ref)))
    return d - z * se, d + z * se


def mean_shift_stats(n_ref, mean_ref, m2_ref, pos_ref, nonneg_ref, n_cur, mean_cur, m2_cur, pos_cur, nonneg_cur):
    """`mean_shift` of many column pairs at once from their sums: (effects, p-values) arrays.

    Per side: n (>= 2), mean, m2 (sum of squared deviations from the mean), pos (scores above 0) and nonneg (no
    score below 0). Same formulas and branches as `mean_shift`, so the two agree to rounding; Fisher's p-values are
    scipy's exactly (`fisher_exact_two_sided`).
    """
    nr, nc = np.asarray(n_ref, dtype=float), np.asarray(n_cur, dtype=float)
    diff = np.asarray(mean_cur, dtype=float) - np.asarray(mean_ref, dtype=float)
    pooled = np.sqrt((np.asarray(m2_ref, dtype=float) + np.asarray(m2_cur, dtype=float)) / (nr + nc - 2))
    flat = pooled == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / (pooled * np.sqrt(1 / nr + 1 / nc))
        effect = diff / pooled
    p = 2 * stats.t.sf(np.abs(t), nr + nc - 2)
    # As in `mean_shift`: no Fisher test when every reply of both sides scores above zero.
    every = np.asarray(pos_ref, dtype=float) + np.asarray(pos_cur, dtype=float) >= nr + nc
    fisher = ~flat & np.asarray(nonneg_ref, dtype=bool) & np.asarray(nonneg_cur, dtype=bool) & ~every
    if fisher.any():
        kr, kc = np.asarray(pos_ref, dtype=np.int64)[fisher], np.asarray(pos_cur, dtype=np.int64)[fisher]
        nri, nci = np.asarray(n_ref, dtype=np.int64)[fisher], np.asarray(n_cur, dtype=np.int64)[fisher]
        p[fisher] = np.maximum(p[fisher], fisher_exact_two_sided(kc, nci - kc, kr, nri - kr))
    # No spread on either side: no test, the means are equal or they differ infinitely many sds apart.
    effect = np.where(flat, np.where(diff == 0, 0.0, np.copysign(np.inf, diff)), effect)
    p = np.where(flat, np.where(diff == 0, 1.0, 0.0), p)
    return effect, p


def fisher_exact_two_sided(a, b, c, d) -> np.ndarray:
    """Two-sided p-values of `scipy.stats.fisher_exact([[a, b], [c, d]])` for arrays of 2x2 tables, vectorised.

    scipy (1.17 `_stats_py.fisher_exact`) sums the hypergeometric tail beyond the observed table and the tail beyond
    the point on the other side of the mode found by a binary search on the exact pmf: about 20 pmf calls, each
    0.2 ms at 60,000 replies (Boost's exact pmf), i.e. seconds per run. Here every branch and the binary search run
    on a log-gamma pmf (error below 1e-7 in the log at these sizes), and only the two tail sums are scipy's own calls
    with the same arguments, so the p-values are scipy's bit for bit; a table whose decision the approximation could
    get wrong (a comparison within its error bound) is handed to scipy whole.
    """
    a, b, c, d = (np.asarray(x, dtype=np.int64) for x in (a, b, c, d))
    out = np.ones(a.shape, dtype=float)
    # A zero row or column sum: p = 1.
    live = ~((a + c == 0) | (b + d == 0) | (a + b == 0) | (c + d == 0))
    if not live.any():
        return out
    a, b, c, d = a[live], b[live], c[live], d[live]
    n1, n2, n = a + b, c + d, a + c
    m = n1 + n2
    hg = stats.hypergeom
    base = special.gammaln(n1 + 1) + special.gammaln(n2 + 1) - special.gammaln(m + 1) + special.gammaln(n + 1) + \
        special.gammaln(m - n + 1)
    # Error bound of lpmf: a few ulps of the largest log-gamma terms, with a wide margin.
    tol = 1e-13 * (1.0 + special.gammaln(m + 1.0)) + 1e-12

    def lpmf(x, i):
        """Natural log of the hypergeometric pmf of rows i at x (-inf outside the support)."""
        x = np.asarray(x, dtype=np.int64)
        ok = (x >= 0) & (x <= n1[i]) & (n[i] - x >= 0) & (n[i] - x <= n2[i])
        xs = np.where(ok, x, 0)
        v = base[i] - special.gammaln(xs + 1) - special.gammaln(n1[i] - xs + 1) - \
            special.gammaln(n[i] - xs + 1) - special.gammaln(n2[i] - n[i] + xs + 1)
        return np.where(ok, v, -np.inf)

    every = np.arange(len(a))
    mode = ((n + 1) * (n1 + 1) / (n1 + n2 + 2)).astype(np.int64)
    la, lmode = lpmf(a, every), lpmf(mode, every)
    lg = math.log1p(1e-14)  # scipy's gamma = 1 + 1e-14, in logs

    def near(x, y, t):
        """Logs x and y are too close (t: error bound of each) for the approximation to order them."""
        with np.errstate(invalid="ignore"):
            return ~(np.abs(x - y) > 2 * t + 1e-13)  # -inf vs -inf: NaN, i.e. near

    p = np.ones(len(a))
    unsure = (a != mode) & near(la, lmode, tol)
    at_mode = a == mode  # else: |pexact - pmode| / max > 1e-14 for sure (or unsure)
    for lower in (True, False):
        sel = ~at_mode & ~unsure & ((a < mode) if lower else (a >= mode))
        i = np.flatnonzero(sel)
        if not len(i):
            continue
        end = n[i] if lower else np.zeros(len(i), dtype=np.int64)
        lend = lpmf(end, i)
        thr = la[i] + lg
        bad = near(lend, thr, tol[i])
        alone = (lend > thr) & ~bad
        if lower:
            # Last x in [mode, n] with pmf(x) >= pexact * gamma (the pmf falls on that side of the mode).
            guess = _binary_search(lambda x, k: -lpmf(x, k), -thr, mode[i], n[i], i)
        else:
            # Last x in [0, mode] with pmf(x) <= pexact * gamma (the pmf rises on that side).
            guess = _binary_search(lpmf, thr, np.zeros(len(i), dtype=np.int64), mode[i], i)
        bad |= ~alone & (near(lpmf(guess, i), thr, tol[i]) | near(lpmf(guess + 1, i), thr, tol[i]))
        unsure[i[bad]] = True
        k, alone, guess = i[~bad], alone[~bad], guess[~bad]
        # The two tails with scipy's own calls and arguments.
        tail = hg.cdf(a[k], m[k], n1[k], n[k]) if lower else hg.sf(a[k] - 1, m[k], n1[k], n[k])
        far = np.zeros(len(k))
        j = ~alone
        if j.any():
            kj = k[j]
            far[j] = hg.sf(guess[j], m[kj], n1[kj], n[kj]) if lower else hg.cdf(guess[j], m[kj], n1[kj], n[kj])
        p[k] = np.where(alone, tail, tail + far)
    for k in np.flatnonzero(unsure):
        p[k] = stats.fisher_exact([[a[k], b[k]], [c[k], d[k]]])[1]
    out[live] = np.minimum(p, 1.0)
    return out


def _binary_search(f, target, lo, hi, rows) -> np.ndarray:
    """scipy's `_binary_search_for_binom_tst` on arrays: per row, the i in [lo, hi] with f(i) <= target < f(i + 1).

    `f(x, rows)` evaluates the function of the given rows at x.
    """
    lo, hi = lo.copy(), hi.copy()
    found = np.full(len(lo), -1, dtype=np.int64)
    active = lo < hi
    while active.any():
        k = np.flatnonzero(active)
        mid = lo[k] + (hi[k] - lo[k]) // 2
        val = f(mid, rows[k])
        below, above = val < target[k], val > target[k]
        lo[k[below]] = mid[below] + 1
        hi[k[above]] = mid[above] - 1
        hit = ~below & ~above
        found[k[hit]] = mid[hit]
        active = (lo < hi) & (found < 0)
    rest = np.flatnonzero(found < 0)
    if len(rest):
        ok = f(lo[rest], rows[rest]) <= target[rest]
        found[rest] = np.where(ok, lo[rest], lo[rest] - 1)
    return found


def category_shares(ref, cur) -> tuple[list, np.ndarray, np.ndarray]:
    """(categories, reference counts, current counts) over the union of categories, sorted by name."""
    r = pd.Series(ref).dropna().astype(str)
    c = pd.Series(cur).dropna().astype(str)
    keys = sorted(set(r) | set(c))
    rc = r.value_counts().reindex(keys, fill_value=0).to_numpy(float)
    cc = c.value_counts().reindex(keys, fill_value=0).to_numpy(float)
    return keys, rc, cc


def mix_shift(ref, cur) -> tuple[float, float]:
    """(Jensen-Shannon distance, natural log, between category shares; chi-square homogeneity p-value)."""
    return mix_shift_counts(*category_shares(ref, cur))


def mix_shift_counts(keys: list, rc: np.ndarray, cc: np.ndarray) -> tuple[float, float]:
    """`mix_shift` from the category counts of `category_shares` (reference, current)."""
    if not keys or rc.sum() == 0 or cc.sum() == 0:
        return math.nan, math.nan
    js = float(distance.jensenshannon(rc / rc.sum(), cc / cc.sum()))
    if len(keys) < 2:
        return js, 1.0
    p = float(stats.chi2_contingency(np.vstack([rc, cc]))[1])
    return js, p


JS_DRAWS = 500  # bootstrap resamples of a mix drift interval (1-2 ms per row)
JS_INTERVAL = "bootstrap, bias-corrected, 95%, of the distance between the two traffic mixes"


def _js_divergence(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (natural log, the square of scipy's distance) between the rows of two count arrays."""
    a = a / a.sum(axis=-1, keepdims=True)
    b = b / b.sum(axis=-1, keepdims=True)
    m = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(a > 0, a * np.log(2 * a / m), 0.0) + np.where(b > 0, b * np.log(2 * b / m), 0.0)
    return np.maximum(t.sum(axis=-1) / 2, 0.0)


def js_interval(rc, cc, draws: int = JS_DRAWS) -> tuple[float | None, float | None, str | None]:
    """(low, high, None): 95% interval of the Jensen-Shannon distance between the category mixes the two count vectors
    were drawn from (not of the plug-in distance, which two finite samples bias upward); (None, None, why) when there
    is no honest interval (it would be a single point, a claim of certainty).

    A seeded parametric bootstrap: both sides resampled `draws` times from their observed shares (multinomial, each
    side its own n), the JS divergence D (the distance squared) of every resample. The plug-in D of two samples is
    too large by about (K - 1) / 8 x (1 / n_ref + 1 / n_cur) when nothing changed (K categories: a distance of 0.2
    for 18 topics and 100 replies a side), and the resamples, drawn from the already-shifted observed shares, are
    too large again by about as much: a plain percentile interval of the resampled distances lies above a true
    distance of 0 every time. So the interval is corrected for that bias on the divergence scale, where it adds: the
    union of the basic interval [2 D - q97.5, 2 D - q2.5] and the bias-shifted percentiles [q2.5 - 2 b, q97.5 - 2 b]
    (b = mean resampled D - D), cut at 0 and square-rooted. Either alone covered as little as 88% in some cells of a
    seeded simulation with known mixes; the union covered at least 94% of true distances 0 to 0.25 with 100 or more
    replies a side and 5 or 20 categories, 90% and more of a distance of 0.4 (docs/values.md,
    tests/test_value_drift_mix_ci.py). It may lie below the plug-in value on small samples.
    The seed is a hash of the counts, so both computation paths and every rerun give the same interval.
    """
    rc = np.asarray(rc, dtype=float)
    cc = np.asarray(cc, dtype=float)
    used = (rc > 0) | (cc > 0)
    rc, cc = rc[used], cc[used]
    nr, nc = int(rc.sum()), int(cc.sum())
    if len(rc) < 2 or nr == 0 or nc == 0 or ((rc > 0).sum() == 1 and (cc > 0).sum() == 1):
        return None, None, "each side all in one category: no interval (resampling cannot vary)"
    key = np.concatenate([rc, cc]).astype(np.int64).tobytes()
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
    d = float(_js_divergence(rc, cc))
    ds = _js_divergence(rng.multinomial(nr, rc / nr, size=draws).astype(float),
                        rng.multinomial(nc, cc / nc, size=draws).astype(float))
    q_lo, q_hi = np.quantile(ds, [0.025, 0.975])
    bias = float(ds.mean()) - d
    lo = min(2 * d - q_hi, q_lo - 2 * bias)
    hi = max(2 * d - q_lo, q_hi - 2 * bias)
    if hi <= 0:
        # Counts more alike than multinomial sampling makes them (every topic seen once or twice on both sides):
        # the correction overshoots; [0, 0] would claim certainty that nothing moved.
        return None, None, "samples closer than resampling noise: no interval (the corrected one is the point 0)"
    return math.sqrt(max(lo, 0.0)), math.sqrt(hi), None


def _mean_shift_test(reference_data, current_data, feature_type, threshold, _result=None):
    d, p = _result or mean_shift(reference_data, current_data)
    score = abs(d) if math.isfinite(d) or math.isinf(d) else math.nan
    return score, bool(score >= threshold and p < ALPHA)


def _mix_shift_test(reference_data, current_data, feature_type, threshold, _result=None):
    js, p = _result or mix_shift(reference_data, current_data)
    return js, bool(js >= threshold and p < ALPHA)


_REGISTERED = False


def _evidently():
    """Import Evidently's stattest registry once and register the `mean_shift` and `mix_shift` methods in it."""
    global _REGISTERED
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    if not _REGISTERED:
        registry.register_stattest(registry.StatTest(
            name=MEAN_SHIFT, display_name=f"standardised mean difference (t-test and Fisher p < {ALPHA})",
            allowed_feature_types=[ColumnType.Numerical], default_threshold=DEFAULT_THRESHOLD[MEAN_SHIFT]),
            _mean_shift_test)
        registry.register_stattest(registry.StatTest(
            name=MIX_SHIFT, display_name=f"Jensen-Shannon distance (chi-square p < {ALPHA})",
            allowed_feature_types=[ColumnType.Categorical], default_threshold=DEFAULT_THRESHOLD[MIX_SHIFT]),
            _mix_shift_test)
        _REGISTERED = True
    return registry, ColumnType


def resolve_method(method: str | None, kind: str) -> str | None:
    """The method to use for a numeric ('num') or categorical ('cat') column: configured, else ours."""
    if method == "evidently_default":
        return None  # Evidently picks by column type and size (K-S / chi-square / Wasserstein / Jensen-Shannon)
    return method or (MEAN_SHIFT if kind == "num" else MIX_SHIFT)


@dataclass
class Drift:
    """One column's drift result: Evidently's score and verdict plus the descriptive numbers behind them."""

    method: str
    threshold: float
    score: float  # Evidently's drift score (distance, |d| or p-value depending on the method)
    drift_detected: bool
    p_value: float | None
    effect: float | None  # numeric: signed standardised mean difference; categorical: JS distance
    mean_current: float | None = None
    mean_reference: float | None = None

    @property
    def is_p_value(self) -> bool:
        return self.method in P_VALUE_METHODS


def column_drift(ref: pd.Series, cur: pd.Series, kind: str, method: str | None = None,
                 threshold: float | None = None) -> Drift:
    """Drift of one column ('num' or 'cat') of current against reference with Evidently's registered stattest."""
    ref = pd.Series(ref).dropna().reset_index(drop=True)
    cur = pd.Series(cur).dropna().reset_index(drop=True)
    if kind == "num":
        ref, cur = ref.astype(float), cur.astype(float)
        effect, p = mean_shift(ref, cur)
        mc, mr = float(cur.mean()), float(ref.mean())
    else:
        ref, cur = ref.astype(str), cur.astype(str)
        effect, p = mix_shift(ref, cur)
        mc = mr = None
    return _drift(ref, cur, kind, method, threshold, effect, p, mc, mr)


def category_drift(keys: list, rc: np.ndarray, cc: np.ndarray) -> Drift:
    """`column_drift(ref, cur, 'cat')` from the category counts of `category_shares` (reference, current)."""
    effect, p = mix_shift_counts(keys, rc, cc)
    return _drift(None, None, "cat", None, None, effect, p, None, None)


def mean_shift_drift(effect: float, p: float, mean_current: float, mean_reference: float,
                     threshold: float | None = None) -> Drift:
    """`column_drift(ref, cur, 'num')` with the default method, from `mean_shift`'s (effect, p) and the two means."""
    return _drift(None, None, "num", MEAN_SHIFT, threshold, effect, p, mean_current, mean_reference)


def _drift(ref, cur, kind, method, threshold, effect, p, mc, mr) -> Drift:
    name = resolve_method(method, kind)
    if name in (MEAN_SHIFT, MIX_SHIFT):
        # Our own tests (the defaults) are the functions registered in Evidently: calling them directly gives the
        # same score and verdict as Evidently's StatTest wrapper, computed once, without importing Evidently
        # (seconds per process) on every run.
        thr = DEFAULT_THRESHOLD[name] if threshold is None else threshold
        test = _mean_shift_test if name == MEAN_SHIFT else _mix_shift_test
        score, drifted = test(ref, cur, None, thr, _result=(effect, p))
        return Drift(name, float(thr), float(score), bool(drifted), _fin(p), _fin(effect), mc, mr)
    registry, ColumnType = _evidently()
    ctype = ColumnType.Numerical if kind == "num" else ColumnType.Categorical
    st = registry.get_stattest(ref, cur, ctype, name)
    res = st(ref, cur, ctype, threshold)
    return Drift(st.name, float(res.actual_threshold), float(res.drift_score), bool(res.drifted), _fin(p),
                 _fin(effect), mc, mr)


def _fin(x):
    return None if x is None or not math.isfinite(float(x)) else float(x)


COPY_OF = "_copy_of"  # column `stratify` adds: the position in `ref` of the row each output row copies


def stratify(ref: pd.DataFrame, cur_strata: pd.Series, column: str, seed_key: str) -> tuple[pd.DataFrame, float]:
    """Reweight `ref` to the current mix of `column` by replicating rows per stratum; returns (frame, share dropped).

    Like with like: comparing model B to a baseline model A on different topic mixes would report the topic change
    as a value change. Each reference stratum is resized to (current share of the stratum) x (reference size):
    whole copies of the stratum first, then a seeded sample without replacement for the remainder, which adds far
    less noise than a bootstrap. Current strata absent from the reference cannot be compared; their share of the
    current rows is returned so the caller can drop and report them. Column COPY_OF says which row of `ref` each
    row copies: a test must count copies as one reply's evidence (`mean_shift_weighted`); a test that cannot takes
    `stratify_sample`'s reference instead.
    """
    ref = ref.assign(**{COPY_OF: np.arange(len(ref))})
    keep, missing = _current_shares(ref, cur_strata, column)
    if keep.empty:
        return ref.iloc[0:0], missing
    n_ref = len(ref)
    seed = int(hashlib.sha256(seed_key.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    parts = []
    for stratum, share in keep.sort_index().items():
        rows = ref[ref[column] == stratum]
        target = int(round(share * n_ref))
        whole, rest = divmod(target, len(rows))
        parts.extend([rows] * whole)
        if rest:
            parts.append(rows.iloc[np.sort(rng.choice(len(rows), rest, replace=False))])
    return (pd.concat(parts, ignore_index=True) if parts else ref.iloc[0:0]), missing


def _current_shares(ref: pd.DataFrame, cur_strata: pd.Series, column: str) -> tuple[pd.Series, float]:
    """The current mix over the strata the reference has (shares summing to 1; empty when it has none), and the
    share of current rows in strata it lacks."""
    cur_share = cur_strata.value_counts(normalize=True)
    present = set(ref[column].unique())
    missing = float(cur_share[[s for s in cur_share.index if s not in present]].sum())
    keep = cur_share[[s for s in cur_share.index if s in present]]
    return (keep / keep.sum() if not keep.empty else keep), missing


# How a baseline_model reference was reweighted (details.reference.reweighting).
COPIES = "copies_weighted"  # `stratify`: whole copies, each reply weighted once by the default test (Kish n)
SAMPLED = "sampled_without_replacement"  # `stratify_sample`: for tests that take no weights (Evidently's)


def takes_weights(method: str | None) -> bool:
    """Whether the configured method can count a reweighted reference's copies as one reply (only `mean_shift`)."""
    return resolve_method(method, "num") == MEAN_SHIFT


def stratify_sample(ref: pd.DataFrame, cur_strata: pd.Series, column: str,
                    seed_key: str) -> tuple[pd.DataFrame, float]:
    """`ref` reweighted to the current mix of `column` by sampling each stratum without replacement: no row twice;
    returns (frame, share of current rows in strata the reference lacks).

    For tests that cannot take weights (every Evidently method): `stratify`'s copies of a small stratum looked like
    independent replies to them (ten crime replies copied 50 times read as 500). Here the reference is as large as
    its scarcest stratum allows, N = min over strata of (stratum rows / current share), and each stratum is a
    seeded sample of round(share x N) of its rows: over-represented topics are downsampled, never copied. The price
    is a smaller reference (N can fall below values.min_n, and the row then says so) instead of a false precision.
    """
    keep, missing = _current_shares(ref, cur_strata, column)
    if keep.empty:
        return ref.iloc[0:0], missing
    keep = keep.sort_index()
    sizes = ref[column].value_counts()
    total = min(sizes[s] / share for s, share in keep.items())
    rng = np.random.default_rng(int(hashlib.sha256(seed_key.encode()).hexdigest()[:8], 16))
    parts = []
    for stratum, share in keep.items():
        rows = ref[ref[column] == stratum]
        take = min(len(rows), int(round(share * total)))
        if take:
            parts.append(rows.iloc[np.sort(rng.choice(len(rows), take, replace=False))])
    return (pd.concat(parts) if parts else ref.iloc[0:0]), missing


def report_html(current: pd.DataFrame, reference: pd.DataFrame, numeric: list[str], categorical: list[str],
                method: str | None = None, threshold: float | None = None) -> str:
    """A full Evidently Report (ValueDrift per column, with tests) as standalone HTML."""
    _evidently()
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    num = [c for c in numeric if current[c].notna().sum() > 1 and reference[c].notna().sum() > 1]
    metrics = [ValueDrift(column=c, method=resolve_method(method, "num"), threshold=threshold) for c in num]
    metrics += [ValueDrift(column=c, method=resolve_method(None, "cat")) for c in categorical]
    dd = DataDefinition(numerical_columns=num, categorical_columns=categorical)
    cols = num + categorical
    snap = Report(metrics, include_tests=True).run(
        Dataset.from_pandas(current[cols].reset_index(drop=True), data_definition=dd),
        Dataset.from_pandas(reference[cols].reset_index(drop=True), data_definition=dd))
    return snap.get_html_str(as_iframe=False)


def report_verdicts(current: pd.DataFrame, reference: pd.DataFrame, numeric: list[str], method: str | None = None,
                    threshold: float | None = None) -> dict[str, tuple[float, bool]]:
    """Column -> (score, drift) as a full Evidently Report with tests computes them (for cross-checks)."""
    _evidently()
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    dd = DataDefinition(numerical_columns=numeric)
    snap = Report([ValueDrift(column=c, method=resolve_method(method, "num"), threshold=threshold)
                   for c in numeric], include_tests=True).run(
        Dataset.from_pandas(current[numeric].reset_index(drop=True), data_definition=dd),
        Dataset.from_pandas(reference[numeric].reset_index(drop=True), data_definition=dd))
    d = snap.dict()
    scores = {m["config"]["column"]: float(m["value"]) for m in d["metrics"]}
    out = {}
    for t in d["tests"]:
        col = t["metric_config"]["params"]["column"] if "params" in t.get("metric_config", {}) else None
        col = col or next(c for c in numeric if t["name"].endswith(f"column {c}"))
        out[col] = (scores[col], t["status"] == "FAIL")
    return out
