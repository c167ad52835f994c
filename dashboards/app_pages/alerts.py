"""Alerts: filter, read the evidence and the metric around the window, see example conversations, act, audit."""
import datetime as dt
import json

import pandas as pd
import streamlit as st

from dashboards import actions, charts, data
from dashboards.ui import can_act, chart, ctx, fmt_value, guarded, is_rate, metric_help, metric_name, show_error
from monitor.alerts.pipeline import scope_label
from monitor.alerts.rules import PIPELINE_KINDS, PIPELINE_METRICS, SEVERITY_RANK
from monitor.errors import MonitorError

ALL_MODELS = charts.ALL_MODELS


def pipeline_tiles(a: dict, ev: dict) -> list[tuple[str, str, str | None]]:
    """(label, value, help) tiles of a pipeline-health alert (no_data, job_failures, job_stuck, config_invalid,
    quarantine_share)."""
    if ev["kind"] == "no_data":
        clock = "ingested" if ev.get("clock") == "ingest" else "stamped (event time)"
        out = [("Silent for", f"{a['value']:.1f} h", f"Since the newest turn {clock}."),
               ("Limit", str(ev.get("max_silence")), "The rule's max_silence.")]
        if ev.get("expected_turns") is not None:
            weeks = ev.get("history_weeks")
            basis = (f"the same hours of the week over the previous {weeks:g} weeks" if ev.get("profile") ==
                     "hour_of_week" else f"the same hours of the day over the previous {ev.get('reference_days')} days"
                     + (f" ({weeks:g} weeks of history; a weekly profile needs more)" if weeks is not None else ""))
            out.append(("Turns expected meanwhile", f"{ev['expected_turns']:,.0f}",
                        f"What {basis} carried: a silence at hours that are always quiet pages nobody."))
        return out + [("Last turn", str(ev.get("last_event")), None), ("Last ingest", str(ev.get("last_ingest")), None)]
    if ev["kind"] == "job_failures":
        return [("Failed runs in a row", f"{ev.get('failures')}", None), ("Limit", f"{a['threshold']:.0f}", None),
                ("Last success", str(ev.get("last_success_at") or "never"), None)]
    if ev["kind"] == "config_invalid":
        return [("Invalid since", str(ev.get("since")), None),
                ("In use: the configuration read at", str(ev.get("running_on_config_read_at")),
                 "The last configuration that passed the checks; the broken edit is not in force."),
                ("File", str(ev.get("file")), None)]
    if ev["kind"] == "job_stuck":
        return [("Job", str(ev.get("job")), None),
                ("Running for", f"{a['value']:.2f} h", f"Since {ev.get('since')} (run {ev.get('run_id')})."),
                ("Limit", f"{a['threshold']:.2f} h", str(ev.get("limit_basis") or "") or None),
                ("Waiting behind it", ", ".join(ev.get("waiting") or []) or "none", None)]
    return [("Quarantined", f"{a['value']:.0%}", None), ("Records read", f"{int(a['n'] or 0):,}", None),
            ("Limit", f"{a['threshold']:.0%}", "The rule's max_share."), ("Since", str(ev.get("since")), None)]


def scope_of(a) -> str:
    """An alert's scope in a few words: model (or all models), deployment, segment; a pipeline alert's own."""
    def text(v):  # a table row holds NaN where the alert holds None
        return v if isinstance(v, str) and v else None

    if a["metric"] in PIPELINE_METRICS.values():
        return scope_label({"metric": a["metric"], "deployment": text(a.get("deployment")),
                            "segment": text(a["segment"]) or "{}"})
    seg = json.loads(text(a["segment"]) or "{}")
    dep = text(a.get("deployment"))
    return ", ".join([text(a["model"]) or ALL_MODELS] + ([f"deployment {dep}"] if dep else [])
                     + [data.segment_label(seg)])


def incident_of(a) -> str:
    """The incident an alert belongs to (its own id for an alert stored without one)."""
    return a["incident_key"] if isinstance(a.get("incident_key"), str) and a["incident_key"] else f"alert:{a['id']}"


