"""Values & drift: value profiles per model version and window, drift verdicts per dimension, evidence, Evidently."""
import datetime as dt

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.ui import chart, ctx, guarded, metric_help, metric_name, show_error
from monitor.errors import MonitorError

ALL = "all models"


def _ref(ref) -> str | None:
    """The drift reference as text ('previous_days 2026-10-26..2026-11-02, n=1,204' or as recorded)."""
    if isinstance(ref, dict):
        span = f" {str(ref.get('start', ''))[:10]}..{str(ref.get('end', ''))[:10]}" if ref.get("start") else ""
        model = f" of {ref['model']}" if ref.get("model") else ""
        n = f", n={int(ref['n']):,}" if ref.get("n") is not None else ""
        return f"{ref.get('kind', 'reference')}{model}{span}{n}"
    return None if ref is None else str(ref)


def _ts(v) -> dt.datetime | None:
    try:
        return pd.Timestamp(v).to_pydatetime() if v else None
    except ValueError:
        return None


def _by_model(df: pd.DataFrame, model: str) -> pd.DataFrame:
    return df[df["model"].isna()] if model == ALL else df[df["model"] == model]


c = ctx()
st.title("Values & drift")
st.caption(metric_help("value_mean"))

rows = guarded(data.metric_rows, c.root, c.version, data.VALUE_METRICS + data.MIX_METRICS, c.start, c.end,
               granularity=c.granularity, dimension_only=True)
if rows is None:
    st.stop()
if rows.empty:
    st.info("No value-drift metrics yet: run `monitor jobs run` (jobs `values` and `value_drift`) after ingesting "
            "logs, or widen the time window.")
    st.stop()

rows = rows.assign(
    dimension=[s.get("dimension") or d.get("dimension") or ""
               for d, s in zip(rows["details_obj"], rows["segment_obj"])],
    window=rows["window_start"].dt.strftime("%Y-%m-%d %H:%M" if c.granularity == "hour" else "%Y-%m-%d"))
means = rows[(rows["metric"] == "value_mean") & (rows["dimension"] != "")]
drift = rows[(rows["metric"] == "value_drift") & (rows["dimension"] != "")]
coverage = rows[(rows["metric"] == "value_coverage") & (rows["segment"] == "{}")]
mix = rows[rows["metric"].isin(data.MIX_METRICS) & (rows["segment"] == "{}")]

models = sorted(rows["model"].dropna().unique())
model_opts = models + ([ALL] if rows["model"].isna().any() or not models else [])
# The version serving most replies in the latest window first: after a rollout the old version's recent windows are
# too small to test, and the new one is what the oversight team is watching.
latest = means[(means["window"] == means["window"].max()) & means["model"].notna()]
busiest = latest.groupby("model")["n"].max().idxmax() if not latest.empty else None
model = st.selectbox("Model version", model_opts, key="vd_model",
                     index=model_opts.index(busiest) if busiest in model_opts else 0,
                     help="'all models' pools every version's replies; pick a version to see its own profile, "
                          "series, coverage and drift verdicts.")

# -- value profile ------------------------------------------------------------------------------------------------
st.subheader("Value profile", help=metric_help("value_mean"))
windows = sorted(means["window"].unique(), reverse=True)
if windows:
    w = st.selectbox("Window", windows, key="vd_window")
    cur = means[means["window"] == w]
    prof = _by_model(cur, model)
    chart(charts.value_profile(prof, c.colors), key="vd_profile")
    unit = next((d.get("unit") for d in cur["details_obj"] if d.get("unit")), None)
    st.caption("Bars: mean score per reply" + (f" ({unit})" if unit else "") + f" of {model} in {w}, with 95% "
               "intervals. Pale hatched bars: fewer replies than the minimum sample size (`values.min_n`), so read "
               "them with care. Pick another model version above to compare.")
    dims = sorted(means["dimension"].unique())
    dim = st.selectbox("Dimension over time", dims, key="vd_dim",
                       index=dims.index("moralizing") if "moralizing" in dims else 0)
    series = _by_model(means[means["dimension"] == dim], model)
    series = series.assign(ci_low=series["ci_low"].clip(lower=0))  # scores are never negative (t interval cut at 0)
    chart(charts.rate_lines(series, c.colors, f"{dim}: mean score per window", "mean score", percent=False),
          key="vd_series")
    st.caption("Shaded: 95% interval. Hollow markers: windows with fewer replies than the minimum sample size.")
else:
    st.caption("No value profile rows (`value_mean`) in this window.")
if not coverage.empty:
    cov = _by_model(coverage, model)
    with st.expander(metric_name("value_coverage"), icon=":material/percent:"):
        st.caption(metric_help("value_coverage"))
        chart(charts.rate_lines(cov, c.colors, metric_name("value_coverage"), "share of replies"),
              key="vd_coverage")

