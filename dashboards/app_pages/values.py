"""Values & drift: value profiles per model version and window, drift verdicts per dimension, evidence, Evidently."""
import datetime as dt

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.ui import chart, ctx, guarded, metric_help, show_error
from monitor.errors import MonitorError



def _ref(ref) -> str | None:
    """The drift reference as text ('previous_days 2026-10-26..2026-11-02, n=12' or as recorded)."""
    if isinstance(ref, dict):
        span = f" {str(ref.get('start', ''))[:10]}..{str(ref.get('end', ''))[:10]}" if ref.get("start") else ""
        return f"{ref.get('kind', 'reference')}{span}" + (f", n={ref['n']}" if ref.get("n") is not None else "")
    return None if ref is None else str(ref)


c = ctx()
st.title("Values & drift")
st.caption(metric_help("value_mean"))

rows = guarded(data.metric_rows, c.root, c.version, data.VALUE_METRICS, c.start, c.end, granularity=c.granularity)
if rows is None:
    st.stop()
if rows.empty:
    st.info("No value-drift metrics yet: run `monitor jobs run` (jobs `values` and `value_drift`) after ingesting "
            "logs, or widen the time window.")
    st.stop()

# per-dimension rows only here (the values job also splits by language: {"dimension": ..., "language": ...})
rows = rows[[set(seg) <= {"dimension"} for seg in rows["segment_obj"]]]
rows = rows.assign(
    dimension=[d.get("dimension") or s.get("dimension") or m for d, s, m in
               zip(rows["details_obj"], rows["segment_obj"], rows["metric"])],
    window=rows["window_start"].dt.strftime("%Y-%m-%d"))
means = rows[rows["metric"] == "value_mean"]
drift = rows[rows["metric"] == "value_drift"]

st.subheader("Value profile")
windows = sorted(means["window"].unique(), reverse=True)
if windows:
    w = st.selectbox("Window", windows, key="vd_window")
    prof = means[(means["window"] == w) & means["model"].notna()]
    chart(charts.value_profile(prof if not prof.empty else means[means["window"] == w], c.colors), key="vd_profile")
    dims = sorted(means["dimension"].unique())
    dim = st.selectbox("Dimension over time", dims, key="vd_dim")
    series = means[(means["dimension"] == dim) & means["model"].notna()]
    chart(charts.rate_lines(series, c.colors, f"{dim}: mean score per window", "mean score", percent=False),
          key="vd_series")
else:
    st.caption("No value profile rows (`value_mean`) in this window.")

st.subheader("Drift verdicts")
if drift.empty:
    st.caption("No drift verdicts (`value_drift`) in this window: the drift job needs a reference window first.")
else:
    models = sorted(drift["model"].dropna().unique())
    model = st.selectbox("Model version", models or ["all models"], key="vd_model")
    dm = drift[drift["model"] == model] if models else drift
    dm = dm.assign(drifted=[bool(d.get("drift_detected", d.get("drifted", False))) for d in dm["details_obj"]])
    chart(charts.drift_heatmap(dm), key="vd_heat")
    latest = dm[dm["window"] == dm["window"].max()]
    verdicts = pd.DataFrame({
        "dimension": latest["dimension"], "window": latest["window"], "statistic": latest["value"],
        "drift": latest["drifted"].map({True: "DRIFT", False: "stable"}),
        "method": [d.get("method") for d in latest["details_obj"]],
        "threshold": [d.get("threshold") for d in latest["details_obj"]],
        "reference": [_ref(d.get("reference")) for d in latest["details_obj"]], "n": latest["n"]})
    st.dataframe(verdicts, hide_index=True)

    st.subheader("Evidence behind a move")
    e_dim = st.selectbox("Dimension", sorted(dm["dimension"].unique()), key="vd_edim")
    terms = [t for d in means[(means["dimension"] == e_dim) & (means["model"] == model)]["details_obj"]
             for t in (d.get("top_terms") or d.get("terms") or [])]
    if terms:
        st.markdown("**Terms driving the score:** " + ", ".join(f"`{t}`" for t, _ in
                                                               pd.Series(terms).value_counts().head(15).items()))
    ex = guarded(data.value_examples, c.root, c.version, e_dim, model, c.start, c.end)
    if ex is not None and not ex.empty:
        for _, r in ex.iterrows():
            with st.container(border=True):
                st.caption(f"{r['model']} · {r['ts']:%Y-%m-%d} · score {r['score']:.3f}")
                st.markdown(f"**User:** {r['user_message']}  \n**Assistant:** {r['assistant_message']}")
    else:
        st.caption("Example replies appear once the values job has written per-reply scores (`value_scores`).")

st.subheader("Evidently report")
reports = sorted(c.home.root.glob("reports/**/*.html"), reverse=True)
if reports:
    pick = st.selectbox("Report produced by the drift job", reports, format_func=lambda p: p.name, key="vd_rep")
    if st.toggle("Show report", key="vd_show"):
        import streamlit.components.v1 as components

        components.html(pick.read_text(), height=900, scrolling=True)
else:
    st.caption("The drift job has not saved an HTML report in this home; compute one on demand below.")
if windows:
    cw = st.selectbox("Current window", windows, key="vd_cw")
    if st.button("Compute the Evidently report for this window", key="vd_compute",
                 help="Compares this window's per-reply value scores with the previous 7 days (takes a few seconds)."):
        cur = pd.Timestamp(cw).to_pydatetime()
        try:
            html = data.evidently_report_html(c.root, c.version, cur, cur + dt.timedelta(days=1),
                                              cur - dt.timedelta(days=7), cur)
            import streamlit.components.v1 as components

            components.html(html, height=900, scrolling=True)
        except MonitorError as e:
            show_error(e)
