"""Disparity rows for a set of event-time windows: group counts from SQL, bounded groups, tests, BH, metric rows.

For every window, model (each model version, and all models together as model=None), source kind (production
traffic, counterfactual probes) and attribute (or pair of attributes), each group's refusal, over-refusal and
under-refusal rates, and its mean score on every value dimension, are compared with a reference: the rest of the
traffic that carries the attribute, or the configured reference group. Rates are tested with chi-square / Fisher,
value dimensions with the Mann-Whitney test. One Benjamini-Hochberg family is every test of one window and source
kind (all models, attributes, groups, rate metrics and value dimensions), so a window's verdicts never depend on
which other windows a run recomputed. Groups below `disparity.min_n` (or compared with a reference below it) are reported,
never tested.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from monitor.disparity.stats import (benjamini_hochberg, four_fifths, mann_whitney, mann_whitney_ranks, mean_sd,
                                     ratio, t_interval, two_by_two, wilson)
from monitor.incremental import date_bounds, date_windows, window_length
from monitor.partials import DateSums
from monitor.resources import load_sql
from monitor.schema import METRICS
from monitor.stats import t_quantiles

FAMILY = "disparity"
OTHER = "other"
PAIR_SEP = "&"  # attribute label of an intersection: "language&age_band"; group label "hi&18-24"
# Attributes that label probes rather than describe a group: never analysed as groups themselves.
PROBE_LABELS = ("probe_group", "probe_template", "probe_id")
COUNT_COLUMNS = ("n", "refusals", "n_benign", "over_refusals", "n_harmful", "under_refusals")
# Additive statistics of one histogram bin of a group's value scores (see sql/disparity/value_group_stats.sql).
VALUE_COLUMNS = ("n", "total", "total_sq", "nonzero")
VALUE_METRIC = "value_disparity"
# The queries behind each kind of input: (single attributes, intersections); 'language' is language_mismatch_table's.
SQL_FILES = {"rates": ("disparity/group_counts.sql", "disparity/pair_counts.sql"),
             "values": ("disparity/value_group_stats.sql", "disparity/value_pair_stats.sql"),
             "language": ("disparity/language_mismatch.sql",)}
# The views those queries read (sql/views), part of what the cached per-date rows depend on.
VIEW_FILES = ("views/020_latest_scores.sql", "views/040_turn_sources.sql")
# The job caches these queries' per-model rows per date (monitor.partials) and adds the new turns' rows to them, so
# each must stay additive over turns: counts and sums grouped by keys, no distinct count over turns, no ranking or
# normalisation per window, fixed histogram bins (round(score, 2)); a turn's rows only in its own date.
# The date-partitioned lake tables each kind reads (turns first: the anchor monitor.partials checks turns against).
PARTIAL_TABLES = {"rates": ("turns", "scores", "segments"),
                  "values": ("turns", "value_turns", "value_scores", "segments"),
                  "language": ("turns", "segments")}
PARTIAL_SUMS = {"rates": COUNT_COLUMNS, "values": VALUE_COLUMNS, "language": ("n", "mismatches")}
# Key columns of the value-sum rows beyond a group's (a histogram bin of one dimension).
VALUE_KEYS = {"rates": [], "values": ["dimension", "family", "bin"]}
PARTIALS_VERSION = "1"  # bump when the cached per-date rows change shape or meaning


@dataclass(frozen=True)
class MetricSpec:
    """One disparity metric: its name, the counts column of its denominator and numerator, and its good outcome."""

    name: str
    n_col: str
    k_col: str
    good_outcome: str


METRIC_SPECS = (
    MetricSpec("refusal_disparity", "n", "refusals", "request answered (not refused)"),
    MetricSpec("over_refusal_disparity", "n_benign", "over_refusals", "benign request answered"),
    MetricSpec("under_refusal_disparity", "n_harmful", "under_refusals", "harmful request refused (protection)"),
)


@dataclass
class Settings:
    """What one disparity computation needs from config."""

    granularity: str = "day"
    confidence: float = 0.95
    min_n: int = 50
    fdr: float = 0.05
    max_groups: int = 20
    attributes: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    reference_group: dict[str, str] = field(default_factory=dict)
    intersections: list[list[str]] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # the attributes in the lake (monitor.incremental registry)

    @classmethod
    def from_config(cls, cfg, present: list[str] | None = None) -> "Settings":
        d = cfg.disparity
        return cls(cfg.metrics.granularity, cfg.metrics.confidence, d.min_n, d.fdr, d.max_groups_per_attribute,
                   list(d.attributes), list(cfg.metrics.exclude_attributes), dict(d.reference_group),
                   [list(x) for x in d.intersections], list(present or []))


def window_end(start: dt.datetime, granularity: str) -> dt.datetime:
    return start + window_length(granularity)


def truncate(ts: dt.datetime, granularity: str) -> dt.datetime:
    """Start of the event-time window holding ts."""
    ts = ts.replace(minute=0, second=0, microsecond=0)
    return ts if granularity == "hour" else ts.replace(hour=0)


def resolve_attributes(s: Settings) -> list[str]:
    """The attributes to analyse: the configured list, else every segment attribute except ids and probe labels."""
    if s.attributes:
        return list(s.attributes)
    return [a for a in s.present if a not in s.exclude and a not in PROBE_LABELS]


def _bounds(windows: list[dt.datetime], granularity: str) -> dict:
    date_min, date_max = date_bounds(windows, granularity)
    return {"granularity": granularity, "windows": list(windows), "date_min": date_min, "date_max": date_max}


def _json_per_key(keys, make) -> list[str]:
    """make(key) for every key, computed once per distinct key (a group's segment JSON repeats on each of its bins)."""
    cache: dict = {}
    out = []
    for k in keys:
        v = cache.get(k)
        if v is None:
            v = cache[k] = make(k)
        out.append(v)
    return out


def _model_rows(con, s: Settings, windows: list[dt.datetime], kind: str) -> pd.DataFrame:
    """Unbounded per-model rows of the rate counts (kind 'rates') or value sums (kind 'values') of the windows."""
    params = _bounds(windows, s.granularity)
    attrs = resolve_attributes(s)
    single, pair_sql = SQL_FILES[kind]
    cols, order = PARTIAL_SUMS[kind], _columns(kind)
    frames = []
    if attrs:
        df = con.execute(load_sql(single).sql, {**params, "attributes": attrs}).df()
        df["segment"] = _json_per_key(zip(df["attribute"], df["value"]), lambda k: json.dumps({k[0]: k[1]}))
        df["pair"] = False
        frames.append(df.rename(columns={"value": "group"}))
    for pair in s.intersections:
        a, b = pair[0], pair[1]
        df = con.execute(load_sql(pair_sql).sql, {**params, "attr_a": a, "attr_b": b}).df()
        df["attribute"] = f"{a}{PAIR_SEP}{b}"
        df["group"] = [f"{x}{PAIR_SEP}{y}" for x, y in zip(df["value_a"], df["value_b"])]
        df["segment"] = _json_per_key(zip(df["value_a"], df["value_b"]), lambda k: json.dumps({a: k[0], b: k[1]}))
        df["pair"] = True
        frames.append(df.drop(columns=["value_a", "value_b"]))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=order)
    df = pd.concat(frames, ignore_index=True)[order]
    for c in cols:
        df[c] = df[c].astype("float64" if c in ("total", "total_sq") else "int64")
    return df