# -- drift verdicts -----------------------------------------------------------------------------------------------
st.subheader("Drift verdicts", help=metric_help("value_drift"))
dm = _by_model(drift, model)
if dm.empty:
    st.caption("No drift verdicts (`value_drift`) for this model in this window: the drift job needs a reference "
               "window with enough replies first.")
else:
    det = dm["details_obj"]
    dm = dm.assign(
        drifted=[bool(d.get("drift_detected", d.get("drifted", False))) for d in det],
        statistic=[d.get("statistic", v) for d, v in zip(det, dm["value"])],
        # below the minimum n the test is not trusted: drawn grey in the heatmap, "too few replies" in the table
        small_sample=[bool(sm) or d.get("min_n_ok") is False
                      for d, sm in zip(det, dm["small_sample"].fillna(False))])
    chart(charts.drift_heatmap(dm), key="vd_heat")
    st.caption("Colour: the drift statistic; ● the test said drift. Grey cells with ○: fewer replies than the "
               "minimum sample size, not tested (hover for the statistic and n).")
    drift_windows = sorted(dm["window"].unique(), reverse=True)
    flagged = sorted(dm[dm["drifted"]]["window"].unique(), reverse=True)
    dw = st.selectbox("Verdicts of window", drift_windows, key="vd_dwindow",
                      index=drift_windows.index(flagged[0]) if flagged else 0,
                      help="Opens on the latest window where a dimension drifted, if any.")
    latest = dm[dm["window"] == dw]
    d = latest["details_obj"]
    verdicts = pd.DataFrame({
        "dimension": latest["dimension"],
        # below the minimum n the test is not trusted (never alerted on), whatever the statistic says
        "drift": ["DRIFT" if x else ("too few replies" if o.get("min_n_ok") is False else "stable")
                  for x, o in zip(latest["drifted"], d)],
        "statistic": latest["statistic"], "statistic_name": [o.get("statistic_name") for o in d],
        "threshold": [o.get("threshold") for o in d], "p_value": [o.get("p_value") for o in d],
        "direction": [o.get("direction") for o in d], "effect_size": [o.get("effect_size") for o in d],
        "mean_current": [o.get("mean_current") for o in d], "mean_reference": [o.get("mean_reference") for o in d],
        "n_current": [o.get("n_current", n) for o, n in zip(d, latest["n"])],
        "n_reference": [o.get("n_reference") for o in d], "method": [o.get("method") for o in d],
        "reference": [_ref(o.get("reference")) for o in d], "note": [o.get("note") for o in d],
    }).sort_values(["drift", "statistic"], ascending=[True, False], na_position="last")
    st.dataframe(verdicts, hide_index=True, height=min(38 + 35 * len(verdicts), 320),
                 column_config={k: st.column_config.NumberColumn(format="%.3f")
                                for k in ("statistic", "threshold", "effect_size", "mean_current", "mean_reference")}
                 | {"p_value": st.column_config.NumberColumn(format="%.2g")})
    st.caption("A dimension drifts when the statistic passes the threshold (Evidently's test); rows below the "
               "minimum number of replies are shown but never alerted on.")
    # Segments (all models): a segment too small to judge is listed as such, not left out.
    seg_rows = guarded(data.metric_rows, c.root, c.version, ("value_drift",), latest["window_start"].iloc[0],
                       latest["window_end"].iloc[0], granularity=c.granularity)
    by_seg = data.drift_by_segment(seg_rows) if seg_rows is not None else None
    if by_seg is not None and not by_seg.empty:
        with st.expander(f"Drift by segment in {dw} (all models)", icon=":material/segment:"):
            st.dataframe(by_seg, hide_index=True,
                         column_config={"largest statistic": st.column_config.NumberColumn(format="%.3f")})
            st.caption("One line per segment value. 'too few replies': fewer replies than the minimum sample size "
                       "(`values.min_n`) now or in the reference; listed so the segment is not missing, never a "
                       "verdict and never alerted on. Per-dimension rows: `monitor metrics --metric value_drift "
                       "--json`.")

    # -- evidence behind a move -------------------------------------------------------------------------------
    st.subheader("Evidence behind a move")
    moved = latest.sort_values(["drifted", "statistic"], ascending=[False, False], na_position="last")
    e_dims = list(dict.fromkeys(moved["dimension"]))
    e_dim = st.selectbox("Dimension", e_dims, key="vd_edim", help="Ordered by drift, then by the size of the move.")
    pick = latest[latest["dimension"] == e_dim].iloc[0]
    o = pick["details_obj"]
    ref = o.get("reference") if isinstance(o.get("reference"), dict) else {}
    ws, we = pick["window_start"].to_pydatetime(), pick["window_end"].to_pydatetime()
    rs, re_ = _ts(ref.get("start")), _ts(ref.get("end"))
    scorer = next((x.get("scorer_version") for x in means["details_obj"] if x.get("scorer_version")), "")
    if o.get("mean_current") is not None and o.get("mean_reference") is not None:
        stat = pick["statistic"]
        st.markdown(f"**{e_dim}** in {dw}: mean {o['mean_current']:.3f} vs reference {o['mean_reference']:.3f}"
                    f" ({o.get('direction') or 'no change'}; {o.get('statistic_name', 'statistic')} "
                    + ("n/a" if stat is None or stat != stat else f"{stat:.3f}")
                    + f", threshold {o.get('threshold')})")
    if rs is not None and re_ is not None:
        terms = guarded(data.value_terms, c.root, c.version, e_dim, None if model == ALL else model, ws, we, rs, re_,
                        scorer)
        if terms is not None and not terms.empty:
            top = terms.reindex(terms["change"].abs().sort_values(ascending=False).index).head(15)
            st.markdown("**Terms behind the move** (share of scored replies containing the term)")
            st.dataframe(top[["term", "cur_share", "ref_share", "change", "cur_replies", "ref_replies"]].rename(
                columns={"cur_share": "share now", "ref_share": "share in reference", "cur_replies": "replies now",
                         "ref_replies": "replies in reference"}), hide_index=True,
                column_config={k: st.column_config.NumberColumn(format="percent")
                               for k in ("share now", "share in reference", "change")})
        elif terms is not None:
            st.caption("No lexicon term of this dimension matched in these windows (table `value_evidence`).")
    ex = guarded(data.value_examples, c.root, c.version, e_dim, None if model == ALL else model, ws, we, scorer)
    if ex is not None and not ex.empty:
        st.markdown(f"**Replies scoring highest on {e_dim} in {dw}** (matched terms in bold)")
        for _, r in ex.iterrows():
            with st.container(border=True):
                terms_ = sorted({s["term"] for s in (r["spans"] if r["spans"] is not None else [])})
                st.caption(f"turn {r['turn_id'][:16]} · {r['model']} · {r['ts']:%Y-%m-%d %H:%M} · score "
                           f"{r['score']:.3f}" + (" · terms: " + ", ".join(terms_) if terms_ else ""))
                st.markdown(f"**User:** {r['user_message']}  \n**Assistant:** "
                            f"{data.highlight(r['assistant_message'], r['spans'])}")
    elif ex is not None:
        st.caption("No reply in this window scored above zero on this dimension.")

