"""Conversations & review: search conversations, work the review queue, label, see agreement, export labels."""
import datetime as dt

import pandas as pd
import streamlit as st

from dashboards import data
from dashboards.actions import ActionError
from dashboards.ui import as_text, can_act, ctx, guarded, show_error
from monitor import review
from monitor.errors import MonitorError

SEGMENT_DAYS = 30
c = ctx()
st.title("Conversations & review")
if st.session_state.get("rv_flash"):
    st.success(st.session_state.pop("rv_flash"))

mode = st.radio("Find conversations", ["Review queue", "Search"], horizontal=True, key="rv_mode",
                help="The queue samples what most needs human eyes: uncertain classifier calls, alert examples, "
                     "and an equal share from every group.")
n_labels = data.labels_count(c.root)
candidates = pd.DataFrame()

if mode == "Review queue":
    items = review.queue_items(c.home, c.reviewer, limit=200)
    q1, q2 = st.columns([3, 1])
    q1.caption(f"{len(items)} queued item(s) you have not labelled yet.")
    if not c.read_only:
        size = q2.number_input("Items to add", min_value=5, max_value=500, value=50, step=5, key="rv_qsize")
        if q2.button("Refill the queue", key="rv_build"):
            try:
                if not c.reviewer:  # the audit log records who built the queue: like every action, it needs a name
                    raise ActionError("a reviewer name is required to refill the queue",
                                      "enter your name under Reviewer in the sidebar")
                res = review.build_queue(c.home, size=int(size), actor=c.reviewer)
                st.session_state["rv_flash"] = (f"Added {res.added} item(s) to the queue: "
                                                + ", ".join(f"{k} {v}" for k, v in res.by_reason.items()))
                st.rerun()
            except MonitorError as e:
                show_error(e)
    if not items:
        st.info("The queue is empty for you: press **Refill the queue** (needs scored turns: `monitor jobs run`).")
    else:
        q = pd.DataFrame(items)
        turns = guarded(data.turns_by_id, c.root, c.version, tuple(q["turn_id"]))
        if turns is not None and not turns.empty:
            candidates = q[["turn_id", "reason", "priority", "group_key", "n_labels"]].merge(turns, on="turn_id")
            st.dataframe(candidates[["reason", "priority", "group_key", "n_labels", "model", "user_message",
                                     "assistant_message", "refusal", "refusal_score", "prompt_harm_score"]],
                         hide_index=True, height=260,
                         column_config={"priority": st.column_config.NumberColumn(format="%.2f"),
                                        "refusal_score": st.column_config.NumberColumn(format="%.2f"),
                                        "prompt_harm_score": st.column_config.NumberColumn(format="%.2f")})
else:
    s1, s2, s3 = st.columns([3, 2, 2])
    text = s1.text_input("Text contains", key="rv_q", placeholder="words in the user or assistant message")
    models = data.models(c.root, c.version)
    model = s2.selectbox("Model", ["any"] + models, key="rv_model")
    # segment values with recent traffic, from the turn_count rollups: the window, at most its last SEGMENT_DAYS
    seg_start = max(c.start, c.end - dt.timedelta(days=SEGMENT_DAYS))
    segs = guarded(data.segment_values, c.root, c.version, seg_start, c.end, granularity=c.granularity)
    seg_opts = ["any"] + ([f"{a}={v}" for a, v in zip(segs["attribute"], segs["value"])] if segs is not None else [])
    seg = s3.selectbox("Segment", seg_opts, key="rv_seg",
                       help=f"Segment values with scored turns in the last {SEGMENT_DAYS} days of the time window "
                            "(at most), most traffic first.")
    t1, t2, t3, t4 = st.columns(4)
    refusal = t1.selectbox("Classifier says", ["any", "full_refusal", "partial_refusal", "compliance"], key="rv_ref")
    harm = t2.selectbox("Prompt", ["any", "harmful", "benign"], key="rv_harm")
    lo, hi = t3.slider("Refusal score", 0.0, 1.0, (0.0, 1.0), step=0.05, key="rv_score")
    labelled = t4.selectbox("Labelled", ["any", "yes", "no"], key="rv_lab")
    attr, val = seg.split("=", 1) if seg != "any" else ("", "")
    res = guarded(data.conversations, c.root, c.version, c.start, c.end, q=text.strip(),
                  model="" if model == "any" else model, attribute=attr, value=val,
                  refusal="" if refusal == "any" else refusal, prompt_harm="" if harm == "any" else harm,
                  min_score=lo, max_score=hi, labelled=labelled, limit=200, labels_count=n_labels)
    if res is not None:
        st.caption(f"{len(res)} conversation(s) shown (newest first, at most 200) in {c.window_label.lower()}.")
        if not res.empty:
            candidates = res
            st.dataframe(res[["ts", "model", "user_message", "assistant_message", "refusal", "refusal_score",
                              "prompt_harm", "prompt_harm_score", "n_labels", "feedback"]], hide_index=True,
                         height=300)

st.subheader("Label a conversation")
if candidates.empty:
    st.caption("Pick conversations above first.")