def incidents(alerts: pd.DataFrame, prefer: tuple) -> pd.DataFrame:
    """One row per incident of the listed alerts (in their order: the most urgent first), shown by one of its
    alerts: the first of `prefer` (the linked, then the picked alert) that it holds, else its most urgent."""
    rows = []
    for _, g in alerts.assign(_inc=[incident_of(r) for _, r in alerts.iterrows()]).groupby("_inc", sort=False):
        shown = int(next((i for i in prefer if i in set(g["id"])), g["id"].iloc[0]))
        first = g[g["id"] == shown].iloc[0]
        counts = g["status"].value_counts()
        rows.append({"alert": shown, "severity": max(g["severity"], key=SEVERITY_RANK.get),
                     "status": ", ".join(f"{counts[s_]} {s_}" for s_ in STATUSES if s_ in counts),
                     "scopes": len(g), "rule": first["rule"], "metric": first["metric"],
                     "window_start": first["window_start"], "where": "; ".join(scope_of(r) for _, r in g.iterrows()),
                     "message": first["message"]})
    return pd.DataFrame(rows)


c = ctx()
st.title("Alerts")
if st.session_state.get("al_flash"):
    st.success(st.session_state.pop("al_flash"))

STATUSES = ["firing", "acknowledged", "silenced", "resolved"]
OPEN = ("firing", "acknowledged", "silenced")
# notification links carry ?alert_id=N (monitor.alerts.engine); ?alert=N is accepted too
wanted = str(st.query_params.get("alert_id") or st.query_params.get("alert") or "").strip()
wanted_id = int(wanted) if wanted.isdigit() else None
linked = data.alert(c.root, wanted_id) if wanted_id is not None else None
st.session_state.setdefault("al_status", ["firing", "acknowledged", "silenced"])
if linked is not None and st.session_state.get("_al_linked") != wanted_id:
    # a link to an alert the filters hide (e.g. a resolved one) widens them once, so the linked alert is the one
    # shown and acted on; the user's later filter changes are kept
    st.session_state["_al_linked"] = wanted_id
    widened = []
    if linked["status"] not in st.session_state["al_status"]:
        st.session_state["al_status"] = [s_ for s_ in STATUSES
                                         if s_ in st.session_state["al_status"] or s_ == linked["status"]]
        widened.append(f"status **{linked['status']}**")
    if st.session_state.get("al_sev") and linked["severity"] not in st.session_state["al_sev"]:
        st.session_state["al_sev"] = list(st.session_state["al_sev"]) + [linked["severity"]]
        widened.append(f"severity **{linked['severity']}**")
    if (st.session_state.get("al_metric") or "").strip() not in linked["metric"]:
        st.session_state["al_metric"] = ""
        widened.append("any metric")
    st.session_state["_al_widened"] = widened

f1, f2, f3 = st.columns([2, 2, 2])
status = f1.multiselect("Status", STATUSES, key="al_status")
severity = f2.multiselect("Severity", ["critical", "warning", "info"], key="al_sev")
metric_q = f3.text_input("Metric contains", key="al_metric", placeholder="e.g. over_refusal")
alerts = data.alerts(c.root, tuple(status), tuple(severity), metric_q.strip())
if wanted and linked is None:
    st.warning(f"The link asks for alert **#{wanted}**, which does not exist in this home (deleted, or a link "
               "from another home). Pick an alert below.")
elif linked is not None and st.session_state.get("_al_widened"):
    st.info(f"Showing alert #{wanted_id} from the link: the filters were widened to include "
            + ", ".join(st.session_state["_al_widened"]) + ".")

if alerts.empty:
    everything = data.alerts(c.root)
    if everything.empty:
        st.info("No alerts have fired. Alerts are raised by `monitor jobs run` (job `alerts`) or `monitor serve` "
                "when a rule in monitor.toml (or a default rule) is breached.")
    else:
        st.info(f"No alert matches these filters ({len(everything)} alerts in total): clear a filter.")
    st.stop()

# One regression breaches several scopes at once (all models, a model, a deployment, segments) and is notified as
# one message: by default the table lists incidents, and the actions below reach every open scope of one.
grouped = st.toggle("One row per incident", value=True, key="al_group",
                    # the actions' reach follows the view again: the incident when grouped, else one alert
                    on_change=lambda: st.session_state.pop("al_reach", None),
                    help="An incident is the alerts of one rule and metric breaching in the same window and "
                         "direction, notified as one message. Acknowledge, resolve or silence them all below.")
