"""AppTest smoke and behaviour tests for every dashboard page, on a synthetic home and on an empty one."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from monitor.db import connect

APP = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
PAGES = ["app_pages/overview.py", "app_pages/alerts.py", "app_pages/refusals.py", "app_pages/values.py", "app_pages/disparity.py",
         "app_pages/review.py", "app_pages/sql.py", "app_pages/settings.py"]


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    from dashboards.sample import build_sample_home

    return str(build_sample_home(tmp_path_factory.mktemp("dash") / "home", n_turns=2500, days=14, seed=1).root)


def open_page(monkeypatch, root, page=None, reviewer=None) -> AppTest:
    monkeypatch.setenv("MONITOR_HOME", str(root))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    if reviewer:
        at.sidebar.text_input(key="reviewer").input(reviewer)
        at.run()
    if page and page != PAGES[0]:
        at.switch_page(page)
        at.run()
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_sample_home(monkeypatch, sample_root, page):
    at = open_page(monkeypatch, sample_root, page)
    no_exception(at)
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_empty_home_with_next_step(monkeypatch, tmp_path, page):
    from monitor.home import Home

    Home.open(tmp_path / "empty")
    at = open_page(monkeypatch, tmp_path / "empty", page)
    no_exception(at)
    if page in ("app_pages/overview.py", "app_pages/alerts.py", "app_pages/refusals.py", "app_pages/values.py",
                "app_pages/disparity.py"):
        assert "monitor jobs run" in texts(at) or "monitor ingest" in texts(at)


def test_overview_draws_rates_with_intervals_and_tradeoff(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root)
    no_exception(at)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = " ".join(str(s["layout"].get("title", {}).get("text", "")) for s in specs)
    assert "trade-off" in titles and "Volume" in titles and "feedback" in titles
    overunder = next(s for s in specs if any("Over-refusal" in str(a.get("text")) for a in
                                             s["layout"].get("annotations", [])))
    # each model version has a shaded interval band and its own fixed colour, in both panels
    bands = [t for t in overunder["data"] if t.get("fill") == "tonexty"]
    lines = [t for t in overunder["data"] if t.get("mode") == "lines+markers"]
    assert len(bands) == len(lines) == 4
    assert {t["name"] for t in lines} == {"assistant-v1", "assistant-v2"}
    colors = {t["name"]: t["line"]["color"] for t in lines}
    assert colors["assistant-v1"] != colors["assistant-v2"]
    open_alerts = next(m for m in at.metric if m.label == "Open alerts")
    assert open_alerts.value == "2"


def test_acknowledge_records_reviewer_and_audit(monkeypatch, tmp_path):
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=800, days=6, seed=2)
    at = open_page(monkeypatch, home.root, "app_pages/alerts.py")
    no_exception(at)
    # no reviewer name: actions are not offered, the page says why
    assert not [b for b in at.button if b.key == "al_ack"]
    assert "Reviewer" in texts(at)
    at = open_page(monkeypatch, home.root, "app_pages/alerts.py", reviewer="Ana Reviewer")
    first = at.selectbox(key="al_pick").value
    at.text_input(key="al_note").input("looking into the hi spike")
    at.button(key="al_ack").click()
    at.run()
    no_exception(at)
    row = home.state.query("SELECT status, acknowledged_by, ack_note FROM alerts WHERE id=?", (first,))[0]
    assert row == {"status": "acknowledged", "acknowledged_by": "Ana Reviewer", "ack_note": "looking into the hi spike"}
    audit = home.state.query("SELECT actor, action FROM audit_log WHERE target=? AND action='alert.ack'",
                             (f"alert:{first}",))
    assert audit == [{"actor": "Ana Reviewer", "action": "alert.ack"}]
    assert "Acknowledged: alert" in " ".join(s.value for s in at.success)
    # the audit trail on the page shows it
    trail = at.dataframe[-1].value
    assert "alert.ack" in set(trail["action"]) and "Ana Reviewer" in set(trail["actor"])
    # comment and assign go through the same lifecycle and are audited too
    at.text_input(key="al_assignee").input("Bo")
    at.button(key="al_assign").click()
    at.run()
    at.text_area(key="al_comment").input("escalated to policy")
    at.button(key="al_comment_btn").click()
    at.run()
    no_exception(at)
    row = home.state.query("SELECT assigned_to FROM alerts WHERE id=?", (first,))[0]
    assert row["assigned_to"] == "Bo"
    body = home.state.query("SELECT author, body FROM alert_comments WHERE alert_id=?", (first,))
    assert body == [{"author": "Ana Reviewer", "body": "escalated to policy"}]


def test_an_incident_is_one_row_and_acknowledged_in_one_action(monkeypatch, tmp_path):
    """One regression breaching four scopes (all models, a model, its deployment, a segment): one row, one click."""
    from test_notify_incidents import DAY3, home_with, run

    home = home_with(tmp_path, [])
    run(home, DAY3)
    scopes = home.state.query("SELECT id, incident_key FROM alerts ORDER BY id")
    assert len(scopes) == 4 and len({s["incident_key"] for s in scopes}) == 1
    at = open_page(monkeypatch, home.root, "app_pages/alerts.py", reviewer="Ana Reviewer")
    no_exception(at)
    assert at.toggle(key="al_group").value is True
    table = at.dataframe[0].value
    assert len(table) == 1 and table["scopes"].tolist() == [4] and table["status"].tolist() == ["4 firing"]
    assert "language=hi" in table["where"].iloc[0] and "deployment unknown" in table["where"].iloc[0]
    members = next(d.value for d in at.dataframe if "scope" in d.value.columns)
    assert sorted(members["alert"]) == [s["id"] for s in scopes]
    assert at.radio(key="al_reach").value == "incident"
    shown = at.selectbox(key="al_pick").value
    at.text_input(key="al_note").input("rollback under way")
    at.button(key="al_ack").click()
    at.run()
    no_exception(at)
    rows = home.state.query("SELECT status, acknowledged_by, ack_note FROM alerts")
    assert rows == [{"status": "acknowledged", "acknowledged_by": "Ana Reviewer", "ack_note": "rollback under way"}] * 4
    audit = home.state.query("SELECT actor, target, details FROM audit_log WHERE action='alert.ack' ORDER BY id")
    assert [a["actor"] for a in audit] == ["Ana Reviewer"] * 4  # one entry per alert, each under the reviewer
    assert {json.loads(a["details"]).get("via") for a in audit if a["target"] != f"alert:{shown}"} == {shown}
    others = ", ".join(f"#{s['id']}" for s in scopes if s["id"] != shown)
    assert f"Acknowledged: alert #{shown} and 3 more of its incident ({others}), by Ana Reviewer." in \
        " ".join(s.value for s in at.success)
    # One row per alert instead: an action reaches the picked alert only, unless asked for the whole incident.
    at.toggle(key="al_group").set_value(False)
    at.run()
    assert len(at.dataframe[0].value) == 4 and at.radio(key="al_reach").value == "alert"
    at.selectbox(key="al_pick").set_value(scopes[0]["id"])
    at.run()
    at.number_input(key="al_hours").set_value(2)
    at.button(key="al_silence").click()
    at.run()
    no_exception(at)
    assert [r["status"] for r in home.state.query("SELECT status FROM alerts ORDER BY id")] == \
        ["silenced", "acknowledged", "acknowledged", "acknowledged"]
    at.radio(key="al_reach").set_value("incident")
    at.button(key="al_resolve").click()
    at.run()
    no_exception(at)
    assert {(r["status"], r["resolved_by"]) for r in home.state.query("SELECT * FROM alerts")} == {
        ("resolved", "Ana Reviewer")}


def test_alert_page_shows_evidence_chart_and_examples(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/alerts.py")
    no_exception(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    shapes = spec["layout"].get("shapes", [])
    assert any(s.get("type") == "rect" for s in shapes), "alert window not shaded"
    assert any(s.get("type") == "line" for s in shapes), "threshold/reference line missing"
    assert "**User:**" in texts(at)


def test_a_pipeline_health_alert_says_what_to_check_and_is_acknowledged_like_any_other(monkeypatch, tmp_path):
    import datetime as dt

    from dashboards.sample import build_sample_home
    from monitor.alerts.pipeline import check
    from monitor.errors import StorageError
    from monitor.jobs import Job, run_job

    home = build_sample_home(tmp_path / "h", n_turns=800, days=6, seed=3)

    def broken(ctx):
        raise StorageError("cannot write to the lake at /srv/monitor/lake: [Errno 28] No space left on device")
    for _ in range(3):
        run_job(home, Job("score", broken))
    assert check(home, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).new == 1
    [pid] = [r["id"] for r in home.state.query("SELECT id FROM alerts WHERE rule='job_failures'")]
    at = open_page(monkeypatch, home.root, "app_pages/alerts.py", reviewer="Ana Reviewer")
    at.selectbox(key="al_pick").set_value(pid)
    at.run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Failed runs in a row"] == "3" and tiles["Limit"] == "3"
    assert "monitor jobs run score" in " ".join(i.value for i in at.info)  # what to check, not a metric chart
    assert not at.get("plotly_chart") and "**User:**" not in texts(at)
    at.button(key="al_ack").click()
    at.run()
    no_exception(at)
    assert home.state.query("SELECT status, acknowledged_by FROM alerts WHERE id=?", (pid,)) == [
        {"status": "acknowledged", "acknowledged_by": "Ana Reviewer"}]


def test_labelling_writes_a_label(monkeypatch, tmp_path):
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=800, days=6, seed=4)
    at = open_page(monkeypatch, home.root, "app_pages/review.py", reviewer="Cy")
    at.button(key="rv_build").click()
    at.run()
    no_exception(at)
    assert home.state.query("SELECT count(*) AS n FROM review_queue")[0]["n"] == 50
    tid = at.selectbox(key="rv_turn").value
    at.selectbox(key="lf_refusal").select("full_refusal")
    at.selectbox(key="lf_prompt").select("benign")
    at.radio(key="lf_over").set_value("yes")
    at.text_area(key="lf_note").input("benign cooking question refused")
    at.button(key="lf_save").click()
    at.run()
    no_exception(at)
    rows = home.state.query("SELECT turn_id, reviewer, refusal_label, prompt_label, over_refusal, note, sample"
                            " FROM labels")
    assert rows == [{"turn_id": tid, "reviewer": "Cy", "refusal_label": "full_refusal", "prompt_label": "benign",
                     "over_refusal": 1, "note": "benign cooking question refused", "sample": None}]
    assert home.state.query("SELECT actor FROM audit_log WHERE action='label.add'") == [{"actor": "Cy"}]
    # the labelled item leaves Cy's queue; the agreement table and the export appear
    assert tid not in {i for i in at.selectbox(key="rv_turn").options}
    at.button(key="rv_export").click()
    at.run()
    no_exception(at)
    assert at.get("download_button")
    assert home.state.query("SELECT actor FROM audit_log WHERE action='labels.export'") == [{"actor": "Cy"}]


def test_a_label_made_from_a_search_is_marked_targeted(monkeypatch, tmp_path):
    """A search is not a random sample: its labels must not measure the classifiers (labels.sample = 'targeted')."""
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=300, days=3, seed=6)
    at = open_page(monkeypatch, home.root, "app_pages/review.py", reviewer="Cy")
    at.radio(key="rv_mode").set_value("Search")
    at.run()
    assert any("not a random sample" in c.value for c in at.caption)
    tid = at.selectbox(key="rv_turn").value
    at.selectbox(key="lf_prompt").select("harmful")
    at.button(key="lf_save").click()
    at.run()
    no_exception(at)
    assert home.state.query("SELECT turn_id, sample FROM labels") == [{"turn_id": tid, "sample": "targeted"}]


def test_label_export_needs_a_reviewer_name(monkeypatch, tmp_path):
    """The export is audited by name, like every other action: without one it is refused, not logged as 'dashboard'."""
    from dashboards.sample import build_sample_home
    from monitor import review

    home = build_sample_home(tmp_path / "h", n_turns=300, days=3, seed=5)
    con = connect(home)
    tid = con.execute("SELECT turn_id FROM turns LIMIT 1").fetchone()[0]
    con.close()
    review.add_label(home, tid, "Cy", refusal_label="compliance")  # the export section shows once a label exists
    at = open_page(monkeypatch, home.root, "app_pages/review.py", reviewer="")
    at.button(key="rv_export").click()
    at.run()
    no_exception(at)
    assert not at.get("download_button")
    assert "reviewer name is required to export" in " ".join(e.value for e in at.error)
    assert home.state.query("SELECT actor FROM audit_log WHERE action='labels.export'") == []


def test_search_filters_conversations(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/review.py")
    at.radio(key="rv_mode").set_value("Search")
    at.run()
    at.text_input(key="rv_q").input("pipe bomb")
    at.run()
    no_exception(at)
    df = at.dataframe[0].value
    assert len(df) > 0 and df["user_message"].str.contains("pipe bomb").all()
    at.selectbox(key="rv_ref").select("compliance")
    at.run()
    df = at.dataframe[0].value
    assert len(df) > 0 and (df["refusal"] == "compliance").all()


def test_sql_page_refuses_drop_and_marks_truncated(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/sql.py")
    no_exception(at)
    at.text_area(key="sq_sql").input("DROP TABLE turns")
    at.button(key="sq_run").click()
    at.run()
    no_exception(at)
    assert at.error and "refused" in at.error[0].value.lower()
    at.text_area(key="sq_sql").input("SELECT turn_id FROM turns")
    at.number_input(key="sq_limit").set_value(25)
    at.button(key="sq_run").click()
    at.run()
    no_exception(at)
    assert any("truncated" in w.value for w in at.warning)
    assert len(at.dataframe[-1].value) == 25
    # a named parameter becomes an input field
    at.text_area(key="sq_sql").input("SELECT count(*) AS n FROM turns WHERE model = $model")
    at.run()
    at.text_input(key="sq_param_model").input("assistant-v1")
    at.button(key="sq_run").click()
    at.run()
    no_exception(at)
    assert int(at.dataframe[-1].value["n"][0]) > 0


def test_read_only_role_hides_actions(monkeypatch, tmp_path):
    from dashboards.sample import build_sample_home

    root = tmp_path / "h"
    root.mkdir()
    (root / "monitor.toml").write_text("[dashboard]\nread_only = true\n")
    home = build_sample_home(root, n_turns=600, days=5, seed=5)
    for page, key in (("app_pages/alerts.py", "al_ack"), ("app_pages/review.py", "rv_build")):
        at = open_page(monkeypatch, home.root, page, reviewer="Dee")
        no_exception(at)
        assert not [b for b in at.button if b.key == key]
    at = open_page(monkeypatch, home.root, "app_pages/settings.py")
    df = at.dataframe[0].value
    row = df[df["key"] == "dashboard.read_only"].iloc[0]
    assert row["value"] == "true" and row["from"].endswith("monitor.toml")


def test_password_gate(monkeypatch, tmp_path):
    from monitor.home import Home

    root = tmp_path / "h"
    root.mkdir()
    (root / "monitor.toml").write_text('[dashboard]\npassword_env = "DASH_PW_TEST"\n')
    Home.open(root)
    monkeypatch.setenv("DASH_PW_TEST", "s3cret")
    at = open_page(monkeypatch, root)
    no_exception(at)
    assert [t.label for t in at.text_input] == ["Dashboard password"] and not at.get("plotly_chart")
    at.text_input[0].input("wrong")
    at.button[0].click()
    at.run()
    assert at.error and "Wrong password" in at.error[0].value
    at.text_input[0].input("s3cret")
    at.button[0].click()
    at.run()
    no_exception(at)
    assert at.title[0].value == "Overview"


def test_disparity_page_shows_probes_beside_production(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/disparity.py")
    no_exception(at)
    # probe rows (probe_over_refusal_disparity) are matched to their production metric, not listed apart
    box = at.selectbox(key="dp_metric")
    assert box.value == "over_refusal_disparity" and box.options == ["Over-refusal gap between groups"]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("Production traffic") for t in titles)
    assert any(t.startswith("Probes by ") for t in titles)
    table = at.dataframe[0].value
    assert set(table["source"]) == {"production", "probe"}
    probe_hi = table[(table["source"] == "probe") & (table["group"] == "hi")]
    assert len(probe_hi) == 1


def test_values_page_drift_table_and_dimension_filter(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/values.py")
    no_exception(at)
    at.selectbox(key="vd_model").select("assistant-v2")
    at.run()
    verdicts = next(d.value for d in at.dataframe if "statistic_name" in d.value.columns)
    row = verdicts[verdicts["dimension"] == "moralizing"].iloc[0]
    assert row["drift"] == "DRIFT" and row["direction"] == "up" and row["reference"].startswith("previous_days")
    # the evidence picker lists the dimension that drifted first
    assert at.selectbox(key="vd_edim").options[0] == "moralizing"


def test_values_page_opens_on_the_version_serving_most_replies_now(monkeypatch, sample_root):
    """After a rollout the old version's recent windows are too small to test: the page starts on the busy one."""
    from monitor.db import connect
    from monitor.home import Home

    con = connect(Home.open(sample_root))
    try:
        busiest = con.execute(
            "SELECT model FROM metrics WHERE metric = 'value_mean' AND model IS NOT NULL AND window_start = "
            "(SELECT max(window_start) FROM metrics WHERE metric = 'value_mean') ORDER BY n DESC, model LIMIT 1"
        ).fetchone()[0]
    finally:
        con.close()
    at = open_page(monkeypatch, sample_root, "app_pages/values.py")
    no_exception(at)
    options = at.selectbox(key="vd_model").options
    assert at.selectbox(key="vd_model").value == busiest and options.index(busiest) > 0


