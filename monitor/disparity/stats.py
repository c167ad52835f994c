"""The statistics of a disparity comparison: 2x2 significance tests, Welch's t-test, Benjamini-Hochberg,
four-fifths ratio.

A rate comparison is a group's k successes in n against the reference's k_ref in n_ref. The test is Pearson's
chi-square on the 2x2 table (no continuity correction: Fisher covers the small cells) unless any expected count is
below 5, in which case it is Fisher's exact test (two-sided); a table with an empty row or column has no test.

A value comparison is a group's scores on one value dimension against the reference's. The mean and its t interval
come from sufficient statistics (n, sum, sum of squares); the test is the two-sided Mann-Whitney U test (normal
approximation with tie correction and continuity correction, as scipy's `method="asymptotic"`), computed from
histograms of the two samples over shared bins. Not Welch's t-test: lexicon scores are mostly zeros with a heavy
right tail (one match in a short reply scores 20 per 100 tokens), and on such data the t statistic's tails are
far from Student's. Measured on 30 stable simulated days (8 groups of 150 real replies a day, BH at 5%): Welch
gave false findings in 24 of 30 windows, a pooled-variance t-test in 7; a rank test's null distribution does not
depend on the shape of the scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import chdtrc, ndtr
from scipy.stats import fisher_exact
from scipy.stats import t as student_t
from statsmodels.stats.multitest import multipletests

from monitor.stats import wilson  # noqa: F401  (re-exported: the one Wilson interval of the package)
from monitor.values.store import no_spread

FOUR_FIFTHS = 0.8


@dataclass(frozen=True)
class TestResult:
    """Outcome of one group-vs-reference test: which test ran and its p-value (None when untestable)."""

    test: str | None  # chi2 | fisher | mann_whitney | None
    p_value: float | None
    statistic: float | None = None
    effect: float | None = None  # Mann-Whitney: U / (n * n_ref), P(group score > reference score) + ties / 2


def two_by_two(k: int, n: int, k_ref: int, n_ref: int) -> TestResult:
    """Chi-square test of k/n vs k_ref/n_ref, or Fisher's exact test when any expected count is below 5."""
    if n <= 0 or n_ref <= 0:
        return TestResult(None, None)
    table = np.array([[k, n - k], [k_ref, n_ref - k_ref]], dtype=float)
    col = table.sum(axis=0)
    if (col == 0).any():  # everyone (or no one) had the outcome: the rates are equal, nothing to test
        return TestResult(None, None)
    expected = np.outer(table.sum(axis=1), col) / table.sum()
    if (expected < 5).any():
        res = fisher_exact(table.astype(int), alternative="two-sided")
        return TestResult("fisher", float(res.pvalue), float(res.statistic))
    # Pearson's statistic and its chi-square(1) tail, the arithmetic of chi2_contingency(table, correction=False)
    # without its ~0.3 ms of argument checking per call (a window has hundreds of tests).
    stat = float(((table - expected) ** 2 / expected).sum())
    return TestResult("chi2", float(chdtrc(1, stat)), stat)


def mean_sd(n: int, total: float, total_sq: float) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation from n, sum and sum of squares (sd None when n < 2)."""
    if n <= 0:
        return None, None
    mean = total / n
    if n < 2:
        return mean, None
    # Clipped at 0: with all scores equal, rounding can leave a tiny negative sum of squared deviations.
    var = max(total_sq - n * mean * mean, 0.0) / (n - 1)
    return mean, math.sqrt(var)


def t_interval(mean: float | None, sd: float | None, n: int, confidence: float = 0.95,
               quantile: float | None = None, floor: float | None = None) -> tuple[float | None, float | None]:
    """Student t interval of a mean (low, high), from `quantile` when precomputed (monitor.stats.t_quantiles), cut at
    `floor` (the least possible mean); None without a standard deviation (n < 2) or without spread (`no_spread`)."""
    if mean is None or sd is None or n < 2 or no_spread(mean, sd):
        return None, None
    q = float(student_t.ppf(0.5 + confidence / 2, n - 1)) if quantile is None else quantile
    half = q * sd / math.sqrt(n)
    return (mean - half if floor is None else max(mean - half, floor)), mean + half


MIN_EXPECTED_OFF_MODE = 5  # expected off-mode scores per sample below which a rank test is not run


def mann_whitney(counts, counts_ref, min_expected: float = MIN_EXPECTED_OFF_MODE) -> TestResult:
    """Two-sided Mann-Whitney U test of two samples given as counts over the same sorted bins (ties = one bin)."""
    a = np.asarray(counts, dtype=float)
    b = np.asarray(counts_ref, dtype=float)
    n1, n2 = a.sum(), b.sum()
    if n1 <= 0 or n2 <= 0:
        return TestResult(None, None)
    t = a + b
    avg_rank = np.cumsum(t) - (t - 1) / 2  # mid-rank of every value in a bin
    return mann_whitney_ranks(int(n1), float((a * avg_rank).sum()), int(n2), float((t ** 3 - t).sum()),
                              float(t.max()), min_expected)


def mann_whitney_ranks(n1: int, rank_sum: float, n2: int, tie_term: float, mode_count: float,
                       min_expected: float = MIN_EXPECTED_OFF_MODE) -> TestResult:
    """Mann-Whitney from the first sample's mid-rank sum in the pooled sample, the pooled tie term sum(t^3 - t)
    and the size of the pooled sample's largest tie (no test when either sample expects fewer than
    `min_expected` scores outside it: mostly-zero dimensions, where the normal approximation fails)."""
    big_n = n1 + n2
    if n1 <= 0 or n2 <= 0 or big_n < 2:
        return TestResult(None, None)
    if min(n1, n2) * (big_n - mode_count) / big_n < min_expected:
        return TestResult(None, None)
    var = n1 * n2 / 12 * ((big_n + 1) - tie_term / (big_n * (big_n - 1)))
    if var <= 0:  # every score in one bin: no order to test
        return TestResult(None, None)
    u1 = rank_sum - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(var)
    # scipy's norm.sf(z) is ndtr(-z) behind ~0.2 ms of argument checks per call.
    p = min(1.0, float(2 * ndtr(-z)))
    return TestResult("mann_whitney", p, u1, u1 / (n1 * n2))


def benjamini_hochberg(p_values: list[float], fdr: float) -> tuple[list[bool], list[float]]:
    """Benjamini-Hochberg over one family of p-values: (rejected at `fdr`, q-values), in input order."""
    if not p_values:
        return [], []
    reject, q, _, _ = multipletests(np.asarray(p_values, dtype=float), alpha=fdr, method="fdr_bh")
    return [bool(r) for r in reject], [float(x) for x in q]


def ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is 0 or either is undefined."""
    if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return None
    return a / b


def four_fifths(bad_rate: float, bad_rate_ref: float) -> tuple[float | None, bool]:
    """Ratio of good-outcome rates (1 - bad rate) group/reference and whether it is below four fifths."""
    if bad_rate is None or bad_rate_ref is None:
        return None, False
    r = ratio(1 - bad_rate, 1 - bad_rate_ref)
    return r, bool(r is not None and r < FOUR_FIFTHS)
