"""Disparity: per attribute, per-group rates with intervals, gaps, ratios, corrected significance, small-n marked."""
import datetime as dt

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.ui import MISSING, PROBE_PREFIX, as_text, chart, ctx, guarded, metric_help, metric_name

ALL = "all models"
VALUE_METRIC = "value_disparity"  # a mean score per group, not a rate: drawn and tabled as a number

c = ctx()
st.title("Disparity")

keys = guarded(data.metric_keys, c.root, c.version, "%disparity%", c.start, c.end, c.granularity)
if keys is None:
    st.stop()
if keys.empty:
    st.info("No disparity metrics yet: run `monitor jobs run` (job `disparity`) on logs that carry `user.*` "
            "attributes, or widen the time window.")
    st.stop()
keys = keys.assign(base=[m[len(PROBE_PREFIX):] if m.startswith(PROBE_PREFIX) else m for m in keys["metric"]])

(f1, f2), (f3, f4) = st.columns([3, 2]), st.columns(2)  # four across truncated the names at 800 px
order = ["over_refusal_disparity", "under_refusal_disparity", "refusal_disparity", VALUE_METRIC]
metrics = sorted(keys["base"].unique(), key=lambda m: (order.index(m) if m in order else len(order), m))
metric = f1.selectbox("Metric", metrics, format_func=metric_name, key="dp_metric",
                      help="  \n".join(f"**{metric_name(m)}**: {metric_help(m)}" for m in metrics))
is_value = metric == VALUE_METRIC
dim = ""
if is_value:  # one dimension at a time: value_disparity has a row per dimension, attribute, group and window
    dims = sorted(d for d in keys[keys["base"] == metric]["dimension"].dropna().unique())
    if dims:
        dim = st.selectbox("Value dimension", dims, key="dp_dim",
                           index=dims.index("moralizing") if "moralizing" in dims else 0)
st.caption(metric_help(metric) + (" Significance uses Welch's t-test" if is_value else
                                  " Significance uses chi-square / Fisher tests")
           + " with Benjamini-Hochberg correction across every group and metric tested in the window (q-value); "
           "groups below the minimum n are shown hollow and never alerted on.")

# only the chosen metric (production and probe rows) is loaded and parsed: every disparity row of a month on real
# data is tens of thousands of rows, seconds of JSON parsing
rows = guarded(data.metric_rows, c.root, c.version, (metric, PROBE_PREFIX + metric), c.start, c.end,
               granularity=c.granularity, dimension=dim)
if rows is None:
    st.stop()
if rows.empty:
    st.info(f"No {metric_name(metric)} rows in this window: widen the time window.")
    st.stop()


def parsed(df: pd.DataFrame) -> pd.DataFrame:
    """Disparity rows with the fields of their details as columns."""
    det, seg = df["details_obj"], df["segment_obj"]
    return df.assign(
        source=["probe" if (d.get("source") == "probe" or m.startswith(PROBE_PREFIX)) else "production"
                for d, m in zip(det, df["metric"])],
        attribute=[d.get("attribute") or next((k for k in s if k != "dimension"), "") for d, s in zip(det, seg)],
        group=[str(d["group"]) if d.get("group") is not None else
               "&".join(str(v) for k, v in s.items() if k != "dimension") for d, s in zip(det, seg)],
        dimension=[s.get("dimension") or d.get("dimension") or "" for d, s in zip(det, seg)],
        gap=[d.get("gap") for d in det], ratio=[d.get("ratio") for d in det], p_value=[d.get("p_value") for d in det],
        q_value=[d.get("q_value") for d in det], significant=[bool(d.get("significant")) for d in det],
        adverse=[bool(d.get("adverse")) for d in det], four_fifths_flag=[bool(d.get("four_fifths_flag")) for d in det],
        min_n_ok=[bool(d.get("min_n_ok", not s)) for d, s in zip(det, df["small_sample"].fillna(False))],
        reference_rate=[d.get("reference_rate", d.get("reference_mean")) for d in det],
        window=df["window_start"].dt.strftime("%Y-%m-%d %H:%M" if c.granularity == "hour" else "%Y-%m-%d"),
        # one attribute is shown at a time: a group's label is its value alone ('asia_pacific', not 'region=...')
        group_label=lambda d: d["group"])


