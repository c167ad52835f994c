"""The statistics of a disparity comparison: 2x2 significance tests, Benjamini-Hochberg, four-fifths ratio.

A comparison is a group's k successes in n against the reference's k_ref in n_ref. The test is Pearson's
chi-square on the 2x2 table (no continuity correction: Fisher covers the small cells) unless any expected count is
below 5, in which case it is Fisher's exact test (two-sided); a table with an empty row or column has no test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2_contingency, fisher_exact
from statsmodels.stats.multitest import multipletests

from monitor.stats import wilson  # noqa: F401  (re-exported: the one Wilson interval of the package)

FOUR_FIFTHS = 0.8


@dataclass(frozen=True)
class TestResult:
    """Outcome of one group-vs-reference test: which test ran and its p-value (None when untestable)."""

    test: str | None  # chi2 | fisher | None
    p_value: float | None
    statistic: float | None = None


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
    stat, p, _, _ = chi2_contingency(table, correction=False)
    return TestResult("chi2", float(p), float(stat))


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
