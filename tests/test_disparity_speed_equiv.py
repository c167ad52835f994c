"""The disparity job's post-processing on integer group numbers (with_all_models, bound_inputs, bound_groups,
compare_values in monitor/disparity/compute.py, and compare_rates' Wilson intervals in one array call) gives the
rows of its pandas-groupby, one-call-per-row form, kept here as `old_*`:
on random per-model sums with several models, intersections, pooled long tails, a configured reference group
(present in some partitions, missing in others), probe traffic, ties across bins and one-group partitions, every
result equals the old one (counts, tests and verdicts exactly, floats within 1e-9)."""
import json

import numpy as np
import pandas as pd
import pytest

from monitor.disparity.compute import (COUNT_COLUMNS, METRIC_SPECS, OTHER, PAIR_SEP, PARTIAL_SUMS, VALUE_COLUMNS,
                                       VALUE_KEYS, VALUE_METRIC, _ALL, Settings, _f, _json_per_key, _model, apply_bh,
                                       bound_inputs, chosen_groups, compare_rates, compare_values, with_all_models)
from monitor.disparity.stats import (four_fifths, mann_whitney, mann_whitney_ranks, mean_sd, ratio, t_interval,
                                     two_by_two, wilson)
from monitor.stats import t_quantiles

# ---- Before: the pandas-groupby implementation of commit 7c9db74, verbatim but for the old_ names ----