rows = parsed(rows)

# open on the attribute with the most significant adverse gaps in the time window (production traffic, any model;
# value gaps have no adverse side, so there significant ones count); ties and none: alphabetical. A choice the
# user made is kept (the widget's key holds it).
attrs = sorted(rows["attribute"].unique())
prod_rows = rows[rows["source"] == "production"]
flagged = prod_rows[prod_rows["significant"] & prod_rows["adverse"]]
if flagged.empty:
    flagged = prod_rows[prod_rows["significant"]]
counts = flagged.groupby("attribute").size()
best_attr = min(attrs, key=lambda a_: (-int(counts.get(a_, 0)), a_))
attr = f2.selectbox("Attribute", attrs, key="dp_attr", index=attrs.index(best_attr),
                    help="Opens on the attribute with the most significant adverse gaps in the time window. "
                         "'a&b' is an intersection of two attributes, e.g. language&age_band.")
r = rows[rows["attribute"] == attr]
models = sorted(r["model"].dropna().unique())
model_opts = models + ([ALL] if r["model"].isna().any() else [])
# open on the model version with the most significant findings; without any, on all models pooled (most data)
sig_counts = r[r["significant"]].groupby(r["model"].fillna(ALL)).size()
best = sig_counts.idxmax() if len(sig_counts) else (ALL if ALL in model_opts else None)
model = f3.selectbox("Model version", model_opts, key="dp_model",
                     index=model_opts.index(best) if best in model_opts else 0)
r = r[r["model"] == model] if model != ALL else r[r["model"].isna()]
windows = sorted(r["window"].unique(), reverse=True)
sig_windows = sorted(r[r["significant"]]["window"].unique(), reverse=True)
tested = sorted(r[r["min_n_ok"]]["window"].unique(), reverse=True)
# the latest window with a significant gap, else the latest with a group big enough to test (the newest window
# is often a partial day whose groups are all too small)
default = (sig_windows or tested or windows)[0]
window = f4.selectbox("Window", windows, key="dp_window", index=windows.index(default),
                      help="Opens on the latest window with a significant gap, else the latest with testable groups.")
cur = r[r["window"] == window]

prod, probe = cur[cur["source"] == "production"], cur[cur["source"] == "probe"]
left, right = st.columns(2)
# what each group's point is: a rate (over-refusal rate, ...) or a mean score of one dimension, not the gap itself
what = (f"mean {cur['dimension'].iloc[0] if len(cur) else dim} score" if is_value
        else metric_name(metric.replace("_disparity", "_rate")).lower())
with left:
    chart(charts.group_rates(prod, f"Production traffic by {attr}", percent=not is_value), key="dp_obs")
with right:
    if probe.empty:
        st.info("No counterfactual probe results for this metric: enable `[probes]` in monitor.toml so the worker "
                "sends identity-swapped prompts to the model.")
    else:
        chart(charts.group_rates(probe, f"Probes by {attr}", percent=not is_value), key="dp_probe")
st.caption(f"Each point: a {attr} group's {what} in {window}. Grey tick: that group's reference (the rest of the "
           "traffic). Diamonds: significant after correction. Hollow: below the minimum sample size, not tested. "
           "Bars: 95% intervals. Production traffic shows what users got; probes send the same prompt with only the "
           "identity swapped, so a gap there is the model's, not a difference in what groups ask.")
# Over- and under-refusal are always read together (lowering one tends to raise the other): the same groups' other
# rate, production traffic, same attribute, model and window.
other = {"over_refusal_disparity": "under_refusal_disparity",
         "under_refusal_disparity": "over_refusal_disparity"}.get(metric)
if other:
    # the chosen window only: every row of a month is seconds of JSON parsing
    ws = cur["window_start"].iloc[0].to_pydatetime() if len(cur) else None
    twin = guarded(data.metric_rows, c.root, c.version, (other,), ws, ws + dt.timedelta(microseconds=1),
                   granularity=c.granularity) if ws is not None else None
    if twin is not None and not twin.empty:
        twin = parsed(twin)
        twin = twin[(twin["attribute"] == attr) & (twin["window"] == window)]
        twin = twin[twin["model"] == model] if model != ALL else twin[twin["model"].isna()]
    if twin is not None and not twin.empty:
        with st.columns(2)[0]:
            chart(charts.group_rates(twin, f"{metric_name(other.replace('_disparity', '_rate'))} by {attr}"),
                  key="dp_twin")
        st.caption(f"{metric_name(other.replace('_disparity', '_rate'))} of the same groups in the same window, "
                   "production traffic: a group refused less may be answered harmfully more, and the reverse.")