def test_overview_renders_when_every_turn_is_gone_but_metrics_remain(monkeypatch, tmp_path):
    """A home whose turns were all deleted (retention, erasure) still has metric rows: 'never', not a NaT crash."""
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=200, days=2, seed=8)
    with home.lake.transaction() as tx:
        tx.remove("turns", [e["path"] for e in tx.manifest["tables"]["turns"]])
    at = open_page(monkeypatch, home.root)
    no_exception(at)
    fresh = next(d.value for d in at.dataframe if "what" in d.value.columns)
    assert fresh.loc[fresh["what"] == "newest event (turn timestamp)", "when (UTC)"].iloc[0] == "never"


def test_every_dashboard_sql_file_documents_its_parameters():
    from monitor.resources import load_sql

    files = sorted((Path(APP).parents[1] / "sql" / "dashboard").glob("*.sql"))
    assert len(files) >= 10
    for path in files:
        f = load_sql(f"dashboard/{path.name}")
        assert f.header and "Columns" in f.header, path.name
        for p in f.params:
            assert f"${p}" in f.header, f"{path.name}: ${p} not described in the header"


@pytest.mark.parametrize("metric", [
    "refusal_rate", "over_refusal_rate", "under_refusal_rate", "partial_refusal_share", "thumbs_down_rate",
    "turn_count", "value_mean", "value_coverage", "value_drift", "topic_drift", "prompt_mix_drift",
    "language_mismatch_rate", "over_refusal_disparity", "under_refusal_disparity", "refusal_disparity",
    "value_disparity", "probe_over_refusal_disparity", "probe_value_disparity"])
