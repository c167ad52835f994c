"""Job `value_drift`: per window, compare value scores and the user mix against a reference, with Evidently.

Reference (config `values.reference`):

- ``previous_days``: the same group's replies in the `values.reference_days` days before the window;
- ``baseline_window``: the same group's replies in [`baseline_start`, `baseline_end`); windows overlapping the
  baseline are not compared;
- ``baseline_model``: the replies of `baseline_model` in the `reference_days` days up to the window's end, compared
  with each other model's replies in the window. Like with like: the baseline's replies are reweighted to the
  current model's topic mix, so a model that gets more crime questions is not reported as a model that talks more
  about law: by whole copies for the default test, which weighs each reply once (monitor/values/drift.py
  `stratify`), by sampling without replacement for Evidently methods, which take no weights (`stratify_sample`).

Groups: all traffic, each model, each segment value (all models) for the first two; each model for the third.
Every group with replies in the window gets its rows; one with fewer than `values.min_n` replies on either side is
flagged `small_sample` and `details.min_n_ok = false`: shown, never a verdict, never alerted on (not left out: a
segment too small to judge is itself worth seeing). Bounded: the values job already writes a value_mean row per
segment value and dimension.

Rows (family `values`, dimension in the segment key as in value_mean):

- ``value_drift``: one per dimension and group, on scored replies. value = the method's statistic (default
  |standardised mean difference|, ci_low/ci_high its 95% interval), details = {dimension, family, statistic,
  statistic_name, method, threshold, drift_detected, p_value, effect_size, effect_size_ci, direction,
  mean_current, mean_reference, n_current, n_reference,
  reference: {kind, start, end, model, n, and for a reweighted reference stratified_by, dropped_share,
  reweighting, baseline_replies, and with copies replies, copies, effective_n}, min_n_ok}; n_reference of a
  reference with copies is its effective n.
- ``topic_drift`` and ``prompt_mix_drift``: Jensen-Shannon distance of the user-message topic mix and of the
  prompt-harm categories (latest `scores`), all replies: did the users change rather than the model? ci_low/ci_high:
  a seeded, bias-corrected bootstrap interval of the distance between the two traffic mixes (`D.js_interval`).

Incremental: windows holding turns processed by the values job since the watermark are recomputed, plus the
windows whose reference they fall in. A config or scorer change recomputes everything.

Two paths, same rows (tests/test_value_drift_paths.py): with the default methods and a reference made of whole
windows, the rows come from per-window sums computed in SQL (`load_sums` + `compute_from_sums`, docs/values.md "How
the job computes it"); otherwise from one row per reply (`load_frame` + `compute`).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

import numpy as np
import pandas as pd

from monitor.db import connect, scope_views, scoped_connect
from monitor.errors import ConfigError
from monitor.incremental import Delta, range_dates, touched_windows, window_length
from monitor.jobs import Job, JobContext
from monitor.jobs.values import attributes, configured_scorer, retired_rows, segment_json, write_metrics
from monitor.partials import DateSums
from monitor.resources import load_sql
from monitor.values import drift as D
from monitor.values.store import finite, wide

log = logging.getLogger("monitor.jobs.value_drift")

STATE_KEY = "value_drift.state"
WATERMARK_KEY = "value_drift.watermark"
INPUTS = ("value_turns", "segments")  # a window is recomputed when any of these gets rows for it
LOGIC_VERSION = 8  # bump when the computation changes, to recompute every window once
METRIC_NAMES = ("value_drift", "topic_drift", "prompt_mix_drift")
MIX_COLUMNS = (("topic_drift", "topic"), ("prompt_mix_drift", "prompt_category"))
# True: always load one row per reply (the general path), e.g. for tests comparing the two paths.
FORCE_ROWS = False


def _ts(s: str | None, key: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(str(s)).replace(tzinfo=None)
    except ValueError as e:
        raise ConfigError(f"values.{key} = {s!r} is not an ISO date or timestamp", "e.g. '2026-11-01'") from e


class Reference:
    """The configured reference choice and the time range / model it reads for a given window."""

    def __init__(self, cfg, granularity: str):
        self.kind = cfg.reference
        self.days = dt.timedelta(days=cfg.reference_days)
        self.wl = window_length(granularity)
        self.model = cfg.baseline_model
        if self.kind == "baseline_window":
            if not cfg.baseline_start or not cfg.baseline_end:
                raise ConfigError("values.reference = 'baseline_window' needs values.baseline_start and baseline_end",
                                  "set both, e.g. baseline_start = '2026-11-01', baseline_end = '2026-11-08'")
            self.start, self.end = _ts(cfg.baseline_start, "baseline_start"), _ts(cfg.baseline_end, "baseline_end")
            if self.end <= self.start:
                raise ConfigError("values.baseline_end must be after values.baseline_start")
        if self.kind == "baseline_model" and not self.model:
            raise ConfigError("values.reference = 'baseline_model' needs values.baseline_model",
                              "name the model version to compare against")

    def range(self, w: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """[start, end) of the reference of window `w`, or None when the window is not compared."""
        if self.kind == "previous_days":
            return w - self.days, w
        if self.kind == "baseline_window":
            return None if w < self.end and w + self.wl > self.start else (self.start, self.end)
        return w + self.wl - self.days, w + self.wl

    def span(self, touched: list) -> tuple[dt.datetime, dt.datetime] | None:
        """[start, end) holding every window `to_recompute` can return for `touched` (None: any window)."""
        if self.kind == "baseline_window" and any(t < self.end and t + self.wl > self.start for t in touched):
            return None
        # A window's reference ends at most `days` after its own start (previous_days: at the window start).
        return min(touched), max(touched) + self.days + self.wl

    def to_recompute(self, touched: list, all_windows: list) -> list:
        """Touched windows plus every window whose reference contains a touched window."""
        if self.kind == "baseline_window":
            if any(t < self.end and t + self.wl > self.start for t in touched):
                return list(all_windows)
            return sorted(set(touched) & set(all_windows))
        out = set(touched)
        for w in all_windows:
            r = self.range(w)
            if r and any(r[0] <= t < r[1] for t in touched):
                out.add(w)
        return sorted(out & set(all_windows))


def load_frame(con, granularity: str, start, end, version: str, dims: list[str], attrs: list[str]):
    """(per-turn frame with one column per dimension, segments frame) for turns in [start, end)."""
    bounds = dict(zip(("date_min", "date_max"), range_dates(start, end)))
    p = {"granularity": granularity, "start": start, "end": end, "scorer_version": version, **bounds}
    turns = con.execute(load_sql("values/drift_turns.sql").sql, p).df()
    long = con.execute(load_sql("values/drift_scores.sql").sql,
                       {"start": start, "end": end, "scorer_version": version, **bounds}).df()
    w = wide(long, dims, ["turn_id"])
    frame = turns.merge(w, on="turn_id", how="left")
    for d in dims:
        if d not in frame.columns:
            frame[d] = float("nan")
    segs = con.execute(load_sql("values/drift_segments.sql").sql,
                       {"start": start, "end": end, "attributes": attrs, **bounds}).df() if attrs else \
        pd.DataFrame(columns=["turn_id", "attribute", "value"])
    frame["window_start"] = [t.to_pydatetime() for t in pd.to_datetime(frame["window_start"])]
    return frame, segs


# An effect this close to 0 has no direction: the per-window sums and the per-reply path (and two runs summing the
# cached partial sums in another order) agree on the effect to ~1e-15, not on the sign of a zero.
NO_DIRECTION_BELOW = 1e-9


def _direction(effect) -> str | None:
    if effect is None or abs(effect) < NO_DIRECTION_BELOW:
        return None
    return "up" if effect > 0 else "down"


def compare_group(cur: pd.DataFrame, ref: pd.DataFrame, dims: list[str], families: dict, key: dict, ref_info: dict,
                  method, threshold, min_n: int) -> list[dict]:
    """value_drift rows (one per dimension) and mix drift rows of one group, flagged small_sample below `min_n`."""
    rows = []
    cur_s, ref_s = cur[cur["scored"]], ref[ref["scored"]]
    # A reweighted reference (baseline_model) holds copies of replies: the default test counts each reply once,
    # with its number of copies as its weight, so n_reference is the effective n (D.mean_shift_weighted).
    weighted = D.COPY_OF in ref_s.columns and D.takes_weights(method)
    for dim in dims:
        c, r = cur_s[dim].dropna(), ref_s[dim].dropna()
        n_ref, info = len(r), ref_info
        if weighted:
            by_reply = ref_s.loc[r.index].groupby(D.COPY_OF)[dim]
            copies = by_reply.size()
            effect, p, n_eff = D.mean_shift_weighted(by_reply.first(), copies, c)
            n_ref = round(n_eff)
            info = {**ref_info, "replies": len(copies), "copies": len(r), "effective_n": round(n_eff, 1)}
        ok = len(c) >= min_n and n_ref >= min_n
        if len(c) < 2 or n_ref < 2:
            res = None
        elif weighted:
            res = D.mean_shift_drift(effect, p, float(c.mean()), float(r.mean()), threshold)
        else:
            res = D.column_drift(r, c, "num", method, threshold)
        rows.append(_row("value_drift", key, dim, families.get(dim), res, len(c), n_ref, info, ok, min_n))
    for metric, col in MIX_COLUMNS:
        c, r = cur[col].dropna(), ref[col].dropna()
        ok = len(c) >= min_n and len(r) >= min_n
        res = D.column_drift(r, c, "cat") if len(c) and len(r) else None
        shares = D.category_shares(r, c) if res is not None else None
        rows.append(_mix_row(metric, col, key, res, shares, len(c), len(r), ref_info, ok, min_n))
    return rows


def _mix_row(metric, col, key, res, shares, n_cur, n_ref, ref_info, ok, min_n) -> dict:
    """A topic / prompt-mix drift row; `shares` = (categories, reference counts, current counts) when compared."""
    row = _row(metric, key, None, None, res, n_cur, n_ref, ref_info, ok, min_n)
    if res is not None:
        keys, rc, cc = shares
        moved = sorted(({"category": k, "current": round(a / cc.sum(), 4), "reference": round(b / rc.sum(), 4)}
                        for k, a, b in zip(keys, cc, rc)), key=lambda s: -abs(s["current"] - s["reference"]))
        det = json.loads(row["details"])
        det["largest_changes"] = moved[:5]
        det["column"] = col
        lo, hi, note = D.js_interval(rc, cc)
        if note:
            det["ci_note"] = note
        else:
            row["ci_low"], row["ci_high"] = lo, hi
            det["ci"] = D.JS_INTERVAL
            if row["value"] is not None and row["value"] > hi:
                det["ci_note"] = ("the distance of two samples this small is biased upward; the interval, of the "
                                  "distance between the traffic mixes, is corrected for it")
        row["details"] = json.dumps(det)
    return row


def _row(metric, key, dim, family, res, n_cur, n_ref, ref_info, ok, min_n) -> dict:
    details = {"reference": {**ref_info, "n": n_ref}, "n_current": n_cur, "n_reference": n_ref, "min_n_ok": ok,
               "min_n": min_n}
    if dim is not None:
        details.update(dimension=dim, family=family)
    value = ci_low = ci_high = None
    if res is not None:
        if res.method == D.MEAN_SHIFT:
            name, p = "abs_standardised_mean_difference", res.p_value
        elif res.method == D.MIX_SHIFT:
            name, p = "jensen_shannon_distance", res.p_value
        elif res.is_p_value:
            name, p = "p_value", res.score
        else:
            name, p = res.method, None
        value = finite(res.score)
        details.update(statistic=value, statistic_name=name, method=res.method, threshold=res.threshold,
                       drift_detected=bool(res.drift_detected and ok), evidently_drifted=bool(res.drift_detected),
                       p_value=finite(p),
                       # mean_shift / mix_shift: our tests, registered in Evidently but called directly (same result)
                       engine="monitor" if res.method in (D.MEAN_SHIFT, D.MIX_SHIFT) else "evidently")
        if dim is not None:
            details.update(effect_size=res.effect, direction=_direction(res.effect),
                           mean_current=finite(res.mean_current), mean_reference=finite(res.mean_reference))
            if res.method == D.MEAN_SHIFT:
                ci = D.effect_interval(res.effect, n_cur, n_ref)
                if ci is not None:
                    details.update(effect_size_ci=list(ci), ci="normal approximation of d, 95%")
                    lo, hi = abs(ci[0]), abs(ci[1])
                    # The interval of |d|: the signed interval folded at 0.
                    ci_low, ci_high = (0.0 if ci[0] <= 0 <= ci[1] else min(lo, hi)), max(lo, hi)
        else:
            details.update(chi2_p_value=res.p_value)
    else:
        details.update(drift_detected=False, note="too few replies to compare")
    attr, val = key.get("_seg", (None, None))
    return {"metric": metric, **key, "segment": segment_json(attr, val, dim),
            "value": value, "ci_low": ci_low, "ci_high": ci_high, "n": n_cur, "small_sample": not ok,
            "details": json.dumps(details, default=str)}


def compute(frame: pd.DataFrame, segs: pd.DataFrame, windows: list, ref: Reference, dims: list[str], families: dict,
            method, threshold, min_n: int, granularity: str) -> list[dict]:
    """Every drift row of the given windows from the loaded frame."""
    rows: list[dict] = []
    if frame.empty:
        return rows
    seg_index: dict[tuple, set] = {}
    for a, v, tid in zip(segs["attribute"], segs["value"], segs["turn_id"]):
        seg_index.setdefault((a, v), set()).add(tid)
    ws_col = frame["window_start"]
    for w in windows:
        rr = ref.range(w)
        if rr is None:
            continue
        cur_all = frame[ws_col == w]
        in_ref = frame[(ws_col >= rr[0]) & (ws_col < rr[1])]
        base = {"granularity": granularity, "window_start": w, "window_end": w + ref.wl}
        info = {"kind": ref.kind, "start": rr[0].isoformat(), "end": rr[1].isoformat()}
        if ref.kind == "baseline_model":
            ref_rows = in_ref[in_ref["model"] == ref.model]
            for model in sorted(set(cur_all["model"]) - {ref.model}):
                cur = cur_all[cur_all["model"] == model]
                # Copies for the default test (it counts a reply's copies once); a sample without replacement for
                # an Evidently method, which would take each copy for another reply.
                weights = D.takes_weights(method)
                strat, dropped = (D.stratify if weights else D.stratify_sample)(
                    ref_rows, cur["topic"], "topic", f"{w.isoformat()}|{model}")
                cur_cmp = cur[cur["topic"].isin(set(ref_rows["topic"]))]
                key = {**base, "model": model, "deployment": None}
                rinfo = {**info, "model": ref.model, "stratified_by": "topic", "dropped_share": round(dropped, 4),
                         "reweighting": D.COPIES if weights else D.SAMPLED, "baseline_replies": len(ref_rows)}
                vrows = compare_group(cur_cmp, strat, dims, families, dict(key), rinfo, method, threshold, min_n)
                # Mix drift compares the users of the two models as they are, before reweighting.
                mrows = compare_group(cur, ref_rows, [], families, dict(key), {**info, "model": ref.model},
                                      method, threshold, min_n)
                rows += [r for r in vrows if r["metric"] == "value_drift"] + mrows
            continue
        # Every group with replies in the window, segments too: below min_n a row is flagged small_sample (shown,
        # never alerted on), not left out.
        groups = [({**base, "model": None, "deployment": None}, None)]
        groups += [({**base, "model": m, "deployment": None}, ("model", m)) for m in sorted(set(cur_all["model"]))]
        groups += [({**base, "model": None, "deployment": None, "_seg": sv}, ("seg", sv)) for sv in sorted(seg_index)]
        for key, sel in groups:
            if sel is None:
                cur, rf = cur_all, in_ref
            elif sel[0] == "model":
                cur, rf = cur_all[cur_all["model"] == sel[1]], in_ref[in_ref["model"] == sel[1]]
            else:
                ids = seg_index[sel[1]]
                cur, rf = cur_all[cur_all["turn_id"].isin(ids)], in_ref[in_ref["turn_id"].isin(ids)]
                if cur.empty:
                    continue
            rows += compare_group(cur, rf, dims, families, key, dict(info), method, threshold, min_n)
    for r in rows:
        r.pop("_seg", None)
    return rows


def uses_sums(vcfg, ref: Reference, ranges: list) -> bool:
    """Whether the drift rows can come from per-window sums: default method, references made of whole windows."""
    if D.resolve_method(vcfg.drift_method, "num") != D.MEAN_SHIFT or ref.kind == "baseline_model" or vcfg.min_n < 1:
        return False
    # A reference cut inside a window (a baseline_window bound at 12:00 with daily windows) needs the replies.
    return all(b == _window_floor(b, ref.wl) for r in ranges for b in r)


def _window_floor(t: dt.datetime, wl: dt.timedelta) -> dt.datetime:
    """Start of the window (of length `wl`: an hour or a day) holding `t`."""
    return t.replace(minute=0, second=0, microsecond=0) if wl == dt.timedelta(hours=1) else \
        t.replace(hour=0, minute=0, second=0, microsecond=0)


# The per-window sums of each event date, kept in <home>/cache/partials/value_drift.sums and extended with the new
# turns of later runs (monitor/partials.py): today's date changes every run, and recomputing it from all its rows
# cost ~5.5 s a run at 45k turns a day. Both SQL files are additive over turns (counts and sums per group; every join
# is within a turn's date partition, which is its event date), so one cached frame holds the rows of both: the mix
# counts are the rows with a `kind`.
SUMS_NAME = "value_drift.sums"
SUMS_VERSION = 1  # bump when the meaning of the cached rows changes without a change of the two SQL files
SUMS_TABLES = ("turns", "value_turns", "value_scores", "segments", "scores")  # every table the two SQL files read
STAT_SUMS = ("n_complete", "n_partial", "n_nonzero", "total", "total_sq", "positive", "negative", "infinite")
MIX_SUMS = ("n", "n_scored")
GROUP_KEY = ("window_start", "model", "attribute", "value")


def load_sums(con, granularity: str, start, end, version: str, dims: list[str], attrs: list[str],
              home=None, manifest: dict | None = None):
    """(per window, group and dimension score sums; per window, group and category reply counts) of [start, end).

    With the `home` and its lake `manifest`, each event date's sums come from the cache of earlier runs, extended
    with the turns of the files committed since (`monitor.partials.DateSums`), else from one query through `con`.
    """
    if home is None or manifest is None:
        return _query_sums(con, granularity, start, end, version, dims, attrs)
    dates = [(start.date() + dt.timedelta(days=i)).isoformat()
             for i in range(((end - dt.timedelta(microseconds=1)).date() - start.date()).days + 1)]
    identity = {"v": SUMS_VERSION, "g": granularity, "s": version, "d": list(dims), "a": list(attrs),
                "sql": [load_sql(f).sql for f in ("values/drift_value_stats.sql", "values/drift_mix_counts.sql")]}
    ds = DateSums(home, SUMS_NAME, identity, SUMS_TABLES, STAT_SUMS + MIX_SUMS)

    def query(c, date_min: str, date_max: str) -> pd.DataFrame:
        # Every window of the dates (all hours of each), whatever part of them [start, end) needs.
        first = dt.datetime.fromisoformat(date_min)
        last = dt.datetime.fromisoformat(date_max) + dt.timedelta(days=1)
        sums, counts = _query_sums(c, granularity, first, last, version, dims, attrs)
        return pd.concat([sums, counts], ignore_index=True)

    frame = ds.rows(manifest, dates, query)
    log.debug("value drift sums: %s", ds.stats)
    ws = _stamps(frame) if len(frame) else np.zeros(0, dtype="datetime64[us]")
    frame = frame[(ws >= np.datetime64(start, "us")) & (ws < np.datetime64(end, "us"))]
    mix = frame["kind"].notna().to_numpy() if "kind" in frame.columns else np.zeros(len(frame), dtype=bool)
    sums = frame[~mix].reindex(columns=[*GROUP_KEY, "dimension", *STAT_SUMS]).reset_index(drop=True)
    counts = frame[mix].reindex(columns=[*GROUP_KEY, "kind", "category", *MIX_SUMS]).reset_index(drop=True)
    return sums, counts


def _stamps(df: pd.DataFrame) -> np.ndarray:
    """The window_start column as datetime64[us]."""
    return np.asarray(df["window_start"].to_numpy(), dtype="datetime64[us]")


def _query_sums(con, granularity: str, start, end, version: str, dims: list[str], attrs: list[str]):
    bounds = dict(zip(("date_min", "date_max"), range_dates(start, end)))
    p = {"granularity": granularity, "start": start, "end": end, "scorer_version": version, "attributes": attrs,
         **bounds}
    sums = con.execute(load_sql("values/drift_value_stats.sql").sql, {**p, "dimensions": dims}).df()
    counts = con.execute(load_sql("values/drift_mix_counts.sql").sql, p).df()
    return sums, counts


class _Sums:
    """Dense arrays (window x group x dimension) of the sums the default tests need; group 0 is all traffic."""

    def __init__(self, sums: pd.DataFrame, counts: pd.DataFrame, windows: list, dims: list[str]):
        gkeys = {}
        for df in (sums, counts):
            codes, uniq = pd.factorize(pd.MultiIndex.from_arrays([df["model"], df["attribute"], df["value"]]))
            df["_g"] = codes
            # A model row has a model; a segment row has none (NULL, NaN in the frame).
            gkeys[id(df)] = [("model", m) if isinstance(m, str) else ("seg", (a, v)) for m, a, v in uniq]
        both = set(gkeys[id(sums)]) | set(gkeys[id(counts)])
        self.models = models = sorted(k[1] for k in both if k[0] == "model")
        self.segs = sorted(k[1] for k in both if k[0] == "seg")
        self.groups = [None] + [("model", m) for m in models] + [("seg", sv) for sv in self.segs]
        gi = {g: i for i, g in enumerate(self.groups)}
        seen = set()
        for df in (sums, counts):
            df["_w"] = _stamps(df)
            seen |= set(np.unique(df["_w"].to_numpy()).astype("datetime64[us]").tolist())
        self.windows = sorted(seen | set(windows))
        wins = np.array(self.windows, dtype="datetime64[us]")
        W, G, Dn = len(self.windows), len(self.groups), len(dims)
        di = {d: i for i, d in enumerate(dims)}

        def codes(df):
            g = np.array([gi[k] for k in gkeys[id(df)]], dtype=np.int64)[df["_g"].to_numpy()] if len(df) else \
                np.zeros(0, dtype=np.int64)
            return np.searchsorted(wins, df["_w"].to_numpy()), g

        # Reply counts per group and category.
        cw, cg = codes(counts)
        self.cats = {}
        self.n_all = np.zeros((W, G))
        self.n_scored = np.zeros((W, G))
        n_rep, n_sc = counts["n"].to_numpy(float, na_value=0.0), counts["n_scored"].to_numpy(float, na_value=0.0)
        for _, col in MIX_COLUMNS:
            sel = (counts["kind"] == col).to_numpy()
            keys = sorted(set(counts["category"][sel].astype(str)))
            ki = {k: i for i, k in enumerate(keys)}
            arr = np.zeros((W, G, len(keys)))
            k = np.array([ki[x] for x in counts["category"][sel].astype(str)], dtype=np.int64)
            np.add.at(arr, (cw[sel], cg[sel], k), n_rep[sel])
            self.cats[col] = (keys, arr)
            if col == "prompt_category":  # never NULL: every reply has one, so these are the group sizes
                np.add.at(self.n_all, (cw[sel], cg[sel]), n_rep[sel])
                np.add.at(self.n_scored, (cw[sel], cg[sel]), n_sc[sel])

        # Score sums: the non-zero scores, plus the zeros counted from the replies (see drift_value_stats.sql).
        sw, sg = codes(sums)
        whole = sums["dimension"].isna().to_numpy()
        complete = np.zeros((W, G))
        np.add.at(complete, (sw[whole], sg[whole]), sums["n_complete"].to_numpy(float, na_value=0.0)[whole])
        part = sums[~whole]
        keep = np.array([d in di for d in part["dimension"]], dtype=bool)
        part = part[keep]
        pw, pg = sw[~whole][keep], sg[~whole][keep]
        pd_ = np.array([di[d] for d in part["dimension"]], dtype=np.int64)
        shape = (W, G, Dn)

        def dense(col, fill=0.0):
            a = np.full(shape, fill)
            a[pw, pg, pd_] = part[col].to_numpy(float, na_value=fill)
            return a

        n_nz, total, total_sq = dense("n_nonzero"), dense("total"), dense("total_sq")
        self.finite = not part["infinite"].to_numpy(float, na_value=0.0).any()
        n = complete[:, :, None] + dense("n_partial")
        with np.errstate(divide="ignore", invalid="ignore"):
            # The zeros add nothing to the sums, so this is the sum of squared deviations of all n scores, from sums
            # that add up across the runs that cached them. The zeros (most scores) keep the subtraction well
            # conditioned: mean^2 <= (share of non-zero scores) * total_sq / n. Rounding could take it below 0.
            m2 = np.where(n > 0, np.maximum(total_sq - total * total / n, 0.0), 0.0)
        self.n, self.total, self.m2 = n, total, m2
        self.pos = dense("positive")
        self.neg = (dense("negative") > 0).astype(float)
        # All traffic: the sum over the models.
        mi = np.arange(1, 1 + len(models))
        self._put_all(mi)

    def _put_all(self, mi):
        for name in ("n_all", "n_scored", "pos", "neg"):
            a = getattr(self, name)
            a[:, 0] = a[:, mi].sum(axis=1)
        for col, (keys, arr) in self.cats.items():
            arr[:, 0] = arr[:, mi].sum(axis=1)
        self.n[:, 0], self.total[:, 0], self.m2[:, 0] = _merge(self.n[:, mi], self.total[:, mi], self.m2[:, mi], 1)

    def window(self, w) -> dict:
        """Arrays (group x ...) of one window."""
        i = self.windows.index(w)
        return self._pick(slice(i, i + 1))

    def span(self, start, end) -> dict:
        """Arrays (group x ...) summed over the windows in [start, end)."""
        lo = next((i for i, w in enumerate(self.windows) if w >= start), len(self.windows))
        hi = next((i for i, w in enumerate(self.windows) if w >= end), len(self.windows))
        return self._pick(slice(lo, hi))

    def _pick(self, sl) -> dict:
        n, total, m2 = _merge(self.n[sl], self.total[sl], self.m2[sl], 0)
        out = {"n": n, "total": total, "m2": m2}
        for name in ("n_all", "n_scored", "pos", "neg"):
            out[name] = getattr(self, name)[sl].sum(axis=0)
        for col, (keys, arr) in self.cats.items():
            out[col] = arr[sl].sum(axis=0)
        return out


def _merge(n, total, m2, axis):
    """(n, total, m2) of the union of samples along `axis` (pairwise-stable sum of squared deviations)."""
    nn = n.sum(axis=axis)
    tt = total.sum(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = tt / nn
        dev = np.where(n > 0, n * (total / n - np.expand_dims(mean, axis)) ** 2, 0.0)
    return nn, tt, m2.sum(axis=axis) + dev.sum(axis=axis)


def compute_from_sums(sums: pd.DataFrame, counts: pd.DataFrame, windows: list, ref: Reference, dims: list[str],
                      families: dict, threshold, min_n: int, granularity: str) -> list[dict] | None:
    """Every drift row of the given windows from per-window sums (default method); None when scores are not finite."""
    rows: list[dict] = []
    if counts.empty and sums.empty:
        return rows
    S = _Sums(sums, counts, windows, dims)
    if not S.finite:
        return None  # an infinite score: the per-reply path handles it as before
    todo = [(w, ref.range(w)) for w in windows]
    todo = [(w, rr) for w, rr in todo if rr is not None]
    if not todo:
        return rows
    cur = [S.window(w) for w, _ in todo]
    refs = [S.span(*rr) for _, rr in todo]
    stack = {k: np.stack([c[k] for c in cur]) for k in ("n", "total", "m2", "pos", "neg")}
    rstack = {k: np.stack([r[k] for r in refs]) for k in ("n", "total", "m2", "pos", "neg")}
    nc, nr = stack["n"], rstack["n"]
    testable = (nc >= 2) & (nr >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        mc, mr = stack["total"] / nc, rstack["total"] / nr
    effect = np.full(nc.shape, np.nan)
    pval = np.full(nc.shape, np.nan)
    if testable.any():
        t = testable
        effect[t], pval[t] = D.mean_shift_stats(nr[t], mr[t], rstack["m2"][t], rstack["pos"][t], rstack["neg"][t] == 0,
                                                nc[t], mc[t], stack["m2"][t], stack["pos"][t], stack["neg"][t] == 0)
    for ti, (w, rr) in enumerate(todo):
        c, r = cur[ti], refs[ti]
        base = {"granularity": granularity, "window_start": w, "window_end": w + ref.wl}
        info = {"kind": ref.kind, "start": rr[0].isoformat(), "end": rr[1].isoformat()}
        # Every group with replies in the window (small ones flagged small_sample), as on the per-reply path.
        groups = [(0, {**base, "model": None, "deployment": None})]
        groups += [(1 + i, {**base, "model": m, "deployment": None}) for i, m in enumerate(S.models)
                   if c["n_all"][1 + i] > 0]
        off = 1 + len(S.models)
        groups += [(off + i, {**base, "model": None, "deployment": None, "_seg": sv})
                   for i, sv in enumerate(S.segs) if c["n_all"][off + i] > 0]
        for g, key in groups:
            for j, dim in enumerate(dims):
                ncur, nref = int(nc[ti, g, j]), int(nr[ti, g, j])
                ok = ncur >= min_n and nref >= min_n
                if not testable[ti, g, j]:
                    res = None
                else:
                    res = D.mean_shift_drift(float(effect[ti, g, j]), float(pval[ti, g, j]), float(mc[ti, g, j]),
                                             float(mr[ti, g, j]), threshold)
                rows.append(_row("value_drift", key, dim, families.get(dim), res, ncur, nref, dict(info), ok, min_n))
            for metric, col in MIX_COLUMNS:
                keys = S.cats[col][0]
                cc_all, rc_all = c[col][g], r[col][g]
                ncur, nref = int(cc_all.sum()), int(rc_all.sum())
                ok = ncur >= min_n and nref >= min_n
                res = shares = None
                if ncur and nref:
                    used = (cc_all > 0) | (rc_all > 0)
                    shares = ([k for k, u in zip(keys, used) if u], rc_all[used], cc_all[used])
                    res = D.category_drift(*shares)
                rows.append(_mix_row(metric, col, key, res, shares, ncur, nref, dict(info), ok, min_n))
    for row in rows:
        row.pop("_seg", None)
    return rows


def run_value_drift(ctx: JobContext, scorer=None) -> int:
    """Recompute drift rows for windows touched since the watermark (and windows referencing them)."""
    home = ctx.home
    vcfg, mcfg = home.config.values, home.config.metrics
    granularity = mcfg.granularity
    scorer = scorer or configured_scorer(home)
    ref = Reference(vcfg, granularity)
    dims = [d.name for d in scorer.dimensions]
    families = {d.name: d.family for d in scorer.dimensions}
    manifest = home.lake.manifest()
    # Lake views over the dates each step reads only (re-pointed per step): the history outside them costs nothing.
    con = scoped_connect(home, manifest, None)
    try:
        attrs = attributes(home, con, manifest, mcfg)
        fp = hashlib.sha256(json.dumps({
            "v": LOGIC_VERSION, "g": granularity, "a": attrs, "s": scorer.version, "r": vcfg.reference,
            "d": vcfg.reference_days, "bs": vcfg.baseline_start, "be": vcfg.baseline_end, "bm": vcfg.baseline_model,
            "m": vcfg.drift_method, "t": vcfg.drift_threshold, "n": vcfg.min_n}, sort_keys=True).encode()).hexdigest()[:16]
        delta = Delta.open(home, WATERMARK_KEY, fp, manifest=manifest)
        dates = delta.dates(*INPUTS)
        if dates is not None:
            scope_views(con, home, manifest, *dates)
        touched = touched_windows(con, delta, INPUTS, granularity)
        if not touched:
            delta.save(WATERMARK_KEY, fp)
            return 0
        span = ref.span(touched)
        span_dates = range_dates(*(span or (None, None)))
        scope_views(con, home, manifest, *span_dates)
        all_windows = [r[0] for r in con.execute(load_sql("values/all_windows.sql").sql, {
            "granularity": granularity, "scorer_version": scorer.version,
            "date_min": span_dates[0], "date_max": span_dates[1]}).fetchall()]
        windows = ref.to_recompute(touched, all_windows)
        ranges = [ref.range(w) for w in windows]
        ranges = [r for r in ranges if r]
        if windows:
            start = min([min(windows)] + [r[0] for r in ranges])
            end = max([max(windows) + ref.wl] + [r[1] for r in ranges])
            scope_views(con, home, manifest, *range_dates(start, end))
            rows = None
            if uses_sums(vcfg, ref, ranges) and not FORCE_ROWS:
                sums, counts = load_sums(con, granularity, start, end, scorer.version, dims, attrs, home,
                                         manifest)
                rows = compute_from_sums(sums, counts, windows, ref, dims, families, vcfg.drift_threshold,
                                         vcfg.min_n, granularity)
            if rows is None:
                frame, segs = load_frame(con, granularity, start, end, scorer.version, dims, attrs)
                rows = compute(frame, segs, windows, ref, dims, families, vcfg.drift_method, vcfg.drift_threshold,
                               vcfg.min_n, granularity)
            rows += retired_rows(con, rows, granularity, windows, METRIC_NAMES)
        else:
            rows = []
    finally:
        con.close()
    n = write_metrics(home, rows, "value_drift", ctx.run_id)
    delta.save(WATERMARK_KEY, fp)
    home.state.put(STATE_KEY, {"fingerprint": fp, "windows_last_run": len(windows)})
    drifted = sum(1 for r in rows if r["metric"] == "value_drift" and json.loads(r["details"]).get("drift_detected"))
    log.info("value drift: %d rows over %d windows, %d value_drift rows with drift", n, len(windows), drifted)
    return n


def evidently_report_html(home, window_start: dt.datetime, model: str | None = None,
                          segment: dict | None = None) -> str:
    """The Evidently HTML report of one window (all traffic, one model, or one segment) against its reference."""
    vcfg, mcfg = home.config.values, home.config.metrics
    granularity = mcfg.granularity
    scorer = configured_scorer(home)
    ref = Reference(vcfg, granularity)
    dims = [d.name for d in scorer.dimensions]
    rr = ref.range(window_start)
    if rr is None:
        raise ConfigError(f"window {window_start} overlaps the baseline window; it is not compared")
    seg = {k: v for k, v in (segment or {}).items() if k != "dimension"}
    con = connect(home)
    try:
        attrs = list(seg)
        start, end = min(rr[0], window_start), max(rr[1], window_start + ref.wl)
        frame, segs = load_frame(con, granularity, start, end, scorer.version, dims, attrs)
    finally:
        con.close()
    for a, v in seg.items():
        ids = set(segs[(segs["attribute"] == a) & (segs["value"] == v)]["turn_id"])
        frame = frame[frame["turn_id"].isin(ids)]
    ws = frame["window_start"]
    cur = frame[ws == window_start]
    rf = frame[(ws >= rr[0]) & (ws < rr[1])]
    if ref.kind == "baseline_model":
        rf = rf[rf["model"] == ref.model]
        if model:
            cur = cur[cur["model"] == model]
        # Evidently's Report takes no weights, whatever the method: a reference without copies.
        rf, _ = D.stratify_sample(rf, cur["topic"], "topic", f"{window_start.isoformat()}|{model}")
    elif model:
        cur, rf = cur[cur["model"] == model], rf[rf["model"] == model]
    if cur.empty or rf.empty:
        raise ConfigError(f"no replies to compare for window {window_start} (model={model}, segment={seg})")
    cur_s, rf_s = cur[cur["scored"]], rf[rf["scored"]]
    # Categorical columns use all replies, value columns only scored ones: two reports would be two pages, so the
    # categorical columns are taken from the scored replies here (the job's topic rows use all of them).
    return D.report_html(cur_s, rf_s, dims, ["topic", "prompt_category"], vcfg.drift_method, vcfg.drift_threshold)


JOBS = [Job("value_drift", run_value_drift, depends_on=("values",),
            help="Value drift per dimension, model and segment (Evidently), plus topic and prompt-mix drift.")]