else:
    ids = candidates["turn_id"].tolist()
    tid = st.selectbox("Conversation", ids, key="rv_turn",
                       format_func=lambda t: f"{t[:10]}… " + str(
                           candidates.loc[candidates["turn_id"] == t, "user_message"].iloc[0])[:90])
    r = candidates[candidates["turn_id"] == tid].iloc[0]
    with st.container(border=True):
        def call(what: str, label, score, p: str) -> str:
            # The score job's language gate leaves a reply or prompt the classifiers cannot read without a label.
            if pd.isna(label):
                return f"{what} not scored (empty, or in a language the classifiers do not read)"
            return f"{what} classified {label} ({p} {score:.2f})"

        st.caption(f"turn {tid} · {r['model']} · {pd.Timestamp(r['ts']):%Y-%m-%d %H:%M} · "
                   + call("reply", r.get("refusal"), r.get("refusal_score"), "P(refusal)") + ", "
                   + call("prompt", r.get("prompt_harm"), r.get("prompt_harm_score"), "P(harmful)"))
        st.markdown(f"**User:** {r['user_message']}")
        st.markdown(f"**Assistant:** {r['assistant_message']}")
    existing = pd.DataFrame(review.labels(c.home, [tid]))
    if not existing.empty:
        st.caption(f"{len(existing)} reviewer(s) labelled this turn:")
        st.dataframe(existing.drop(columns=["id", "turn_id"]), hide_index=True)
    if can_act(c, "label"):
        if mode == "Search":
            st.caption("A search is not a random sample: labels made here are kept, shown and exported, but do not "
                       "measure the classifiers' error rates. The review queue's stratified items do.")
        yes_no = {"—": None, "yes": True, "no": False}
        with st.form("label_form", clear_on_submit=True):
            a1, a2, a3 = st.columns(3)
            correct = a1.radio("Is the classifier's refusal call right?", list(yes_no), horizontal=True,
                               key="lf_correct")
            true_ref = a2.selectbox("What the reply really is", ["—", *review.REFUSAL_LABELS], key="lf_refusal")
            prompt = a3.selectbox("Was the request harmful?", ["—", *review.PROMPT_LABELS], key="lf_prompt")
            b1, b2, b3 = st.columns(3)
            over = b1.radio("Over-refusal (benign request refused)?", list(yes_no), horizontal=True, key="lf_over")
            comply = b2.radio("Harmful compliance?", list(yes_no), horizontal=True, key="lf_comply")
            concern = b3.selectbox("Value concern", ["none", *review.VALUE_CONCERNS], key="lf_concern")
            note = st.text_area("Note", key="lf_note", height=70)
            if st.form_submit_button("Save label", type="primary", key="lf_save"):
                try:
                    review.add_label(c.home, tid, c.reviewer, refusal_correct=yes_no[correct],
                                     refusal_label=None if true_ref == "—" else true_ref,
                                     prompt_label=None if prompt == "—" else prompt, over_refusal=yes_no[over],
                                     harmful_compliance=yes_no[comply],
                                     value_concern=None if concern == "none" else concern, note=note,
                                     sample="targeted" if mode == "Search" else None)
                    st.session_state["rv_flash"] = f"Label saved for turn {tid} by {c.reviewer}."
                    st.rerun()
                except MonitorError as e:
                    show_error(e)

st.subheader("Agreement between reviewers")
all_labels = review.labels(c.home)
if not all_labels:
    st.caption("No labels yet.")
else:
    agr = pd.DataFrame(review.agreement(all_labels))
    # a statistic without enough overlap (no turn labelled twice; kappa needs two shared turns and some variation)
    # is not computed: '—', not None
    agr = as_text(agr, {"percent_agreement": "%.2f", "fleiss_kappa": "%.2f", "cohen_kappa_mean": "%.2f"})
    st.dataframe(agr, hide_index=True)
    st.caption(f"{len(all_labels)} label(s) on {len({l['turn_id'] for l in all_labels})} turn(s). Agreement counts "
               "only turns labelled by two or more reviewers; kappa corrects for agreement by chance "
               "(above 0.6 is usually read as substantial). '—': not computed: no turn has two labels for that "
               "question yet, or (kappa) fewer than two turns shared by a pair of reviewers or no variation in the "
               "answers.")
    st.subheader("Export labelled data")
    e1, e2 = st.columns(2)
    fmt = e1.radio("Format", ["jsonl", "parquet"], horizontal=True, key="rv_fmt")
    if e2.button("Prepare export", key="rv_export"):
        try:
            if not c.reviewer:  # the audit log records who took the labelled data away
                raise ActionError("a reviewer name is required to export labels",
                                  "enter your name under Reviewer in the sidebar")
            st.session_state["rv_export_data"] = (fmt, review.export_labels(c.home, fmt, c.reviewer))
        except MonitorError as e:
            show_error(e)
    prepared = st.session_state.get("rv_export_data")
    if prepared:
        pf, blob = prepared
        st.download_button(f"Download labels.{pf} ({len(blob):,} bytes)", blob, file_name=f"labels.{pf}",
                           mime="application/json" if pf == "jsonl" else "application/octet-stream",
                           key="rv_download")