if grouped:
    picked = st.session_state.get("al_pick")
    show = incidents(alerts, tuple(i for i in (wanted_id if linked is not None else None, picked) if i is not None))
    st.dataframe(show, hide_index=True, height=min(38 + 35 * len(show), 300),
                 column_config={"alert": st.column_config.NumberColumn("alert", format="#%d",
                                                                       help="The alert shown for the incident")})
    ids = show["alert"].tolist()
    scopes = dict(zip(show["alert"], show["scopes"]))
else:
    show = alerts[["id", "severity", "status", "metric", "model", "segment", "window_start", "value", "n",
                   "assigned_to", "message"]].assign(
        # no model is an alert on every model pooled; no segment all traffic; nobody assigned is a blank cell
        model=alerts["model"].fillna(ALL_MODELS).replace("", ALL_MODELS),
        segment=[data.segment_label(json.loads(s_ or "{}")) for s_ in alerts["segment"]],
        assigned_to=alerts["assigned_to"].fillna(""))
    st.dataframe(show, hide_index=True, height=min(38 + 35 * len(show), 300),
                 column_config={"value": st.column_config.NumberColumn(format="%.3f")})
    ids = alerts["id"].tolist()
    scopes = {}


def pick_label(i: int) -> str:
    more = scopes.get(i, 1) - 1
    return (f"#{i}" + (f" + {more} more scope{'s' if more > 1 else ''}" if more else "") + ": "
            + alerts.loc[alerts["id"] == i, "message"].iloc[0][:120])


if linked is not None and wanted_id in ids:
    default = ids.index(wanted_id)
elif wanted:
    # the linked alert is missing or filtered out: never open another alert in its place (the form below would
    # act on it); the user picks one
    default = None
    if linked is not None:
        st.warning(f"Alert #{wanted_id} from the link is hidden by the filters above ({linked['status']}, "
                   f"{linked['severity']}): add them back to see it, or pick another alert.")
else:
    default = 0
alert_id = st.selectbox("Incident" if grouped else "Alert", ids, index=default, key="al_pick",
                        placeholder="Pick an alert", format_func=pick_label)
if alert_id is None:
    st.stop()
if wanted and str(alert_id) != wanted:
    st.query_params["alert_id"] = str(alert_id)  # the address names the alert shown, so a copied link opens it
a = data.alert(c.root, alert_id)
seg = json.loads(a["segment"] or "{}")
evidence = json.loads(a["evidence"] or "{}")

st.subheader(f"#{a['id']} {metric_name(a['metric'])}", help=metric_help(a["metric"]))
st.markdown(f"**{a['severity'].upper()}** · status **{a['status']}**"
            + (f" · acknowledged by {a['acknowledged_by']}" if a.get("acknowledged_by") else "")
            + (f" · assigned to {a['assigned_to']}" if a.get("assigned_to") else "")
            + (f" · silenced until {a['silenced_until']}" if a.get("silenced_until") else "")
            + (" · backfill (never paged)" if a.get("backfill") else ""))
st.code(a["message"], language=None)
members = actions.incident(c.home, alert_id)
open_members = [m for m in members if m["status"] in OPEN]
if len(members) > 1:
    st.markdown(f"**Incident** `{a['incident_key']}`: {len(members)} scopes, {len(open_members)} open; one "
                "notification listed them")
    st.dataframe(pd.DataFrame([{"alert": m["id"], "status": m["status"], "severity": m["severity"],
                                "scope": scope_of(m), "value": m["value"],
                                "acknowledged_by": m.get("acknowledged_by") or ""} for m in members]),
                 hide_index=True, key="al_members",
                 column_config={"value": st.column_config.NumberColumn(format="%.3f"),
                                "alert": st.column_config.NumberColumn(format="#%d")})
pipeline = evidence.get("kind") in PIPELINE_KINDS
if pipeline:
    # The monitor's own input or jobs, not the assistant: no metric series, interval or conversations behind it.
    tiles = st.container(horizontal=True, wrap=True, gap="medium")
    for label, text, tip in pipeline_tiles(a, evidence):
        tiles.metric(label, text, width="content", help=tip)
    if evidence.get("check"):
        st.info(f"**What to check:** {evidence['check']}.")