def test_every_job_metric_has_a_plain_name_and_help(metric):
    from dashboards.ui import metric_help, metric_name

    assert metric_name(metric) != metric and "_" not in metric_name(metric)
    assert len(metric_help(metric)) > 30 and metric_help(metric)[0].isupper()
    if metric.startswith("probe_"):
        assert "probe" in metric_name(metric).lower() and "probe" in metric_help(metric).lower()


def test_highlight_bolds_matched_spans():
    from dashboards.data import highlight

    text = "You should really consider it; you must."
    spans = [{"term": "must", "span_start": 35, "span_end": 39}, {"term": "should", "span_start": 4, "span_end": 10},
             {"term": "shoul*", "span_start": 4, "span_end": 9}]  # overlapping spans are merged left to right
    assert highlight(text, spans) == "You **should** really consider it; you **must**."
    assert highlight(text, None) == text and highlight("", []) == ""


def test_rates_as_percentages_scores_as_numbers():
    from dashboards.ui import fmt_value

    assert fmt_value("over_refusal_rate", 0.123) == "12.3%" and fmt_value("probe_refusal_disparity", 0.5) == "50.0%"
    assert fmt_value("value_drift", 0.566) == "0.566" and fmt_value("value_disparity", 1.25) == "1.250"
    assert fmt_value("value_mean", None) == "n/a" and fmt_value("refusal_rate", float("nan")) == "n/a"


