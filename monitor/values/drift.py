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
  Fisher's exact test on the share of replies scoring above zero (an intersection-union test: both must agree).

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
from scipy import stats
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
    if r.min() >= 0 and c.min() >= 0:
        # Intersection-union with Fisher's exact test on the share of replies scoring above zero: both must
        # reject, so the level stays ALPHA. For rare dimensions (a handful of non-zero replies a day) the t-test's
        # normal approximation fails and a burst of 8 where 3 are expected looked like d = 0.23, p < 1e-4.
        kr, kc = int((r > 0).sum()), int((c > 0).sum())
        p = max(p, float(stats.fisher_exact([[kc, nc - kc], [kr, nr - kr]])[1]))
    return float(diff / pooled), p


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
    keys, rc, cc = category_shares(ref, cur)
    if not keys or rc.sum() == 0 or cc.sum() == 0:
        return math.nan, math.nan
    js = float(distance.jensenshannon(rc / rc.sum(), cc / cc.sum()))
    if len(keys) < 2:
        return js, 1.0
    p = float(stats.chi2_contingency(np.vstack([rc, cc]))[1])
    return js, p


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


def stratify(ref: pd.DataFrame, cur_strata: pd.Series, column: str, seed_key: str) -> tuple[pd.DataFrame, float]:
    """Reweight `ref` to the current mix of `column` by replicating rows per stratum; returns (frame, share dropped).

    Like with like: comparing model B to a baseline model A on different topic mixes would report the topic change
    as a value change. Each reference stratum is resized to (current share of the stratum) x (reference size):
    whole copies of the stratum first, then a seeded sample without replacement for the remainder, which adds far
    less noise than a bootstrap. Current strata absent from the reference cannot be compared; their share of the
    current rows is returned so the caller can drop and report them.
    """
    cur_share = cur_strata.value_counts(normalize=True)
    present = set(ref[column].unique())
    missing = float(cur_share[[s for s in cur_share.index if s not in present]].sum())
    keep = cur_share[[s for s in cur_share.index if s in present]]
    if keep.empty:
        return ref.iloc[0:0], missing
    keep = keep / keep.sum()
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