def old_with_all_models(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The per-model rows plus their sum over models (model None) per window, source, attribute and group."""
    if df.empty:
        return df
    cols, extra = PARTIAL_SUMS[kind], VALUE_KEYS[kind]
    keys = ["window_start", "source_kind", "attribute", "group", "segment", "pair", *extra]
    # Counts and sums are additive, so "all models" is the sum over model versions.
    all_models = df.groupby(keys, as_index=False, dropna=False)[list(cols)].sum()
    all_models["model"] = None
    return pd.concat([df, all_models], ignore_index=True)



def old_bound_inputs(counts: pd.DataFrame, values: pd.DataFrame, s: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unbounded rate counts and value sums (all models included) bounded to the same groups, chosen on the larger
    n of the two."""
    cols = ["window_start", "source_kind", "attribute", "group", "pair", "n"]
    # All-models rows only: the choice is the same for every model.
    frames = [f[f["model"].isna()][cols] for f in (counts, values) if len(f)]
    keep: set[tuple] = set()
    if frames:
        sizes = pd.concat(frames, ignore_index=True).groupby(cols[:-1], as_index=False)["n"].max()
        sizes["model"] = None
        keep = chosen_groups(sizes, s)
    return old_bound_groups(counts, s, keep), old_bound_groups(values, s, keep)



def old_bound_groups(df: pd.DataFrame, s: Settings, keep: set[tuple] | None = None) -> pd.DataFrame:
    """Keep the chosen groups (`chosen_groups`, unless given) and pool the rest into one 'other' group per window,
    model, source and attribute (and value dimension, for value sums)."""
    if df.empty:
        return df.reset_index(drop=True)
    keep = chosen_groups(df, s) if keep is None else keep
    # Membership tested once per distinct (window, source, attribute, group), not once per row and bin.
    codes, uniques = pd.MultiIndex.from_frame(df[["window_start", "source_kind", "attribute", "group"]]).factorize()
    member = np.array([key in keep for key in uniques] + [False])  # code -1 (a missing key) is never kept
    mask = member[codes]
    kept = df[mask]
    rest = df[~mask]
    if rest.empty:
        return kept.reset_index(drop=True)
    values = "dimension" in df.columns
    cols = list(VALUE_COLUMNS if values else COUNT_COLUMNS)
    keys = ["window_start", "model", "source_kind", "attribute", "group", "segment", "pair"]
    rest = rest.assign(group=OTHER, segment=_json_per_key(rest["attribute"], lambda a: json.dumps({a: OTHER})))
    if values:
        keys += ["dimension", "bin"]
        pooled = rest.groupby(keys, as_index=False, dropna=False).agg(
            **{c: (c, "sum") for c in cols}, family=("family", "first"))
    else:
        pooled = rest.groupby(keys, as_index=False, dropna=False)[cols].sum()
    return pd.concat([kept, pooled], ignore_index=True)



def old_compare_values(df: pd.DataFrame, s: Settings) -> list[dict]:
    """One result per (window, model, source, attribute, group, value dimension): mean with t interval, reference
    mean, gap, ratio and the Mann-Whitney test against the reference (no BH)."""
    out: list[dict] = []
    if df.empty:
        return out
    part = ["window_start", "mkey", "source_kind", "attribute", "dimension"]
    d = df.assign(mkey=df["model"].astype(object).where(df["model"].notna(), _ALL))
    sums = d.groupby(part + ["group"], sort=True).agg(
        n=("n", "sum"), total=("total", "sum"), total_sq=("total_sq", "sum"), nonzero=("nonzero", "sum"),
        segment=("segment", "first"), family=("family", "first"))
    # Rest-of-traffic reference: group and rest together are the whole partition, so one ranking per partition
    # serves every group: mid-rank of each bin, each group's rank sum, the partition's tie term and largest tie.
    t = d.groupby(part + ["bin"], sort=True)["n"].sum()
    mid = (t.groupby(level=part, sort=False).cumsum() - (t - 1) / 2).rename("mid")
    ranks = d.join(mid, on=part + ["bin"])
    rank_sum = (ranks["n"] * ranks["mid"]).groupby([ranks[c] for c in part + ["group"]]).sum()
    tie = (t ** 3 - t).groupby(level=part).sum()
    mode = t.groupby(level=part).max()
    part_tot = sums[["n", "total", "total_sq"]].groupby(level=part).sum()
    # Plain dicts from here on: a pandas .loc on a MultiIndex costs ~0.1 ms, and there is one per row.
    rank_sum = dict(zip(rank_sum.index, rank_sum.tolist()))
    tie = dict(zip(tie.index, tie.tolist()))
    mode = dict(zip(mode.index, mode.tolist()))
    part_tot = dict(zip(part_tot.index, zip(part_tot["n"].tolist(), part_tot["total"].tolist(),
                                            part_tot["total_sq"].tolist())))
    keys = list(sums.index)
    cells = list(zip(keys, sums["n"].tolist(), sums["total"].tolist(), sums["total_sq"].tolist(),
                     sums["nonzero"].tolist(), sums["segment"].tolist(), sums["family"].tolist()))
    by_key = {c[0]: c for c in cells} if s.reference_group else {}
    # First pass: each row's sample and reference sums, so the t quantiles of all sizes come from one scipy call.
    todo = []
    for key, n, tot, sq, nonzero, segment, family in cells:
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
            pn, ptot, psq = part_tot[pkey]
            n_ref, tot_ref, sq_ref = int(pn) - n, float(ptot) - tot, float(psq) - sq
        todo.append((key, n, tot, sq, nonzero, segment, family, ref_group, is_ref, label, n_ref, tot_ref, sq_ref))
    quantiles = t_quantiles([r[1] for r in todo] + [r[10] for r in todo], s.confidence)
    partitions = None  # bins of each partition, built on first need (only with a configured reference group)
    histograms: dict[tuple, pd.DataFrame] = {}  # group x bin counts of each partition, built on first need
    seg_json: dict[tuple, str] = {}
    for key, n, tot, sq, nonzero, segment, family, ref_group, is_ref, label, n_ref, tot_ref, sq_ref in todo:
        w, mkey, src, attr, dim, group = key
        pkey = key[:5]
        mean, sd = mean_sd(n, tot, sq)
        lo, hi = t_interval(mean, sd, n, s.confidence, quantiles.get(n), floor=0.0)  # cut at 0 since IDENTITY 4
        ref_mean, ref_sd = mean_sd(n_ref, tot_ref, sq_ref) if n_ref else (None, None)
        ref_lo, ref_hi = (t_interval(ref_mean, ref_sd, n_ref, s.confidence, quantiles.get(n_ref), floor=0.0) if n_ref
                          else (None, None))
        min_n_ok = n >= s.min_n and n_ref >= s.min_n
        test = None
        if min_n_ok and not is_ref:
            if ref_group:  # the pooled sample is this group and the reference group: rank them together
                if partitions is None:
                    partitions = {k: g for k, g in d.groupby(part, sort=False)}
                h = histograms.get(pkey)
                if h is None:
                    h = histograms[pkey] = partitions[pkey].pivot_table(
                        index="group", columns="bin", values="n", aggfunc="sum", fill_value=0).sort_index(axis=1)
                a, b = h.loc[group].to_numpy(), h.loc[ref_group].to_numpy()
                both = (a + b) > 0  # the bins of these two groups only, as if the two were pivoted alone
                test = mann_whitney(a[both], b[both])
            else:
                test = mann_whitney_ranks(n, float(rank_sum[key]), n_ref, float(tie[pkey]), float(mode[pkey]))
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


def old_compare_rates(df: pd.DataFrame, s: Settings) -> list[dict]:
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
                lo, hi = wilson(k, n, s.confidence)
                ref_rate = k_ref / n_ref if n_ref else None
                ref_lo, ref_hi = wilson(k_ref, n_ref, s.confidence) if n_ref else (None, None)
                ff_ratio, ff_flag = four_fifths(rate, ref_rate) if not is_ref else (None, False)
                min_n_ok = n >= s.min_n and n_ref >= s.min_n
                test = two_by_two(k, n, k_ref, n_ref) if (min_n_ok and not is_ref) else None
                out.append({
                    "metric": m.name if src == "production" else f"probe_{m.name}",
                    "window_start": w, "model": model, "source": src, "attribute": attr, "group": row.group,
                    "segment": row.segment, "n": n, "k": k, "rate": rate, "ci_low": _f(lo), "ci_high": _f(hi),
                    "reference_label": label, "reference_n": n_ref, "reference_k": k_ref,
                    "reference_rate": ref_rate, "reference_ci": [_f(ref_lo), _f(ref_hi)] if n_ref else None,
                    "gap": None if ref_rate is None or is_ref else rate - ref_rate,
                    "ratio": None if is_ref else ratio(rate, ref_rate),
                    "good_outcome": m.good_outcome, "four_fifths_ratio": ff_ratio, "four_fifths_flag": ff_flag,
                    "is_reference": is_ref, "min_n_ok": min_n_ok,
                    "test": test.test if test else None, "p_value": test.p_value if test else None,
                    "q_value": None, "significant": False, "adverse": False,
                    "hypothesis": (m.name, attr, row.group, k, n, k_ref, n_ref),
                })
    return out


# ---- The comparison ----

W0 = pd.Timestamp("2026-11-01")
MODELS = ["m@1", "m@2", "m@3"]


def raw_frames(seed: int, windows: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-model rate counts and value histograms of the shape the group SQL returns (segment and pair added)."""
    rng = np.random.default_rng(seed)
    attrs = {"language": ["en", "hi", "es", "fr", "de", "ar", "zh"], "age_band": ["18-24", "25-54", "55+"],
             "region": ["north", "south", "east", "west", "x1", "x2", "x3", "x4"]}
    pair = ("language", "age_band")
    rates, values = [], []
    for w in range(windows):
        ws = W0 + pd.Timedelta(days=w)
        for model in MODELS[: 1 + (w + seed) % 3]:  # one model in some windows (model rows = all-models rows)
            for src in ("production", "probe"):
                if src == "probe" and rng.random() < 0.5:
                    continue
                groups = [(a, g, json.dumps({a: g}), False) for a, gs in attrs.items() for g in gs]
                groups += [(f"{pair[0]}{PAIR_SEP}{pair[1]}", f"{x}{PAIR_SEP}{y}", json.dumps({pair[0]: x, pair[1]: y}),
                            True) for x in attrs[pair[0]][:4] for y in attrs[pair[1]]]
                for attr, group, seg, is_pair in groups:
                    if rng.random() < 0.15:  # a group absent from this model, window and source
                        continue
                    if attr == "language" and group == "en" and rng.random() < 0.3:
                        continue  # the reference group missing from some partitions
                    size = int(rng.choice([1, 3, 20, 60, 200, 900]))
                    n_benign = int(rng.integers(0, size + 1))
                    n_harmful = size - n_benign
                    rates.append({"window_start": ws, "model": model, "source_kind": src, "attribute": attr,
                                  "group": group, "segment": seg, "pair": is_pair, "n": size,
                                  "refusals": int(rng.integers(0, size + 1)), "n_benign": n_benign,
                                  "over_refusals": int(rng.integers(0, n_benign + 1)), "n_harmful": n_harmful,
                                  "under_refusals": int(rng.integers(0, n_harmful + 1))})
                    for dim, family in (("moralizing", "normative"), ("hedging", "style"), ("care", "moral"),
                                        ("rare", "moral")):
                        if dim == "rare":  # mostly zeros: few tests, a partition of one group, big ties
                            scores = np.where(rng.random(size) < 0.03, rng.exponential(2, size), 0.0)
                        else:
                            scores = np.where(rng.random(size) < 0.5, rng.exponential(1 + (group == "hi"), size), 0)
                        scores = np.round(scores * rng.choice([1, 100], size) / 100, 4) if dim == "care" else scores
                        b = np.round(scores, 2)
                        for bin_ in np.unique(b):
                            x = scores[b == bin_]
                            values.append({"window_start": ws, "model": model, "source_kind": src,
                                           "attribute": attr, "group": group, "segment": seg, "pair": is_pair,
                                           "dimension": dim, "family": family, "bin": float(bin_), "n": len(x),
                                           "total": float(x.sum()), "total_sq": float((x * x).sum()),
                                           "nonzero": int((x > 0).sum())})
    r, v = pd.DataFrame(rates), pd.DataFrame(values)
    return r, v.sample(frac=1, random_state=seed).reset_index(drop=True)  # any row order


def _close(x, y) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        if x is None or y is None:
            return x is None and y is None
        return x == pytest.approx(y, rel=1e-9, abs=1e-12)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_close(a, b) for a, b in zip(x, y))
    return x == y


EXACT = ("n", "k", "reference_n", "p_value", "q_value", "significant", "adverse", "direction", "test", "min_n_ok",
         "is_reference", "bh_family_size", "segment", "family", "reference_label", "statistic")


def _results(counts, values, s, rates, compare):
    res = rates(counts, s) + compare(values, s)
    apply_bh(res, s.fdr)
    return {(r["metric"], pd.Timestamp(r["window_start"]), r["model"], r["source"], r["segment"]): r for r in res}


def _frame_rows(df: pd.DataFrame) -> dict:
    keys = [c for c in df.columns if c not in (*VALUE_COLUMNS, *COUNT_COLUMNS)]
    out = {}
    for r in df.to_dict("records"):
        k = tuple(None if (isinstance(r[c], float) and np.isnan(r[c])) else r[c] for c in keys)
        assert k not in out
        out[k] = r
    return out


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("settings", [
    Settings(min_n=50, max_groups=4, fdr=0.5),
    Settings(min_n=10, max_groups=20, fdr=0.05, reference_group={"language": "en", "region": "zz"}),
    Settings(min_n=10, max_groups=3, fdr=0.5, reference_group={"language&age_band": "en&18-24"}),
], ids=["rest-of-traffic", "reference-group", "pair-reference"])
def test_integer_group_numbers_give_the_rows_of_the_pandas_groupbys(seed, settings):
    r, v = raw_frames(seed)
    new_r, new_v = with_all_models(r, "rates"), with_all_models(v, "values")
    old_r, old_v = old_with_all_models(r, "rates"), old_with_all_models(v, "values")
    for new, old in ((new_r, old_r), (new_v, old_v)):
        got, want = _frame_rows(new), _frame_rows(old)
        assert got.keys() == want.keys()
        assert all(_close(float(got[k][c]), float(want[k][c])) for k in want for c in PARTIAL_SUMS_OF(want[k]))
    counts, values = bound_inputs(new_r, new_v, settings)
    old_counts, old_values = old_bound_inputs(old_r, old_v, settings)
    assert (values["group"] == OTHER).any() and (counts["group"] == OTHER).any()  # the long tail was pooled
    for new, old in ((counts, old_counts), (values, old_values)):
        got, want = _frame_rows(new), _frame_rows(old)
        assert got.keys() == want.keys()
        for k in want:
            for c in PARTIAL_SUMS_OF(want[k]):
                assert _close(float(got[k][c]), float(want[k][c])), (k, c)
    got = _results(counts, values, settings, compare_rates, compare_values)
    want = _results(old_counts, old_values, settings, old_compare_rates, old_compare_values)
    assert got.keys() == want.keys()
    tested = [k for k, x in want.items() if x["p_value"] is not None and "dimension" in x]
    assert len(tested) > 20 and sum(x["p_value"] is not None and "dimension" not in x for x in want.values()) > 20
    if settings.reference_group:
        assert any(want[k]["reference_label"] != "rest of traffic" for k in tested)
    for k, w in want.items():
        g = got[k]
        assert g.keys() == w.keys(), k
        for c in w:
            if c == "hypothesis":
                continue
            ok = g[c] == w[c] if c in EXACT else _close(g[c], w[c])
            assert ok, (k, c, g[c], w[c])


def PARTIAL_SUMS_OF(row: dict) -> tuple:
    return VALUE_COLUMNS if "dimension" in row else COUNT_COLUMNS