# -- page-view queries read the metric rollups, not raw turns ---------------------------------------------------
D0 = __import__("datetime").datetime(2026, 11, 10)


def _metric_row(metric, day, n, model=None, segment="{}", numerator=None, deployment=None, run="r1", hours=None):
    import datetime as dt

    ws = D0 + dt.timedelta(days=day, hours=hours or 0)
    k = n if numerator is None else numerator
    return {"metric": metric, "granularity": "day" if hours is None else "hour", "window_start": ws,
            "window_end": ws + (dt.timedelta(days=1) if hours is None else dt.timedelta(hours=1)), "model": model,
            "deployment": deployment, "segment": segment, "value": (k / n) if n else None, "n": n,
            "numerator": float(k), "job": "test", "run_id": run, "family": "refusal",
            # a later run is computed later: the latest row per key wins
            "computed_at": D0 + dt.timedelta(days=30, hours=int(run[1:]))}


def _rollup_home(tmp_path, rows):
    import pyarrow as pa

    from monitor.home import Home

    home = Home.open(tmp_path / "home")
    home.lake.append("metrics_log", pa.Table.from_pylist(rows))
    return home


def test_volume_sums_latest_all_traffic_turn_count_and_feedback_rows(tmp_path):
    import datetime as dt

    from dashboards import data

    rows = [
        _metric_row("turn_count", 0, 10, "A"), _metric_row("turn_count", 0, 5, "B"),
        _metric_row("turn_count", 1, 7, "A"), _metric_row("turn_count", 1, 9, "A", run="r2"),  # recomputed: 9
        _metric_row("turn_count", 2, 3, "B"), _metric_row("turn_count", 2, 0, "B", run="r2"),  # retired: nothing
        _metric_row("turn_count", 0, 4, "A", segment='{"language": "hi"}'),  # a segment, not all traffic
        _metric_row("turn_count", 0, 6, "A", deployment="prod-eu"),  # one deployment, not all
        _metric_row("turn_count", 0, 15),  # all models: the per-model rows already hold it
        _metric_row("turn_count", 5, 100, "A"),  # after the window
        _metric_row("turn_count", 0, 1, "A", hours=0), _metric_row("turn_count", 0, 2, "A", hours=5),  # hourly
        _metric_row("thumbs_down_rate", 0, 8, "A", numerator=2),  # 8 rated: 2 down, 6 up
        _metric_row("refusal_rate", 0, 10, "A", numerator=4),
    ]
    home = _rollup_home(tmp_path, rows)
    root, version = str(home.root), data.lake_version(str(home.root))
    vol = data.volume(root, version, D0, D0 + dt.timedelta(days=3))
    got = [(f"{r.day:%Y-%m-%d}", r.model, r.turns, r.thumbs_up, r.thumbs_down) for r in vol.itertuples()]
    assert got == [("2026-11-10", "A", 10, 6, 2), ("2026-11-10", "B", 5, 0, 0), ("2026-11-11", "A", 9, 0, 0)]
    # hourly windows add up to their day
    hourly = data.volume(root, version, D0, D0 + dt.timedelta(days=3), granularity="hour")
    assert [(f"{r.day:%Y-%m-%d}", r.model, r.turns) for r in hourly.itertuples()] == [("2026-11-10", "A", 3)]