# A group whose replies the classifiers could not read (the score job's language gate: a language answered in its
# own language) has no disparity row at all; say so, from the refusal_metrics rollups of the same window and model.
if not is_value and len(cur) and "&" not in attr:
    ws = cur["window_start"].iloc[0].to_pydatetime()
    tc = guarded(data.metric_rows, c.root, c.version, ("turn_count",), ws, ws + dt.timedelta(microseconds=1),
                 granularity=c.granularity)
    if tc is not None and not tc.empty:
        tc = tc[tc["deployment"].isna() & ((tc["model"] == model) if model != ALL else tc["model"].isna())]
        tc = tc[[list(s) == [attr] for s in tc["segment_obj"]]]
        gone = data.unscored_by_group(tc.assign(group=[s[attr] for s in tc["segment_obj"]]), "group")
        if not gone.empty:
            st.warning(data.unscored_warning(gone, "Not in this comparison", lambda g: f"{attr}={g}"))
            # The same groups' estimate from random-sample reviewer labels of their unscored turns: not compared
            # with the reference (a different measurement, of a different part of the traffic).
            labelled = data.LABELLED_METRICS[metric.replace("_disparity", "_rate")]
            est = guarded(data.metric_rows, c.root, c.version, (labelled,), ws, ws + dt.timedelta(microseconds=1),
                          granularity=c.granularity)
            if est is not None and not est.empty:
                est = est[est["deployment"].isna() & ((est["model"] == model) if model != ALL else est["model"].isna())]
                est = est[[list(s) == [attr] for s in est["segment_obj"]]]
                est = est.assign(group=[str(s[attr]) for s in est["segment_obj"]])
                est = est[est["group"].isin(set(gone["group"]))]
                table = data.label_estimate_table(est, "group", lambda g: f"{attr}={g}")
                if not table.empty:
                    st.dataframe(table.drop(columns=["estimate"]), hide_index=True,
                                 column_config={k: st.column_config.NumberColumn(format="%.3f")
                                                for k in ("rate", "ci_low", "ci_high")})
                    st.caption(f"{metric_name(labelled)} of these groups, not tested against the reference. "
                               + data.label_estimate_caption(c.home.config.metrics.min_n))

if not prod.empty and not prod["min_n_ok"].any():
    st.warning(f"Every group in {window} is below the minimum sample size: nothing here is tested. Pick an earlier "
               "window or pool the model versions ('all models').")

table = cur[["source", "group", "value", "ci_low", "ci_high", "n", "reference_rate", "gap", "ratio", "p_value",
             "q_value", "significant", "adverse", "four_fifths_flag", "min_n_ok"]].rename(
    columns={"value": "mean" if is_value else "rate", "reference_rate": "reference"})
num = "%.3f"
table = table.sort_values(["source", "mean" if is_value else "rate"], ascending=[False, False])
# p, q, gap and ratio are not computed for every group (below the minimum n; no reference rate): '—', not None
table = as_text(table, {"reference": "%.3f", "gap": "%.3f", "ratio": "%.3f", "p_value": "%.2g", "q_value": "%.2g"})
st.dataframe(table, hide_index=True,
             column_config={k: st.column_config.NumberColumn(format=num) for k in ("rate", "mean", "ci_low", "ci_high")})
if (table["p_value"] == MISSING).any():
    st.caption("'—': not computed. Groups below the minimum sample size are not tested (no p or q), and a ratio "
               "needs a reference above zero.")

st.subheader("Group rates over time" if not is_value else "Group means over time")
hist = r[r["source"] == "production"]
if not hist.empty:
    chart(charts.rate_lines(hist, c.colors, f"{what[0].upper() + what[1:]} per {attr} group",
                            "mean score" if is_value else "rate", by="group_label", percent=not is_value),
          key="dp_trend")
