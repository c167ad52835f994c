"""Refusals: rates with 95% bands by window, model version, deployment and segment; drill-down; classifier quality."""
import datetime as dt

import pandas as pd
import streamlit as st

from dashboards import charts, data
from dashboards.ui import chart, ctx, guarded, metric_help, metric_name, pct

c = ctx()
st.title("Refusals")

metric = st.selectbox("Metric", list(data.REFUSAL_METRICS), index=1, format_func=metric_name, key="rf_metric",
                      help="Over-refusal costs helpfulness; under-refusal (harmful compliance) costs safety.")
st.caption(metric_help(metric))
# Over- and under-refusal are always shown together: lowering one tends to raise the other.
other = {"over_refusal_rate": "under_refusal_rate", "under_refusal_rate": "over_refusal_rate"}.get(metric)
# without details (JSON of ~800 bytes a row); the table at the end loads them for its one window
both = guarded(data.metric_rows, c.root, c.version, (metric, other) if other else (metric,), c.start, c.end,
               granularity=c.granularity, details=False)
if both is None:
    st.stop()
rows = both[both["metric"] == metric]
if rows.empty:
    st.info("No refusal metrics in this window: run `monitor jobs run` after ingesting logs, or widen the window.")
    st.stop()

b1, b2, b3 = st.columns(3)
by = b1.radio("Break down by", ["model version", "deployment", "segment"], horizontal=True, key="rf_by")
models = sorted(m for m in rows["model"].dropna().unique())
model = b2.selectbox("Model version", ["all models"] + models, key="rf_model",
                     help="'all models' is the pooled rate over every version.")
attrs = sorted({k for s in rows["segment_obj"] for k in s})
attr = None
if by == "segment":
    attr = b3.selectbox("Attribute", attrs, key="rf_attr") if attrs else None
    if attr is None:
        st.info("No segment breakdown in these metrics: the logs carry no `user.*` attributes.")
        st.stop()
key_col = "model_label" if by == "model version" else "group"