else:
    f = a["metric"]  # rates as percentages; value scores and drift statistics as numbers
    # disparity rules record no reference or threshold on the alert: the metric row has the reference group's numbers
    ref = guarded(data.alert_reference, c.root, c.version, a) if a["reference"] is None else {}
    ref = ref or {}
    # tiles in a wrapping row: each as wide as its text, so "26.6%–49.1%" is never cut to "26.…" on a narrow screen
    tiles = st.container(horizontal=True, wrap=True, gap="medium")
    tiles.metric("Value", fmt_value(f, a["value"]), width="content")
    tiles.metric("95% interval", f"{fmt_value(f, a['ci_low'])}–{fmt_value(f, a['ci_high'])}", width="content")
    tiles.metric("n", f"{int(a['n']):,}" if a.get("n") is not None else "n/a", width="content")
    if a["reference"] is not None:
        tiles.metric("Reference", fmt_value(f, a["reference"]), width="content")
    elif ref:
        tiles.metric(f"Reference ({ref['label']})", fmt_value(f, ref["rate"]), width="content",
                     help="The rate (or mean) of everyone outside the group in the same window: what the gap is "
                          "measured against.")
        tiles.metric("Reference n", f"{int(ref['n']):,}" if ref.get("n") is not None else "n/a", width="content")
    else:
        tiles.metric("Reference", "none", width="content", help="This rule compares with no reference.")
    if a["threshold"] is not None:
        tiles.metric("Threshold", fmt_value(f, a["threshold"]), width="content")
    elif ref.get("gap") is not None or evidence.get("gap") is not None:
        gap = ref.get("gap") if ref.get("gap") is not None else evidence.get("gap")
        tiles.metric("Gap", (f"{gap * 100:+.1f} pts" if is_rate(f) else f"{gap:+.3f}"), width="content",
                     help="Group minus reference. A disparity alert fires on a significant adverse gap (q-value below "
                          "the false discovery rate), not on a fixed threshold.")
with st.expander("Evidence (as recorded by the rule)"):
    st.json(evidence)

if not pipeline:
    # the metric around the window: two weeks either side, same model and segment
    ws = pd.Timestamp(a["window_start"].rstrip("Z")).to_pydatetime()
    rows = guarded(data.metric_rows, c.root, c.version, (a["metric"],), ws - dt.timedelta(days=14),
                   ws + dt.timedelta(days=14), granularity=a.get("granularity") or "day", details=False)
    if rows is not None:
        # the alert's own series: same model, deployment and segment (the metric job writes one row per combination)
        series = rows[(rows["segment_obj"].map(lambda s: s == seg))
                      & (rows["model"].fillna("") == (a["model"] or ""))
                      & (rows["deployment"].fillna("") == (a.get("deployment") or ""))]
        drawn = a if a["reference"] is not None or not ref else {**a, "reference": ref["rate"]}
        chart(charts.alert_context(series, drawn, c.colors, percent=is_rate(a["metric"]),
                                   title=f"{metric_name(a['metric'])} around the alert window"), key="al_ctx")

    st.subheader("Example conversations")
    ex_ids = tuple(str(i) for i in (evidence.get("example_turn_ids") or []))
    we = pd.Timestamp(a["window_end"].rstrip("Z")).to_pydatetime()
    # examples come from the alert's window: look there first (one day's files), then in the two weeks either side
    # shown in the chart; never the whole lake, which costs ~1 s of scanning on a million turns
    ex = guarded(data.turns_by_id, c.root, c.version, ex_ids, f"{ws:%Y-%m-%d}", f"{we:%Y-%m-%d}") if ex_ids \
        else pd.DataFrame()
    if ex_ids and ex is not None and len(ex) < len(ex_ids):
        ex = guarded(data.turns_by_id, c.root, c.version, ex_ids, f"{ws - dt.timedelta(days=14):%Y-%m-%d}",
                     f"{we + dt.timedelta(days=14):%Y-%m-%d}")
    # Without recorded examples: the conversations counted in the alert's numerator, from its window, model,
    # deployment and segment (e.g. under-refusal: harmful requests the assistant complied with).
    BEHIND = {"over_refusal_rate": ("benign", "yes", "benign requests the assistant refused"),
              "under_refusal_rate": ("harmful", "no", "harmful requests the assistant complied with"),
              "refusal_rate": ("", "yes", "replies that refuse")}
    if ex is None or ex.empty:
        base = a["metric"].removeprefix("probe_").replace("_disparity", "_rate")
        harm, refused, what = BEHIND.get(base, ("", "", "conversations"))
        st.caption(f"The rule recorded no example turns; {what} in that window"
                   + (f" ({', '.join(f'{k}={v}' for k, v in seg.items() if k != 'dimension')})" if seg else "") + ":")
        attr, val = next(((k, v) for k, v in seg.items() if k != "dimension"), ("", ""))
        # end dates are inclusive: the last microsecond of the window keeps the next day's files out
        ex = guarded(data.conversations, c.root, c.version, ws, we - dt.timedelta(microseconds=1),
                     model=a["model"] or "", attribute=attr, value=str(val), prompt_harm=harm, refused=refused,
                     deployment=a.get("deployment") or "", limit=10)
    if ex is not None and not ex.empty:
        for _, r in ex.head(10).iterrows():
            with st.container(border=True):
                st.caption(f"turn {r['turn_id']} · {r['model']} · {r['ts']:%Y-%m-%d %H:%M} · reply classified "
                           f"{r.get('refusal')} (P(refusal) {r.get('refusal_score', float('nan')):.2f}), prompt "
                           f"{r.get('prompt_harm')} (P(harmful) {r.get('prompt_harm_score', float('nan')):.2f})")
                st.markdown(f"**User:** {r['user_message']}")
                st.markdown(f"**Assistant:** {r['assistant_message']}")
    else:
        st.caption("No conversations found for this alert's window.")