def test_segment_values_sum_recent_single_attribute_turn_counts(tmp_path):
    import datetime as dt

    from dashboards import data

    rows = [
        _metric_row("turn_count", 0, 4, segment='{"language": "hi"}'),
        _metric_row("turn_count", 1, 6, segment='{"language": "hi"}'),
        _metric_row("turn_count", 0, 20, segment='{"language": "en"}'),
        _metric_row("turn_count", 1, 3, segment='{"age_band": "18-24"}'),
        _metric_row("turn_count", 5, 9, segment='{"language": "fr"}'),  # outside the period
        _metric_row("turn_count", 0, 50, "A", segment='{"language": "de"}'),  # one model's row
        _metric_row("turn_count", 0, 50, deployment="prod-eu", segment='{"language": "ja"}'),  # one deployment's
        _metric_row("turn_count", 0, 2, segment='{"age_band": "65+", "language": "hi"}'),  # two attributes
        _metric_row("turn_count", 0, 5, segment='{"language": "pt"}'),
        _metric_row("turn_count", 0, 0, segment='{"language": "pt"}', run="r2"),  # retired
        _metric_row("refusal_rate", 0, 10, numerator=1, segment='{"language": "ko"}'),  # another metric
        _metric_row("turn_count", 0, 40),  # all traffic
    ]
    home = _rollup_home(tmp_path, rows)
    root = str(home.root)
    segs = data.segment_values(root, data.lake_version(root), D0, D0 + dt.timedelta(days=3))
    assert list(segs.columns) == ["attribute", "value", "turns"]
    assert [tuple(r) for r in segs.itertuples(index=False)] == [
        ("age_band", "18-24", 3), ("language", "en", 20), ("language", "hi", 10)]


def test_volume_and_the_segment_picker_count_replies_the_classifiers_could_not_read(tmp_path):
    """A language answered in its own language has only unscored replies (n 0, details.unscored): it is traffic in
    the Overview's volume and a segment the review page offers, the one most in need of labels."""
    import datetime as dt

    from dashboards import data

    def unscored(row, k):
        return {**row, "details": json.dumps({"unscored": k, "note": "every reply left out"} if not row["n"] else
                                             {"unit": "turns", "unscored": k})}

    rows = [
        unscored(_metric_row("turn_count", 0, 10, "A"), 4),
        unscored(_metric_row("turn_count", 1, 0, "A"), 3),  # every reply of the day unscored
        _metric_row("turn_count", 2, 0, "A"),  # retired: nothing
        _metric_row("turn_count", 0, 30, segment='{"language": "en"}'),
        unscored(_metric_row("turn_count", 0, 0, segment='{"language": "es"}'), 12),
        unscored(_metric_row("turn_count", 1, 0, segment='{"language": "es"}'), 13),
    ]
    home = _rollup_home(tmp_path, rows)
    root, version = str(home.root), data.lake_version(str(home.root))
    vol = data.volume(root, version, D0, D0 + dt.timedelta(days=3))
    assert [(f"{r.day:%Y-%m-%d}", r.turns) for r in vol.itertuples()] == [("2026-11-10", 14), ("2026-11-11", 3)]
    segs = data.segment_values(root, version, D0, D0 + dt.timedelta(days=3))
    assert [tuple(r) for r in segs.itertuples(index=False)] == [("language", "en", 30), ("language", "es", 25)]