def select(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the chosen breakdown and model."""
    pooled = df["model"].isna() if model == "all models" else df["model"] == model
    if by == "model version":
        view = df[(df["segment"] == "{}") & df["deployment"].isna()]
        return view if model == "all models" else view[view["model"] == model]
    if by == "deployment":
        view = df[(df["segment"] == "{}") & df["deployment"].notna() & pooled]
        return view.assign(group=view["deployment"])
    view = df[df["segment_obj"].map(lambda s: list(s) == [attr]) & df["deployment"].isna() & pooled]
    return view.assign(group=view["segment_label"])


view = select(rows)
if by == "deployment" and view.empty:
    st.info("No per-deployment rows for this metric (the logs carry no deployment, or the metric job does not "
            "split by it).")

if not view.empty:
    panels = st.columns(2) if other else [st.container()]
    with panels[0]:
        chart(charts.rate_lines(view, c.colors, f"{metric_name(metric)} by {by}", metric_name(metric), by=key_col),
              key="rf_lines")
    if other:
        with panels[1]:
            chart(charts.rate_lines(select(both[both["metric"] == other]), c.colors,
                                    f"{metric_name(other)} by {by}", metric_name(other), by=key_col),
                  key="rf_lines_other")
    st.caption(("Over- and under-refusal side by side: lowering one tends to raise the other. " if other else "")
               + "Shaded bands: 95% Wilson intervals. Hollow markers: fewer than "
               f"{c.home.config.metrics.min_n} turns (shown, never alerted on). Dotted: error-corrected rate (from "
               "reviewer labels when there are enough, else from the shared evaluation data: see the table below).")
    table = view[["window_start", key_col, "value", "ci_low", "ci_high", "n", "small_sample", "corrected",
                  "corrected_ci_low", "corrected_ci_high"]].rename(columns={key_col: "group"})
    st.dataframe(table.sort_values(["window_start", "group"], ascending=[False, True]), hide_index=True, height=260,
                 column_config={k: st.column_config.NumberColumn(format="%.3f")
                                for k in ("value", "ci_low", "ci_high", "corrected", "corrected_ci_low",
                                          "corrected_ci_high")})
    # Replies the classifiers could not read (empty, or not English: the score job's language gate) are in no n.
    # Say how many, per group, so that a language answered in its own language is not read as measured.
    counts = guarded(data.metric_rows, c.root, c.version, ("turn_count",), c.start, c.end, granularity=c.granularity)
    if counts is not None and not counts.empty:
        tc = select(counts)
        gone = data.unscored_by_group(tc, key_col)
        if not gone.empty:
            st.warning(data.unscored_warning(gone, "Not in these rates"))
            # Their estimates from random-sample reviewer labels (pooled over 28 days), kept apart from the rates.
            labelled = tuple(data.LABELLED_METRICS[m] for m in (metric, other) if m in data.LABELLED_METRICS)
            est = guarded(data.metric_rows, c.root, c.version, labelled, c.start, c.end,
                          granularity=c.granularity) if labelled else None
            if est is not None:
                table = data.label_estimate_table(select(est), key_col)
                st.markdown("**Estimates from reviewer labels of the unscored replies** (human labels, not the "
                            "classifiers)")
                if table.empty:
                    st.caption("No random-sample reviewer label on these groups' unscored turns in this time window "
                               "yet: label some from the review queue's stratified items, or import labels with "
                               "`--sample random`, to get an estimate from human labels.")
                else:
                    st.dataframe(table.assign(estimate=table["estimate"].map(metric_name)), hide_index=True,
                                 column_config={k: st.column_config.NumberColumn(format="%.3f")
                                                for k in ("rate", "ci_low", "ci_high")})
                    st.caption(data.label_estimate_caption(c.home.config.metrics.min_n))

st.subheader("Drill down to the conversations")
DRILL_LIMIT = 100
d1, d2, d3 = st.columns(3)
windows = sorted(view["window_start"].dt.date.unique(), reverse=True) if not view.empty else []
day = d1.selectbox("Window", windows, key="rf_day") if windows else None
kind = d2.selectbox("Replies", ["refusals (full or partial)", "full refusals", "partial refusals", "compliance"],
                    key="rf_kind")
harm = d3.selectbox("Prompt", ["any", "benign", "harmful"],
                    index={"over_refusal_rate": 1, "under_refusal_rate": 2}.get(metric, 0), key="rf_harm")
if day is not None:
    start = pd.Timestamp(day).to_pydatetime()
    refusal = {"full refusals": "full_refusal", "partial refusals": "partial_refusal",
               "compliance": "compliance"}.get(kind, "")
    conv = guarded(data.conversations, c.root, c.version, start, start, model="" if model == "all models" else model,
                   refusal=refusal, refused="yes" if kind.startswith("refusals") else "",
                   prompt_harm="" if harm == "any" else harm, limit=DRILL_LIMIT)
    if conv is not None:
        if conv.empty:
            st.caption("No conversations match.")
        else:
            st.caption(f"The newest {DRILL_LIMIT} matching conversations; search the **Conversations & review** "
                       "page for all of them." if len(conv) >= DRILL_LIMIT else f"{len(conv)} matching conversations.")
            st.dataframe(conv[["ts", "model", "user_message", "assistant_message", "refusal", "refusal_score",
                               "prompt_harm", "prompt_harm_score", "n_labels"]], hide_index=True,
                         height=min(38 + 35 * len(conv), 300))
            st.caption("Label these on the **Conversations & review** page.")

st.subheader("Classifier quality from reviewer labels")
lq = guarded(data.label_quality, c.root)
if lq is None or lq.empty:
    st.info("No reviewer labels yet: label conversations on the **Conversations & review** page. Until then the "
            "corrected rates use the classifiers' error rates measured on the bundled evaluation data.")
else:
    # Only a random sample measures the classifiers: turns picked because they looked wrong (the queue's uncertain
    # and alert items, searches, imports marked targeted) would show them worse than they are, as in the corrected
    # rates (monitor/jobs/refusal_metrics.py).
    from monitor.jobs.refusal_metrics import TARGETED_REASONS

    targeted = lq["queue_reason"].isin(TARGETED_REASONS)
    if targeted.any():
        st.caption(f"{int(targeted.sum()):,} label(s) on turns picked for a reason (uncertain or alert queue items, "
                   "searches, imports marked targeted) are left out: they are not a random sample, so they would "
                   "show the classifiers worse than they are.")
    lq = lq[~targeted]
    out = []
    for name, truth, pred, pos in (
            ("refusal classifier (refused vs complied)", "refusal_label", "predicted_refusal", None),
            ("prompt-harm classifier (harmful vs benign)", "prompt_label", "predicted_prompt_harm", "harmful")):
        d = lq.dropna(subset=[truth, pred])
        if d.empty:
            continue
        t = d[truth] != "compliance" if pos is None else d[truth] == pos
        p = d[pred] != "compliance" if pos is None else d[pred] == pos
        tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
        prec = tp / (tp + fp) if tp + fp else float("nan")
        rec = tp / (tp + fn) if tp + fn else float("nan")
        plo, phi = charts.wilson(tp, tp + fp)
        rlo, rhi = charts.wilson(tp, tp + fn)
        out.append({"classifier": name, "labelled turns": len(d), "precision": pct(prec),
                    "precision 95% CI": f"{pct(plo)}–{pct(phi)}", "recall": pct(rec),
                    "recall 95% CI": f"{pct(rlo)}–{pct(rhi)}", "agreement": pct(float((t == p).mean())),
                    "small n": "yes" if min(tp + fp, tp + fn) < c.home.config.metrics.min_n else ""})
    if out:
        st.dataframe(pd.DataFrame(out), hide_index=True)
        if any(r["small n"] for r in out):
            st.caption(f"*small n*: fewer than {c.home.config.metrics.min_n} labelled turns behind the precision or "
                       "the recall (predicted or truly positive ones): read the interval, not the point; n/a where "
                       "there are none yet.")
    else:
        st.caption("Labels exist but none of the random-sample ones gives a true refusal or prompt label yet.")


def _note(details: dict) -> str | None:
    return details.get("correction_note")


# Over- and under-refusal rows carry a correction, or a note saying why there is none (details, not loaded above).
corr = rows if metric in ("over_refusal_rate", "under_refusal_rate") else rows[rows["corrected"].notna()]
st.subheader("Raw and error-corrected rates")
if corr.empty:
    st.caption("No corrected values for this metric yet (the metric job adds them once classifier error rates are "
               "known).")
else:
    ws = corr["window_start"].max().to_pydatetime()
    # the same rows, with details, for this one window: where the error rates came from (reviewer labels, or the
    # shared evaluation data: a different traffic mix, so a level corrected with it is a rough guide until
    # reviewers label a random sample)
    last = guarded(data.metric_rows, c.root, c.version, (metric,), ws, ws + dt.timedelta(microseconds=1),
                   granularity=c.granularity)
    if last is not None:
        last = last[last["corrected"].notna() | last["details_obj"].map(lambda d: bool(_note(d)))].assign(
            **{"error rates from": lambda d: [(o.get("correction") or {}).get("source") for o in d["details_obj"]],
               "note": lambda d: [_note(o) or "" for o in d["details_obj"]],
               "deployment": lambda d: d["deployment"].fillna("all"),
               "small n": lambda d: d["small_sample"].map({True: "yes", False: ""})})
        st.dataframe(last[["window_start", "model_label", "deployment", "segment_label", "value", "ci_low", "ci_high",
                           "corrected", "corrected_ci_low", "corrected_ci_high", "n", "small n", "error rates from",
                           "note"]], hide_index=True)
        if last["corrected"].isna().any():
            st.caption("An empty corrected value with a note *not estimable*: under the error rates used, no true "
                       "rate reproduces the window's counts (the correction clips to 0 or 1 in nearly every "
                       "bootstrap draw). Read the raw rate, and label a random sample of this traffic.")
