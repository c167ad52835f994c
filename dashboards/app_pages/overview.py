"""Overview: open alerts, the over/under-refusal trade-off per model version, user feedback, freshness and volume."""
import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.ui import chart, ctx, guarded, metric_help, window_caption

c = ctx()
st.title("Overview")
st.caption(window_caption(c))

alerts = data.alerts(c.root)
open_ = alerts[alerts["status"].isin(["firing", "acknowledged"])] if not alerts.empty else alerts
cols = st.columns(4)
cols[0].metric("Open alerts", len(open_), help="Firing or acknowledged, not yet resolved.")
cols[1].metric("Critical", int((open_["severity"] == "critical").sum()) if not open_.empty else 0)
cols[2].metric("Turns in the lake", f"{int(c.fresh.get('turns') or 0):,}")
latest = c.fresh.get("latest_event")
cols[3].metric("Newest event", f"{latest:%Y-%m-%d}" if latest is not None else "none",
               help=(f"{latest:%Y-%m-%d %H:%M} UTC. " if latest is not None else "") + "Event time of the newest "
               "turn; compare with the ingest time below to spot a stalled pipeline.")

left, right = st.columns([1, 2])
with left:
    chart(charts.severity_chart(alerts), key="sev")
    if open_.empty:
        st.success("No open alerts.")
    else:
        st.dataframe(open_[["id", "severity", "status", "message"]], hide_index=True,
                     height=min(38 + 35 * len(open_), 250))
        st.page_link("app_pages/alerts.py", label="Go to alerts", icon=":material/notifications_active:")

# all traffic only (segment '{}'), no details: the charts below draw nothing else
rows = guarded(data.metric_rows, c.root, c.version, ("over_refusal_rate", "under_refusal_rate"), c.start, c.end,
               granularity=c.granularity, segment="{}", details=False)
with right:
    if rows is None or rows.empty:
        st.info("No refusal metrics in this window yet: ingest logs (`monitor ingest`) and run "
                "`monitor jobs run`, or widen the time window.")
    else:
        overall = rows[rows["segment"] == "{}"]
        # per model version (not the all-models line, which would hide a version's regression in the mix)
        per_model = overall[overall["model"].notna()] if overall["model"].notna().any() else overall
        over = per_model[per_model["metric"] == "over_refusal_rate"]
        under = per_model[per_model["metric"] == "under_refusal_rate"]
        st.markdown("**Over- and under-refusal per model version**",
                    help=f"Over-refusal: {metric_help('over_refusal_rate')}  \nUnder-refusal: "
                         f"{metric_help('under_refusal_rate')}  \nShaded bands are 95% intervals; hollow markers "
                         "are small samples.")
        chart(charts.over_under_side_by_side(over, under, c.colors), key="overunder")

if rows is not None and not rows.empty:
    a, b = st.columns(2)
    with a:
        chart(charts.tradeoff_scatter(over, under, c.colors), key="tradeoff")
        st.caption("Each point is one model version in one window; bars are 95% intervals; hollow points rest on a "
                   "small sample (either rate). Lower-left is better: moving right costs helpfulness, moving up costs safety.")
# from the refusal_metrics rollups (turn_count, thumbs_down_rate per window and model), not from raw turns
vol = guarded(data.volume, c.root, c.version, c.start, c.end, granularity=c.granularity)
if vol is not None:
    target = b if rows is not None and not rows.empty else st.container()
    with target:
        chart(charts.feedback_chart(vol, c.colors, c.home.config.metrics.min_n), key="feedback")
        st.caption("Share of rated replies with a thumbs down, per model version (Wilson 95% intervals; hatched "
                   "below the minimum n): thumbs up/down on scored replies, summed over this time window.")
    chart(charts.volume_chart(vol, c.colors), key="volume")
    st.caption("Volume counts scored turns, from the metric rollups, including replies the classifiers could not "
               "read (empty, or in a language they do not read), which are in no rate above; turns not yet scored "
               "show up after the next `monitor jobs run`.")

st.subheader("Data freshness")
f = c.fresh
fr = pd.DataFrame([
    {"what": "newest event (turn timestamp)", "when (UTC)": f.get("latest_event")},
    {"what": "newest ingest", "when (UTC)": f.get("latest_ingest")},
    {"what": "newest metric window end", "when (UTC)": f.get("latest_metric_window")},
    {"what": "metrics last computed", "when (UTC)": f.get("latest_metric_computed")},
])
# NaT as well as None: a home with metric rows but no turns (all deleted) has no newest event
fr["when (UTC)"] = fr["when (UTC)"].map(lambda v: "never" if pd.isna(v) else f"{pd.Timestamp(v):%Y-%m-%d %H:%M}")
st.dataframe(fr, hide_index=True)
if f.get("quarantined"):
    st.caption(f"{int(f['quarantined']):,} input records are in quarantine (see the SQL page: `quarantine`).")
if f.get("last_jobs"):
    st.dataframe(pd.DataFrame(f["last_jobs"]), hide_index=True)
else:
    st.caption("No job has run in this home yet: `monitor jobs run` (or `monitor serve`) computes the metrics.")