def test_models_come_from_the_rollups(tmp_path):
    import pyarrow as pa

    from dashboards import data

    home = _rollup_home(tmp_path, [_metric_row("turn_count", 0, 3, "B"), _metric_row("turn_count", 0, 3, "A"),
                                   _metric_row("turn_count", 0, 6)])
    # a turn of a model no metric job has seen yet: not offered until it is scored and counted
    home.lake.append("turns", pa.Table.from_pylist([{"turn_id": "t1", "ts": D0, "model": "C", "date": "2026-11-10"}]))
    root = str(home.root)
    assert data.models(root, data.lake_version(root)) == ["A", "B"]


def test_freshness_reads_only_the_partitions_holding_the_maxima(tmp_path, monkeypatch):
    import datetime as dt

    import pyarrow as pa

    from dashboards import data
    from monitor.home import Home

    home = Home.open(tmp_path / "home")
    t1, t2 = dt.datetime(2026, 11, 20, 8), dt.datetime(2026, 11, 21, 9)

    def turn(tid, ts, ingested):
        return {"turn_id": tid, "ts": ts, "model": "A", "ingested_at": ingested, "date": f"{ts:%Y-%m-%d}"}

    home.lake.append("turns", pa.Table.from_pylist([turn("a", dt.datetime(2026, 11, 10, 5), t1),
                                                    turn("b", dt.datetime(2026, 11, 12, 23, 30), t1)]))
    # a late turn (old event date) ingested in a later commit: the newest ingest is not in the newest date
    home.lake.append("turns", pa.Table.from_pylist([turn("c", dt.datetime(2026, 11, 5, 1), t2)]))
    assert data._freshness_dates(home.lake.manifest()) == (["2026-11-12"], ["2026-11-05"])
    root = str(home.root)
    f = data.freshness(root, data.lake_version(root))
    assert (f["latest_event"], f["latest_ingest"], f["turns"]) == (dt.datetime(2026, 11, 12, 23, 30), t2, 3)
    # dates that no longer hold the rows (files rewritten meanwhile): the pruned read finds nothing, so every
    # date is read once and the answer is still right
    monkeypatch.setattr(data, "_freshness_dates", lambda m: (["1999-01-01"], ["1999-01-01"]))
    data.freshness.clear()
    f = data.freshness(root, data.lake_version(root))
    assert (f["latest_event"], f["latest_ingest"], f["turns"]) == (dt.datetime(2026, 11, 12, 23, 30), t2, 3)


def test_overview_volume_and_feedback_match_the_scored_turns(monkeypatch, sample_root):
    from monitor.db import connect
    from monitor.home import Home

    at = open_page(monkeypatch, sample_root)
    no_exception(at)
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    vol = next(s for s in specs if "Volume" in str(s["layout"].get("title", {}).get("text", "")))
    shown = {t["name"]: sum(t["y"]) for t in vol["data"]}
    fb = next(s for s in specs if "feedback" in str(s["layout"].get("title", {}).get("text", "")))
    thumbs = {m: (int(c[0]), int(c[1])) for m, c in zip(fb["data"][0]["x"], fb["data"][0]["customdata"])}
    # the same numbers counted from the raw tables (the sample's 14 days are inside the default 30-day window)
    con = connect(Home.open(sample_root))
    raw = con.execute("SELECT model, count(*), count(*) FILTER (WHERE feedback = 'up'), "
                      "count(*) FILTER (WHERE feedback = 'down') FROM scored_turns WHERE refusal_version IS NOT NULL "
                      "GROUP BY model").fetchall()
    con.close()
    assert shown == {m: n for m, n, _, _ in raw}
    assert thumbs == {m: (up, down) for m, _, up, down in raw}
    assert "counts scored turns" in texts(at)


def test_metric_families_name_the_partitions_of_each_metric(tmp_path):
    from dashboards import data

    rows = [_metric_row("turn_count", 0, 3), _metric_row("refusal_rate", 0, 4, numerator=1),
            {**_metric_row("value_mean", 0, 5), "family": "values"},
            # one metric written into two families (e.g. by two jobs): both are read
            {**_metric_row("language_mismatch_rate", 0, 6, numerator=1), "family": "disparity"},
            {**_metric_row("language_mismatch_rate", 1, 6, numerator=2), "family": "refusal"}]
    home = _rollup_home(tmp_path, rows)
    root, version = str(home.root), data.lake_version(str(home.root))
    assert data.metric_families(root, version) == {
        "language_mismatch_rate": ("disparity", "refusal"), "refusal_rate": ("refusal",),
        "turn_count": ("refusal",), "value_mean": ("values",)}
    assert data._families(root, version, ("turn_count",), "") == ["refusal"]
    assert data._families(root, version, ("value_mean", "language_mismatch_rate"), "") == [
        "disparity", "refusal", "values"]
    # LIKE patterns resolve against the known names ('_' is one character, '%' any run)
    assert data._families(root, version, (), "value%") == ["values"]
    assert data._families(root, version, (), "%_rate") == ["disparity", "refusal"]
    assert data._families(root, version, (), "turn_coun") == []
    # a metric without rows needs no partition
    assert data._families(root, version, ("probe_refusal_disparity",), "") == []