st.subheader("Act on this alert")
if can_act(c, "acknowledge, resolve, silence, comment or assign"):
    with st.form("alert_actions", clear_on_submit=True):
        note = st.text_input("Note (recorded with the action)", key="al_note")
        x1, x2 = st.columns(2)
        assignee = x1.text_input("Assign to", key="al_assignee", placeholder="reviewer name")
        hours = x2.number_input("Silence for (hours)", min_value=1, max_value=24 * 90, value=24, key="al_hours")
        comment = st.text_area("Comment", key="al_comment", height=80)
        others = [m for m in open_members if m["id"] != alert_id]
        reach = "alert"
        if others:
            # the whole incident by default when the table lists incidents; assign and comment are per alert
            n_open = len(others) + (a["status"] in OPEN)
            reach = st.radio("Acknowledge, resolve or silence", ["incident", "alert"], index=0 if grouped else 1,
                             key="al_reach", horizontal=True,
                             format_func=lambda r: (f"the whole incident ({n_open} open alert{'s' * (n_open > 1)})"
                                                    if r == "incident" else f"this alert only (#{alert_id})"),
                             help="Each alert acted on gets its own audit entry under your name.")
        b = st.columns(5)
        pressed = {
            "ack": b[0].form_submit_button("Acknowledge", key="al_ack", type="primary"),
            "resolve": b[1].form_submit_button("Resolve", key="al_resolve"),
            "silence": b[2].form_submit_button("Silence", key="al_silence"),
            "assign": b[3].form_submit_button("Assign", key="al_assign"),
            "comment": b[4].form_submit_button("Comment", key="al_comment_btn"),
        }
    for action, hit in pressed.items():
        if not hit:
            continue
        try:
            until = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(hours=int(hours))
            if action == "assign" and not assignee.strip():
                raise actions.ActionError("enter a name under 'Assign to' first")
            whole = reach == "incident" and action in actions.INCIDENT_ACTIONS
            reached = [m["id"] for m in members if m["id"] != alert_id
                       and m["status"] in actions.INCIDENT_ACTIONS.get(action, ())] if whole else []
            actions.act(c.home, action, alert_id, c.reviewer, note=note or None, until=until,
                        assignee=assignee.strip() or None, body=comment, incident=whole)
            done = {"ack": "Acknowledged", "resolve": "Resolved", "silence": f"Silenced for {int(hours)} h",
                    "assign": f"Assigned to {assignee.strip()}", "comment": "Commented on"}[action]
            st.session_state["al_flash"] = f"{done}: alert #{alert_id}" + (
                f" and {len(reached)} more of its incident ({', '.join(f'#{i}' for i in reached)})" if reached
                else "") + f", by {c.reviewer}."
            st.rerun()
        except MonitorError as e:
            show_error(e)

comments = data.alert_comments(c.root, alert_id)
if not comments.empty:
    st.subheader("Comments")
    st.dataframe(comments, hide_index=True)
st.subheader("Audit trail")
trail = data.audit_trail(c.root, f"alert:{alert_id}")
if trail.empty:
    st.caption("No action recorded on this alert yet.")
else:
    st.dataframe(trail, hide_index=True)