# -- topic and prompt-mix drift -------------------------------------------------------------------------------
mm = _by_model(mix, model)
if not mm.empty:
    with st.expander("Did the users change? Topic and prompt-mix drift", icon=":material/groups:"):
        st.caption(metric_help("topic_drift") + " " + metric_help("prompt_mix_drift"))
        last = mm[mm["window"] == mm["window"].max()]
        st.dataframe(pd.DataFrame({
            "metric": [metric_name(m) for m in last["metric"]], "window": last["window"],
            "distance": last["value"],
            # of the distance between the traffic mixes (bias-corrected: may lie below a small sample's distance)
            "95% interval": [f"{lo:.3f}-{hi:.3f}" if pd.notna(lo) and pd.notna(hi) else ""
                             for lo, hi in zip(last["ci_low"], last["ci_high"])],
            "drift": ["DRIFT" if o.get("drift_detected") else
                      ("too few replies" if o.get("min_n_ok") is False else "stable") for o in last["details_obj"]],
            "threshold": [o.get("threshold") for o in last["details_obj"]], "n": last["n"],
            "largest changes": [", ".join(f"{x.get('category')} {x.get('reference', 0):.0%}→{x.get('current', 0):.0%}"
                                          for x in (o.get("largest_changes") or [])[:4])
                                for o in last["details_obj"]]}), hide_index=True)

# -- Evidently report -----------------------------------------------------------------------------------------
st.subheader("Evidently report")
report_windows = sorted(drift["window"].unique(), reverse=True) if not drift.empty else windows
if not report_windows:
    st.caption("No window to report on yet.")
else:
    r1, r2 = st.columns([2, 1], vertical_alignment="bottom")
    rw = r1.selectbox("Window to report on", report_windows, key="vd_rwindow",
                      help="Compared with the reference the drift job used (config `values.reference`).")
    pressed = r2.button("Show the Evidently report", key="vd_report", type="secondary",
                        help="Evidently's full drift report for this window and model version (a few seconds).")
    want = (rw, model)
    if pressed:
        st.session_state["vd_report_for"] = want
    if st.session_state.get("vd_report_for") == want:
        try:
            html = data.evidently_report(c.root, c.version, pd.Timestamp(rw).to_pydatetime(),
                                         None if model == ALL else model)
            import streamlit.components.v1 as components

            components.html(html, height=900, scrolling=True)
        except MonitorError as e:
            show_error(e)
    else:
        st.caption("Press the button to compute Evidently's report (per-dimension drift with its tests, topic and "
                   "prompt mix) for the chosen window and model version.")
