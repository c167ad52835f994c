"""Disparity: per attribute, per-group rates with intervals, gaps, ratios, corrected significance, small-n marked."""
import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.ui import chart, ctx, guarded, metric_help, metric_name

c = ctx()
st.title("Disparity")

rows = guarded(data.metric_rows, c.root, c.version, (), c.start, c.end, pattern="%disparity%",
               granularity=c.granularity)
if rows is None:
    st.stop()
if rows.empty:
    st.info("No disparity metrics yet: run `monitor jobs run` (job `disparity`) on logs that carry `user.*` "
            "attributes, or widen the time window.")
    st.stop()

det = rows["details_obj"]
rows = rows.assign(
    attribute=[d.get("attribute") or (next(iter(s)) if s else "") for d, s in zip(det, rows["segment_obj"])],
    group=[str(d.get("group") if d.get("group") is not None else (next(iter(s.values())) if s else ""))
           for d, s in zip(det, rows["segment_obj"])],
    gap=[d.get("gap") for d in det], ratio=[d.get("ratio") for d in det], p_value=[d.get("p_value") for d in det],
    q_value=[d.get("q_value") for d in det], significant=[bool(d.get("significant")) for d in det],
    four_fifths_flag=[bool(d.get("four_fifths_flag")) for d in det],
    min_n_ok=[d.get("min_n_ok", not s) for d, s in zip(det, rows["small_sample"].fillna(False))],
    reference_rate=[d.get("reference_rate") for d in det],
    source=["probe" if (d.get("source") == "probe" or "probe" in m) else "observational"
            for d, m in zip(det, rows["metric"])],
    window=rows["window_start"].dt.strftime("%Y-%m-%d"))
rows["group_label"] = rows["attribute"] + "=" + rows["group"]

f1, f2, f3, f4 = st.columns(4)
metric = f1.selectbox("Metric", sorted(rows["metric"].unique()), format_func=metric_name, key="dp_metric")
st.caption(metric_help(metric) + " Significance uses chi-square / Fisher tests with Benjamini-Hochberg correction "
           "across every group and metric tested in the run (q-value); groups below the minimum n are shown "
           "hollow and never alerted on.")
r = rows[rows["metric"] == metric]
attr = f2.selectbox("Attribute", sorted(r["attribute"].unique()), key="dp_attr")
r = r[r["attribute"] == attr]
models = sorted(r["model"].dropna().unique())
# open on the model version and window with the most significant findings, so a real gap is seen first
sig_counts = r[r["significant"]].groupby(r["model"].fillna("all models")).size()
model_opts = (models or []) + (["all models"] if r["model"].isna().any() else [])
best = sig_counts.idxmax() if len(sig_counts) else None
model = f3.selectbox("Model version", model_opts, key="dp_model",
                     index=model_opts.index(best) if best in model_opts else 0)
r = r[r["model"] == model] if model != "all models" else r[r["model"].isna()]
windows = sorted(r["window"].unique(), reverse=True)
sig_windows = sorted(r[r["significant"]]["window"].unique(), reverse=True)
window = f4.selectbox("Window", windows, key="dp_window",
                      index=windows.index(sig_windows[0]) if sig_windows else 0,
                      help="Opens on the latest window with a significant gap, if any.")
cur = r[r["window"] == window]

obs, probe = cur[cur["source"] == "observational"], cur[cur["source"] == "probe"]
left, right = st.columns(2)
with left:
    chart(charts.group_rates(obs, f"Observational: {metric_name(metric)} by {attr}"), key="dp_obs")
with right:
    if probe.empty:
        st.info("No counterfactual probe results for this metric: enable `[probes]` in monitor.toml so the worker "
                "sends identity-swapped prompts to the model.")
    else:
        chart(charts.group_rates(probe, f"Counterfactual probes: {metric_name(metric)} by {attr}"), key="dp_probe")
st.caption("Diamonds: significant after correction. Hollow: below the minimum sample size. Bars: 95% intervals.")

table = cur[["source", "group", "value", "ci_low", "ci_high", "n", "reference_rate", "gap", "ratio", "p_value",
             "q_value", "significant", "four_fifths_flag", "min_n_ok"]].rename(columns={"value": "rate"})
st.dataframe(table.sort_values(["source", "rate"], ascending=[True, False]), hide_index=True,
             column_config={k: st.column_config.NumberColumn(format="%.3f")
                            for k in ("rate", "ci_low", "ci_high", "reference_rate", "gap", "ratio")}
             | {k: st.column_config.NumberColumn(format="%.2g") for k in ("p_value", "q_value")})

st.subheader("Group rates over time")
hist = r[r["source"] == "observational"]
if not hist.empty:
    chart(charts.rate_lines(hist, c.colors, f"{metric_name(metric)}: rate per {attr} group", "rate",
                            by="group_label"), key="dp_trend")