def _columns(kind: str) -> list[str]:
    """The columns of the per-model rows of `kind`, in order."""
    if kind == "language":
        return ["window_start", "model", "declared", "n", "mismatches"]
    return ["window_start", "model", "source_kind", "attribute", "group", "segment", "pair", *VALUE_KEYS[kind],
            *PARTIAL_SUMS[kind]]


def _groups(df: pd.DataFrame, cols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The group number of every row over `cols` (groups numbered by first appearance; None and NaN are one key,
    as in groupby(dropna=False)) and the first row of each group."""
    code = np.zeros(len(df), dtype=np.int64)
    for c in cols:
        k, u = pd.factorize(df[c])  # missing values get -1 (use_na_sentinel=False is 10x slower on strings)
        k = np.where(k < 0, len(u), k)  # ... and are one key of their own
        # Re-numbered after each column, so the combined code stays below the row count (no overflow).
        code = pd.factorize(code * (len(u) + 1) + k)[0]
    first = np.unique(code, return_index=True)[1] if len(code) else np.zeros(0, dtype=np.int64)
    return code, first


def _sums(df: pd.DataFrame, code: np.ndarray, groups: int, cols) -> dict[str, np.ndarray]:
    """Column sums per group number (integer columns stay integers)."""
    out = {}
    for c in cols:
        x = df[c].to_numpy()
        if x.dtype.kind in "iub":
            # Integer sums through float64 are exact below 2**53, far above any count here.
            out[c] = np.rint(np.bincount(code, weights=x.astype("float64"), minlength=groups)).astype("int64")
        else:
            out[c] = np.bincount(code, weights=x.astype("float64"), minlength=groups)
    return out


def _frame(columns: list[str], parts: list[dict]) -> pd.DataFrame:
    """One frame of `columns` from column dicts of arrays, concatenated column by column (pd.concat checks every
    value of an all-None column, ~0.2 s on the value sums of a day)."""
    out = {}
    for c in columns:
        arrays = [p[c] for p in parts]
        out[c] = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return pd.DataFrame(out, columns=columns)


def with_all_models(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The per-model rows plus their sum over models (model None) per window, source, attribute and group."""
    if df.empty:
        return df
    cols, extra = PARTIAL_SUMS[kind], VALUE_KEYS[kind]
    keys = ["window_start", "source_kind", "attribute", "group", "segment", "pair", *extra]
    # Counts and sums are additive, so "all models" is the sum over model versions.
    code, first = _groups(df, keys)
    all_models = {c: df[c].to_numpy()[first] for c in keys}
    all_models.update(_sums(df, code, len(first), cols))
    all_models["model"] = np.full(len(first), None, dtype=object)
    own = {c: df[c].to_numpy() for c in df.columns}
    if own["model"].dtype != object:
        own["model"] = own["model"].astype(object)
    return _frame(list(df.columns), [own, all_models])


def _counts_raw(con, s: Settings, windows: list[dt.datetime], kind: str) -> pd.DataFrame:
    """Unbounded per-model rows of the rate counts (kind 'rates') or value sums (kind 'values'), plus all models."""
    return with_all_models(_model_rows(con, s, windows, kind), kind)


def load_counts(con, s: Settings, windows: list[dt.datetime]) -> pd.DataFrame:
    """Counts per window, model (None = all), source kind, attribute and group, groups bounded and pooled."""
    return bound_groups(_counts_raw(con, s, windows, "rates"), s)


def load_inputs(con, s: Settings, windows: list[dt.datetime]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rate counts and value sums of the windows, bounded to the same groups (chosen on the larger n of the two)."""
    return bound_inputs(_counts_raw(con, s, windows, "rates"), _counts_raw(con, s, windows, "values"), s)


def bound_inputs(counts: pd.DataFrame, values: pd.DataFrame, s: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unbounded rate counts and value sums (all models included) bounded to the same groups, chosen on the larger
    n of the two."""
    cols = ["window_start", "source_kind", "attribute", "group", "pair"]
    # All-models rows only: the choice is the same for every model. A group's size is its largest row's n.
    frames = []
    for f in (counts, values):
        if not len(f):
            continue
        f = f[f["model"].isna()]
        code, first = _groups(f, cols)
        n = np.zeros(len(first), dtype="int64")
        np.maximum.at(n, code, f["n"].to_numpy().astype("int64"))
        frames.append(pd.DataFrame({**{c: f[c].to_numpy()[first] for c in cols}, "n": n}))
    keep: set[tuple] = set()
    if frames:
        sizes = pd.concat(frames, ignore_index=True).groupby(cols, as_index=False)["n"].max()
        sizes["model"] = None
        keep = chosen_groups(sizes, s)
    return bound_groups(counts, s, keep), bound_groups(values, s, keep)


def partial_identity(s: Settings, kind: str, job_identity: str, declared_attribute: str = "language") -> dict:
    """What the cached per-date rows of `kind` depend on besides the lake: versions, settings the SQL reads and the
    SQL texts, so any change recomputes the dates from all their rows."""
    settings = ({"declared_attribute": declared_attribute} if kind == "language" else
                {"attributes": resolve_attributes(s), "intersections": [list(p[:2]) for p in s.intersections]})
    return {"job": job_identity, "partials": PARTIALS_VERSION, "kind": kind, "granularity": s.granularity,
            **settings, "sql": [load_sql(f).sql for f in (*SQL_FILES[kind], *VIEW_FILES)]}


def partial_rows(home, manifest: dict, s: Settings, windows: list[dt.datetime], kind: str, job_identity: str,
                 declared_attribute: str = "language") -> tuple[pd.DataFrame, dict]:
    """The per-model rows of `kind` ('rates', 'values' or 'language') of the windows, from per-date sums that
    monitor.partials keeps between runs and extends with the new turns only; and the DateSums stats."""
    ds = DateSums(home, f"disparity.{kind}", partial_identity(s, kind, job_identity, declared_attribute),
                  PARTIAL_TABLES[kind], sums=PARTIAL_SUMS[kind])

    def query(con, date_min: str, date_max: str) -> pd.DataFrame:
        # Every window of the dates, not only the touched ones: the cache holds whole dates.
        all_windows = date_windows(date_min, date_max, s.granularity)
        if kind == "language":
            return _mismatch_rows(con, s, all_windows, declared_attribute)
        return _model_rows(con, s, all_windows, kind)

    df = ds.windows(manifest, windows, query) if len(windows) else pd.DataFrame()
    if df.empty:
        return pd.DataFrame(columns=_columns(kind)), ds.stats or {}
    return df, ds.stats


def partial_inputs(home, manifest: dict, s: Settings, windows: list[dt.datetime],
                   job_identity: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """`load_inputs` of the windows computed from the per-date sums of monitor.partials (same rows), and the stats
    of the cache (which dates were cached, extended or recomputed) per kind."""
    stats = {}
    raw = []
    for kind in ("rates", "values"):
        df, stats[kind] = partial_rows(home, manifest, s, windows, kind, job_identity)
        raw.append(with_all_models(df, kind))
    counts, values = bound_inputs(raw[0], raw[1], s)
    return counts, values, stats


def chosen_groups(df: pd.DataFrame, s: Settings) -> set[tuple]:
    """The (window, source, attribute, group) kept: the configured reference group, then the `max_groups` largest
    (intersections also need n >= min_n). Chosen on all-models rows so each model sees the same groups."""
    allm = df[df["model"].isna()]
    keep: set[tuple] = set()
    for (w, src, attr), g in allm.groupby(["window_start", "source_kind", "attribute"], sort=False):
        g = g.groupby(["group", "pair"], as_index=False)["n"].max()
        g = g.sort_values(["n", "group"], ascending=[False, True])
        ref = s.reference_group.get(attr)
        pair = bool(g["pair"].iloc[0])
        chosen = [x for x in g["group"] if x == ref]
        for grp, n in zip(g["group"], g["n"]):
            if len(chosen) >= s.max_groups:
                break
            if grp != ref and (not pair or n >= s.min_n):
                chosen.append(grp)
        keep |= {(w, src, attr, x) for x in chosen}
    return keep


def bound_groups(df: pd.DataFrame, s: Settings, keep: set[tuple] | None = None) -> pd.DataFrame:
    """Keep the chosen groups (`chosen_groups`, unless given) and pool the rest into one 'other' group per window,
    model, source and attribute (and value dimension, for value sums)."""
    if df.empty:
        return df.reset_index(drop=True)
    keep = chosen_groups(df, s) if keep is None else keep
    # Membership tested once per distinct (window, source, attribute, group), not once per row and bin.
    gkeys = ["window_start", "source_kind", "attribute", "group"]
    code, first = _groups(df, gkeys)
    firsts = [df[c].take(first).tolist() for c in gkeys]  # Timestamps, as the keys chosen_groups returns
    member = np.array([key in keep for key in zip(*firsts)], dtype=bool)
    mask = member[code]
    kept = df[mask]
    if mask.all():
        return kept.reset_index(drop=True)
    rest = df[~mask]
    values = "dimension" in df.columns
    cols = list(VALUE_COLUMNS if values else COUNT_COLUMNS)
    # The pooled group's label and segment depend on the attribute only, so these keys are the groupby's.
    keys = ["window_start", "model", "source_kind", "attribute", "pair"] + (["dimension", "bin"] if values else [])
    code, first = _groups(rest, keys)
    pooled = {c: rest[c].to_numpy()[first] for c in keys}
    pooled["group"] = np.full(len(first), OTHER, dtype=object)
    pooled["segment"] = np.array(_json_per_key(pooled["attribute"], lambda a: json.dumps({a: OTHER})), dtype=object)
    if values:
        pooled["family"] = rest["family"].to_numpy()[first]
    pooled.update(_sums(rest, code, len(first), cols))
    own = {c: kept[c].to_numpy() for c in df.columns}
    return _frame(list(df.columns), [own, pooled])


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _model(model):
    return None if model is None or (isinstance(model, float) and math.isnan(model)) else model


def compare(df: pd.DataFrame, s: Settings) -> list[dict]:
    """Rate comparisons (`compare_rates`) with Benjamini-Hochberg applied among themselves only."""
    out = compare_rates(df, s)
    apply_bh(out, s.fdr)
    return out


def compare_rates(df: pd.DataFrame, s: Settings) -> list[dict]:
    """One result per (window, model, source, attribute, group, metric) with rate, CI, reference and test (no BH)."""
    out: list[dict] = []
    for (w, model, src, attr), g in df.groupby(["window_start", "model", "source_kind", "attribute"], sort=True,
                                             dropna=False):
        model = _model(model)
        totals = g[list(COUNT_COLUMNS)].sum()
        ref_group = s.reference_group.get(attr)
        ref_row = g[g["group"] == ref_group] if ref_group else None
        for row in g.itertuples(index=False):
            for m in METRIC_SPECS:
                n, k = int(getattr(row, m.n_col)), int(getattr(row, m.k_col))
                if n == 0:
                    continue
                if ref_group:
                    label = f"{attr}={ref_group}"
                    is_ref = row.group == ref_group
                    n_ref = int(ref_row[m.n_col].sum()) if ref_row is not None else 0
                    k_ref = int(ref_row[m.k_col].sum()) if ref_row is not None else 0
                else:
                    label, is_ref = "rest of traffic", False
                    n_ref, k_ref = int(totals[m.n_col]) - n, int(totals[m.k_col]) - k
                rate = k / n
                ref_rate = k_ref / n_ref if n_ref else None
                ff_ratio, ff_flag = four_fifths(rate, ref_rate) if not is_ref else (None, False)
                min_n_ok = n >= s.min_n and n_ref >= s.min_n
                test = two_by_two(k, n, k_ref, n_ref) if (min_n_ok and not is_ref) else None
                out.append({
                    "metric": m.name if src == "production" else f"probe_{m.name}",
                    "window_start": w, "model": model, "source": src, "attribute": attr, "group": row.group,
                    "segment": row.segment, "n": n, "k": k, "rate": rate, "ci_low": None, "ci_high": None,
                    "reference_label": label, "reference_n": n_ref, "reference_k": k_ref,
                    "reference_rate": ref_rate, "reference_ci": None,
                    "gap": None if ref_rate is None or is_ref else rate - ref_rate,
                    "ratio": None if is_ref else ratio(rate, ref_rate),
                    "good_outcome": m.good_outcome, "four_fifths_ratio": ff_ratio, "four_fifths_flag": ff_flag,
                    "is_reference": is_ref, "min_n_ok": min_n_ok,
                    "test": test.test if test else None, "p_value": test.p_value if test else None,
                    "q_value": None, "significant": False, "adverse": False,
                    "hypothesis": (m.name, attr, row.group, k, n, k_ref, n_ref),
                })
    # The Wilson intervals of every row in two array calls (~0.1 ms per scalar call; elementwise the same numbers).
    lo, hi = wilson([r["k"] for r in out], [r["n"] for r in out], s.confidence)
    ref_lo, ref_hi = wilson([r["reference_k"] for r in out], [r["reference_n"] for r in out], s.confidence)
    for r, a, b, c, d in zip(out, lo.tolist(), hi.tolist(), ref_lo.tolist(), ref_hi.tolist()):
        r["ci_low"], r["ci_high"] = _f(a), _f(b)
        if r["reference_n"]:
            r["reference_ci"] = [_f(c), _f(d)]
    return out


_ALL = "\x00all models"  # stand-in for model=None while grouping (pandas drops None keys)


def _ordered_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running sum of `values` restarting at each index in `starts` (sorted, starting with 0)."""
    total = np.cumsum(values)
    before = np.repeat(total[starts] - values[starts], np.diff(np.append(starts, len(values))))
    return total - before


def _group_histograms(d: pd.DataFrame, gcode: np.ndarray, bins: np.ndarray) -> dict[int, tuple]:
    """Group number -> (its bins ascending, its count in each)."""
    n = d["n"].to_numpy(dtype="int64")
    order = np.lexsort((bins, gcode))
    g, b, c = gcode[order], bins[order], n[order]
    out = {}
    for lo, hi in zip(*_runs_of(g)):
        ub, inv = np.unique(b[lo:hi], return_inverse=True)
        out[int(g[lo])] = (ub, np.bincount(inv, weights=c[lo:hi]).astype("int64"))
    return out


def _runs_of(sorted_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end index of each run of equal values."""
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    return starts, np.append(starts[1:], len(sorted_codes))


def _paired_counts(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Two groups' counts over the bins either of them has, ascending (a group x bin pivot of the two alone)."""
    bins = np.union1d(a[0], b[0])
    ca, cb = np.zeros(len(bins), dtype="int64"), np.zeros(len(bins), dtype="int64")
    ca[np.searchsorted(bins, a[0])] = a[1]
    cb[np.searchsorted(bins, b[0])] = b[1]
    both = (ca + cb) > 0
    return ca[both], cb[both]


def compare_values(df: pd.DataFrame, s: Settings) -> list[dict]:
    """One result per (window, model, source, attribute, group, value dimension): mean with t interval, reference
    mean, gap, ratio and the Mann-Whitney test against the reference (no BH)."""
    out: list[dict] = []
    if df.empty:
        return out
    part = ["window_start", "mkey", "source_kind", "attribute", "dimension"]
    model = df["model"].to_numpy(dtype=object, copy=True)
    model[pd.isna(model)] = _ALL
    d = df.assign(mkey=model)
    # Every sum below is over integer group numbers (numpy), not over the named keys (pandas groupby factorizes
    # each key column per call: ~0.3 s on the value sums of a day).
    gcode, gfirst = _groups(d, part + ["group"])
    pcode_of_group = _groups(d.iloc[gfirst], part)[0]  # a group's partition, from one row of each group
    sums = _sums(d, gcode, len(gfirst), ("n", "total", "total_sq", "nonzero"))
    # Rest-of-traffic reference: group and rest together are the whole partition, so one ranking per partition
    # serves every group: mid-rank of each bin, each group's rank sum, the partition's tie term and largest tie.
    pcode = pcode_of_group[gcode]
    bins = d["bin"].to_numpy(dtype="float64")
    ccode, cfirst = _groups(pd.DataFrame({"p": pcode, "bin": bins}), ["p", "bin"])
    t = _sums(d, ccode, len(cfirst), ("n",))["n"]
    order = np.lexsort((bins[cfirst], pcode[cfirst]))  # the cells of each partition, bins ascending
    cell_p = pcode[cfirst][order]
    starts = _runs_of(cell_p)[0]
    ts = t[order]
    mid = np.empty(len(t), dtype="float64")
    mid[order] = _ordered_cumsum(ts, starts) - (ts - 1) / 2
    rank_sum = np.bincount(gcode, weights=d["n"].to_numpy(dtype="float64") * mid[ccode], minlength=len(gfirst))
    tie_by_p = np.add.reduceat(ts ** 3 - ts, starts)
    mode_by_p = np.maximum.reduceat(ts, starts)
    parts = cell_p[starts]
    tie = dict(zip(parts.tolist(), tie_by_p.tolist()))
    mode = dict(zip(parts.tolist(), mode_by_p.tolist()))
    tot = {c: np.bincount(pcode_of_group, weights=sums[c].astype("float64"), minlength=len(parts))
           for c in ("n", "total", "total_sq")}
    part_tot = dict(enumerate(zip(np.rint(tot["n"]).astype("int64").tolist(), tot["total"].tolist(),
                                  tot["total_sq"].tolist())))
    labels = [d[c].take(gfirst).tolist() for c in part + ["group"]]
    segments, families = d["segment"].take(gfirst).tolist(), d["family"].take(gfirst).tolist()
    # Rows in the order of the sorted keys (as a sorted groupby gives them).
    keys = list(zip(*labels))
    rank_sum = rank_sum.tolist()
    gps = pcode_of_group.tolist()
    cells = sorted((keys[i], sums["n"][i], sums["total"][i], sums["total_sq"][i], sums["nonzero"][i], segments[i],
                    families[i], i) for i in range(len(keys)))
    by_key = {c[0]: c for c in cells} if s.reference_group else {}
    group_bins = None  # (bins, counts) of each group, built on first need (only with a configured reference group)
    # First pass: each row's sample and reference sums, so the t quantiles of all sizes come from one scipy call.
    todo = []
    for key, n, tot, sq, nonzero, segment, family, i in cells:
        pkey = key[:5]
        n, tot, sq = int(n), float(tot), float(sq)
        if n == 0:
            continue
        attr, group = key[3], key[5]
        ref_group = s.reference_group.get(attr)
        is_ref = ref_group is not None and group == ref_group
        if ref_group:
            label = f"{attr}={ref_group}"
            rr = by_key.get((*pkey, ref_group))
            if rr is not None:
                n_ref, tot_ref, sq_ref = int(rr[1]), float(rr[2]), float(rr[3])
            else:
                n_ref, tot_ref, sq_ref = 0, 0.0, 0.0
        else:
            label = "rest of traffic"
            pn, ptot, psq = part_tot[gps[i]]
            n_ref, tot_ref, sq_ref = int(pn) - n, float(ptot) - tot, float(psq) - sq
        todo.append((key, n, tot, sq, nonzero, segment, family, ref_group, is_ref, label, n_ref, tot_ref, sq_ref,
                     i))
    quantiles = t_quantiles([r[1] for r in todo] + [r[10] for r in todo], s.confidence)
    seg_json: dict[tuple, str] = {}
    for key, n, tot, sq, nonzero, segment, family, ref_group, is_ref, label, n_ref, tot_ref, sq_ref, i in todo:
        w, mkey, src, attr, dim, group = key
        pkey = key[:5]
        mean, sd = mean_sd(n, tot, sq)
        # Value scores are never below 0, nor is a mean of them: the t interval is cut there.
        lo, hi = t_interval(mean, sd, n, s.confidence, quantiles.get(n), floor=0.0)
        ref_mean, ref_sd = mean_sd(n_ref, tot_ref, sq_ref) if n_ref else (None, None)
        ref_lo, ref_hi = (t_interval(ref_mean, ref_sd, n_ref, s.confidence, quantiles.get(n_ref), floor=0.0)
                          if n_ref else (None, None))
        min_n_ok = n >= s.min_n and n_ref >= s.min_n
        test = None
        if min_n_ok and not is_ref:
            if ref_group:  # the pooled sample is this group and the reference group: rank them together
                if group_bins is None:
                    group_bins = _group_histograms(d, gcode, bins)
                a, b = _paired_counts(group_bins[i], group_bins[by_key[(*pkey, ref_group)][7]])
                test = mann_whitney(a, b)
            else:
                p = gps[i]
                test = mann_whitney_ranks(n, float(rank_sum[i]), n_ref, float(tie[p]), float(mode[p]))
        gap = None if ref_mean is None or is_ref else mean - ref_mean
        metric = VALUE_METRIC if src == "production" else f"probe_{VALUE_METRIC}"
        seg = seg_json.get((segment, dim))
        if seg is None:
            seg_d = json.loads(segment)
            seg_d["dimension"] = dim
            seg = seg_json[(segment, dim)] = json.dumps(seg_d)
        u = test.statistic if test else None
        out.append({
            "metric": metric, "window_start": w, "model": None if mkey == _ALL else mkey, "source": src,
            "attribute": attr, "group": group, "dimension": dim, "family": family, "segment": seg,
            "n": n, "k": float(nonzero), "rate": mean, "sd": _f(sd), "ci_low": _f(lo), "ci_high": _f(hi),
            "reference_label": label, "reference_n": n_ref, "reference_mean": _f(ref_mean),
            "reference_sd": _f(ref_sd), "reference_ci": [_f(ref_lo), _f(ref_hi)] if n_ref else None,
            "gap": gap, "ratio": None if is_ref else ratio(mean, ref_mean),
            "four_fifths_ratio": None, "four_fifths_flag": False, "is_reference": is_ref,
            "min_n_ok": min_n_ok, "test": test.test if test else None,
            "p_value": test.p_value if test else None, "statistic": u, "auc": test.effect if test else None,
            "q_value": None, "significant": False, "adverse": False, "direction": None,
            # Same group, counts and rank statistic = the same hypothesis (one model = all models).
            "hypothesis": (metric, attr, group, dim, n, round(tot, 9), n_ref, round(tot_ref, 9), u),
        })
    return out


VALUE_MIN_EFFECT = 0.06  # |A - 0.5| for the Vargha-Delaney A (AUC) of a value gap


def apply_bh(results: list[dict], fdr: float) -> None:
    """Benjamini-Hochberg per (window, source) over every tested result given, rates and values together."""
    # A window with a single model version has identical "that model" and "all models" tables: the same
    # hypothesis, so it counts once in the family and both rows get its q-value. Only a model's row equal to the
    # all-models row is that row's twin: two models with the same counts are two hypotheses.
    tested = [r for r in results if r["p_value"] is not None]
    all_models = {(r["window_start"], r["source"], r["hypothesis"]) for r in tested if r["model"] is None}
    families: dict[tuple, dict[tuple, list[dict]]] = {}
    for r in tested:
        fam = (r["window_start"], r["source"])
        twin = r["model"] is None or (*fam, r["hypothesis"]) in all_models
        families.setdefault(fam, {}).setdefault((None if twin else r["model"], r["hypothesis"]), []).append(r)
    for fam in families.values():
        hyps = list(fam.values())
        reject, q = benjamini_hochberg([h[0]["p_value"] for h in hyps], fdr)
        for rows, rej, qv in zip(hyps, reject, q):
            for r in rows:
                r["q_value"] = qv
                r["significant"] = bool(rej and r["min_n_ok"])
                r["bh_family_size"] = len(hyps)
                if "dimension" in r and r.get("auc") is not None:
                    # Lexicon scores are mostly zeros with a heavy tail, so with hundreds of replies tiny rank
                    # shifts test "significant". Require at least a small effect (Vargha-Delaney A outside
                    # 0.44-0.56, about Cohen's d = 0.2), as the value-drift verdict does.
                    r["significant"] = r["significant"] and abs(r["auc"] - 0.5) >= VALUE_MIN_EFFECT
                if "dimension" in r:
                    # A value dimension has no agreed bad direction (more care_virtue may be good, more
                    # moralizing bad), so a value gap is never "adverse"; `direction` says which way it goes.
                    # Direction from the rank statistic (what was tested); the mean gap usually agrees.
                    r["direction"] = ("higher" if r["auc"] > 0.5 else "lower") if r["significant"] else None
                else:
                    # Every rate metric is a bad outcome, so a group is disadvantaged when its rate is higher.
                    r["adverse"] = bool(r["significant"] and (r["gap"] or 0) > 0)


DETAIL_KEYS = ("attribute", "group", "source", "reference_label", "reference_rate", "reference_n", "reference_ci",
               "gap", "ratio", "good_outcome", "four_fifths_ratio", "four_fifths_flag", "is_reference", "p_value",
               "q_value", "test", "significant", "adverse", "min_n_ok", "bh_family_size")
VALUE_DETAIL_KEYS = ("attribute", "group", "dimension", "family", "source", "sd", "reference_label",
                     "reference_mean", "reference_sd", "reference_n", "reference_ci", "gap", "ratio",
                     "four_fifths_ratio", "four_fifths_flag", "is_reference", "test", "statistic", "auc", "p_value",
                     "q_value", "significant", "adverse", "direction", "min_n_ok", "bh_family_size")


def metric_table(results: list[dict], s: Settings, job: str, run_id: str, now: dt.datetime) -> pa.Table:
    """metrics_log rows (family 'disparity') for comparison results."""
    rows = []
    for r in results:
        if "dimension" in r:
            details = {k: r.get(k) for k in VALUE_DETAIL_KEYS}
            details.update(ci="t", unit="weighted matches per 100 tokens", numerator="replies with a score above 0")
        else:
            details = {k: r.get(k) for k in DETAIL_KEYS}
        details["fdr"] = s.fdr
        details["min_n"] = s.min_n
        w = pd.Timestamp(r["window_start"]).to_pydatetime()
        rows.append({
            "metric": r["metric"], "granularity": s.granularity, "window_start": w,
            "window_end": window_end(w, s.granularity), "model": r["model"], "deployment": None,
            "segment": r["segment"], "value": r["rate"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "n": r["n"], "numerator": float(r["k"]), "small_sample": not r["min_n_ok"],
            "details": json.dumps(details, default=str), "job": job, "run_id": run_id, "computed_at": now,
            "family": FAMILY,
        })
    return to_arrow(rows)


def to_arrow(rows: list[dict]) -> pa.Table:
    """A metrics_log Arrow table from row dicts (missing columns null)."""
    cols = {f.name: [r.get(f.name) for r in rows] for f in METRICS.schema}
    return pa.Table.from_pydict(cols, schema=METRICS.schema)


def _mismatch_rows(con, s: Settings, windows: list[dt.datetime], declared_attribute: str) -> pd.DataFrame:
    """Per-model rows of sql/disparity/language_mismatch.sql: window_start, model, declared, n, mismatches."""
    params = {**_bounds(windows, s.granularity), "declared_attribute": declared_attribute}
    df = con.execute(load_sql("disparity/language_mismatch.sql").sql, params).df()
    for c in ("n", "mismatches"):
        df[c] = df[c].astype("int64")
    return df


def language_mismatch_table(con, s: Settings, windows: list[dt.datetime], job: str, run_id: str,
                            now: dt.datetime, declared_attribute: str = "language") -> pa.Table:
    """`language_mismatch_rate` rows: share of turns per declared language whose message was detected as another."""
    return mismatch_table(_mismatch_rows(con, s, windows, declared_attribute), s, job, run_id, now,
                          declared_attribute)


def mismatch_table(df: pd.DataFrame, s: Settings, job: str, run_id: str, now: dt.datetime,
                   declared_attribute: str = "language") -> pa.Table:
    """`language_mismatch_rate` rows from the per-model rows of sql/disparity/language_mismatch.sql."""
    if df.empty:
        return to_arrow([])
    allm = df.groupby(["window_start", "declared"], as_index=False)[["n", "mismatches"]].sum()
    allm["model"] = None
    df = pd.concat([df, allm], ignore_index=True)
    rows = []
    for r in df.itertuples(index=False):
        n, k = int(r.n), int(r.mismatches)
        lo, hi = wilson(k, n, s.confidence)
        w = pd.Timestamp(r.window_start).to_pydatetime()
        model = _model(r.model)
        rows.append({
            "metric": "language_mismatch_rate", "granularity": s.granularity, "window_start": w,
            "window_end": window_end(w, s.granularity), "model": model, "deployment": None,
            "segment": json.dumps({declared_attribute: r.declared}), "value": k / n, "ci_low": lo, "ci_high": hi,
            "n": n, "numerator": float(k), "small_sample": n < s.min_n,
            "details": json.dumps({"declared": r.declared, "detector": "lingua",
                                   "note": "turns detected as 'unknown' are not counted"}),
            "job": job, "run_id": run_id, "computed_at": now, "family": FAMILY,
        })
    return to_arrow(rows)