def test_metric_rows_prune_families_segments_and_details_without_changing_rows(tmp_path):
    import datetime as dt

    from dashboards import data

    det = '{"correction": {"source": "labels"}}'
    rows = [
        {**_metric_row("over_refusal_rate", 0, 10, "A", numerator=2), "details": det},
        {**_metric_row("over_refusal_rate", 0, 12, "A", numerator=3, run="r2"), "details": det},  # latest wins
        {**_metric_row("over_refusal_rate", 0, 5, "A", numerator=1, segment='{"language": "hi"}'), "details": det},
        {**_metric_row("over_refusal_rate", 1, 8, numerator=4, deployment="web"), "details": det},
        {**_metric_row("over_refusal_rate", 1, 0, "B", run="r2"), "details": None},  # retired: left out
        {**_metric_row("value_mean", 0, 7, "A", segment='{"dimension": "care"}'), "family": "values",
         "details": '{"unit": "per 100 tokens"}'},
    ]
    home = _rollup_home(tmp_path, rows)
    root, version = str(home.root), data.lake_version(str(home.root))
    end = D0 + dt.timedelta(days=3)
    full = data.metric_rows(root, version, ("over_refusal_rate",), D0, end)
    got = [(r.window_start.day, r.model, r.deployment, r.segment, r.n, r.details_obj) for r in full.itertuples()]
    assert got == [(10, "A", None, '{"language": "hi"}', 5, {"correction": {"source": "labels"}}),
                   (10, "A", None, "{}", 12, {"correction": {"source": "labels"}}),
                   (11, None, "web", "{}", 8, {"correction": {"source": "labels"}})]
    assert list(full["segment_obj"]) == [{"language": "hi"}, {}, {}]
    assert list(full["segment_label"]) == ["language=hi", "all traffic", "all traffic"]
    # without details: the same rows, details NULL and parsed as {}
    bare = data.metric_rows(root, version, ("over_refusal_rate",), D0, end, details=False)
    assert bare.drop(columns=["details", "details_obj"]).equals(full.drop(columns=["details", "details_obj"]))
    assert bare["details"].isna().all() and list(bare["details_obj"]) == [{}, {}, {}]
    # one segment's text: only those rows
    overall = data.metric_rows(root, version, ("over_refusal_rate",), D0, end, segment="{}")
    assert overall.reset_index(drop=True).equals(full[full["segment"] == "{}"].reset_index(drop=True))
    # a metric of another family, and one with no rows at all
    vals = data.metric_rows(root, version, ("value_mean", "probe_value_disparity"), D0, end, dimension_only=True)
    assert [(r.metric, r.segment_obj, r.details_obj) for r in vals.itertuples()] == [
        ("value_mean", {"dimension": "care"}, {"unit": "per 100 tokens"})]
    assert data.metric_rows(root, version, ("probe_value_disparity",), D0, end).empty


def test_schema_lists_the_same_tables_as_the_sql_guard(sample_root):
    from dashboards import data
    from monitor import sqlguard
    from monitor.home import Home

    got = data.schema(sample_root, data.lake_version(sample_root))
    assert got == sqlguard.schema(Home.open(sample_root))
    assert ("turn_id", "VARCHAR") in got["turns"] and "metrics" in got


def test_conversations_show_the_newest_matching_turns_with_their_latest_scores(tmp_path):
    import datetime as dt

    import pyarrow as pa

    from dashboards import data
    from monitor.home import Home

    home = Home.open(tmp_path / "home")
    day = dt.datetime(2026, 11, 12)
    turns = [{"turn_id": f"t{i}", "conversation_id": f"c{i}", "ts": day + dt.timedelta(hours=i), "model": "A",
              "user_message": f"question {i}", "assistant_message": f"answer {i}", "date": "2026-11-12"}
             for i in range(6)]
    turns.append({**turns[0], "turn_id": "x", "ts": day + dt.timedelta(days=1), "date": "2026-11-13"})  # next day
    home.lake.append("turns", pa.Table.from_pylist(turns))

    def score(tid, refusal, harm, at, s=0.9):
        return {"turn_id": tid, "refusal": refusal, "refusal_score": s, "prompt_harm": harm,
                "prompt_harm_score": 0.1, "scored_at": day + dt.timedelta(days=2, hours=at), "date": "2026-11-12"}

    home.lake.append("scores", pa.Table.from_pylist([
        score("t0", "full_refusal", "benign", 0), score("t1", "compliance", "benign", 0),
        score("t2", "full_refusal", "benign", 0), score("t3", "full_refusal", "harmful", 0),
        score("t4", "compliance", "benign", 0),
        score("t4", "partial_refusal", "benign", 1, s=0.6),  # re-scored later: the latest score counts
        # t5 has no score yet
    ]))
    root, version = str(home.root), data.lake_version(str(home.root))
    got = data.conversations(root, version, day, day, prompt_harm="benign", refused="yes", limit=2)
    assert [(r.turn_id, r.user_message, r.assistant_message, r.refusal, r.refusal_score)
            for r in got.itertuples()] == [("t4", "question 4", "answer 4", "partial_refusal", 0.6),
                                           ("t2", "question 2", "answer 2", "full_refusal", 0.9)]
    # no score filter: the newest turns of the day, unscored ones included, each once
    got = data.conversations(root, version, day, day, limit=3)
    assert [(r.turn_id, r.refusal) for r in got.itertuples()] == [("t5", None), ("t4", "partial_refusal"),
                                                                  ("t3", "full_refusal")]
    assert list(got["conversation_id"]) == ["c5", "c4", "c3"] and list(got["n_labels"]) == [0, 0, 0]


def test_settings_page_masks_secrets_at_any_depth(monkeypatch, tmp_path):
    """Channel headers and webhook URLs sit inside a list of tables: they are masked like top-level secrets."""
    from monitor.home import Home

    root = tmp_path / "h"
    root.mkdir()
    (root / "monitor.toml").write_text(
        '[[notify.channels]]\nname = "ops-hook"\ntype = "webhook"\nurl = "https://hooks.example/alerts/T0K3N-PATH"\n'
        'headers = {Authorization = "Bearer SECRET-BEARER-1", X-Team = "SECRET-HEADER-2"}\n'
        '[[notify.channels]]\nname = "slack"\ntype = "slack"\nurl = "https://hooks.slack.com/services/T000/SLACKSECRET3"\n'
        '[[notify.channels]]\nname = "mail"\ntype = "email"\nhost = "smtp.example.org"\nfrom = "m@example.org"\n'
        'to = ["o@example.org"]\npassword_env = "SMTP_PASSWORD"\n')
    Home.open(root)
    at = open_page(monkeypatch, root, "app_pages/settings.py")
    no_exception(at)
    text = at.dataframe[0].value.to_csv()
    for secret in ("SECRET-BEARER-1", "SECRET-HEADER-2", "T0K3N-PATH", "SLACKSECRET3"):
        assert secret not in text
    # what is not secret stays readable: names, hosts, the names of the variables holding secrets
    for shown in ("ops-hook", "https://hooks.example/", "hooks.slack.com", "smtp.example.org", "SMTP_PASSWORD"):
        assert shown in text


def test_settings_alert_rules_show_no_python_reprs(monkeypatch, tmp_path):
    from monitor.home import Home

    root = tmp_path / "h"
    root.mkdir()
    Home.open(root)
    at = open_page(monkeypatch, root, "app_pages/settings.py")
    no_exception(at)
    rules = at.dataframe[-1].value
    assert "metric" in rules.columns and len(rules) > 3
    cells = {str(v) for v in rules.to_numpy().ravel()}
    assert not cells & {"None", "nan", "NaN"}


def test_a_folder_that_is_not_a_home_is_an_error_and_is_not_created(monkeypatch, tmp_path):
    root = tmp_path / "no-such-home"
    at = open_page(monkeypatch, root)
    no_exception(at)
    assert at.error and "no monitor home at" in at.error[0].value
    assert not root.exists()


def alert_page(monkeypatch, home, rule: str):
    """The Alerts page showing the one alert of `rule`, and its tiles (label -> value)."""
    [pid] = [r["id"] for r in home.state.query("SELECT id FROM alerts WHERE rule=?", (rule,))]
    at = open_page(monkeypatch, home.root, "app_pages/alerts.py", reviewer="Ana Reviewer")
    at.selectbox(key="al_pick").set_value(pid)
    at.run()
    no_exception(at)
    return at, {m.label: m.value for m in at.metric}


def test_a_stuck_job_alert_shows_the_job_its_running_time_and_limit(monkeypatch, tmp_path):
    """job_stuck (a default rule): the alert page names the job, how long it has run and the limit, not a
    quarantine share."""
    import contextlib
    import datetime as dt
    import fcntl

    from dashboards.sample import build_sample_home
    from monitor.alerts.pipeline import check
    from monitor.state import iso

    home = build_sample_home(tmp_path / "h", n_turns=300, days=3, seed=5)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with home.state.tx() as con:
        con.execute("INSERT INTO job_runs (job, started_at, status) VALUES ('values', ?, 'running')",
                    (iso(now - dt.timedelta(hours=2)),))
    (home.root / ".locks").mkdir(exist_ok=True)
    with open(home.root / ".locks" / "job-values.lock", "a+") as fh, contextlib.ExitStack() as stack:
        fcntl.flock(fh, fcntl.LOCK_EX)  # the run is in progress: its lock is held
        stack.callback(fcntl.flock, fh, fcntl.LOCK_UN)
        check(home, now)
    at, tiles = alert_page(monkeypatch, home, "job_stuck")
    assert tiles["Job"] == "values" and tiles["Running for"] == "2.00 h" and tiles["Limit"] == "1.00 h", tiles
    assert "Quarantined" not in tiles


def test_a_broken_configuration_alert_says_which_configuration_is_in_use(monkeypatch, tmp_path):
    import datetime as dt

    from dashboards.sample import build_sample_home
    from monitor.alerts.pipeline import check
    from monitor.worker import config_guard

    home = build_sample_home(tmp_path / "h", n_turns=300, days=3, seed=7)
    config_guard.remember(home)
    (home.root / "monitor.toml").write_text('[[notify.channels]]\nname = "x"\ntype = "webhok"\nurl = "http://x"\n')
    try:
        check(config_guard.open_home(str(home.root), None), dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    finally:
        config_guard._GOOD.clear()
    at, tiles = alert_page(monkeypatch, home, "config_invalid")
    assert tiles["File"] == str(home.root / "monitor.toml") and "In use: the configuration read at" in tiles
    assert "monitor config check" in " ".join(i.value for i in at.info)
