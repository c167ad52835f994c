"""AppTest and chart tests for what the dashboard QA pass found: deep links, time windows, defaults, small samples,
missing values and labels. The sample home (dashboards/sample.py) holds 14 days of data, 2026-11-06 to 2026-11-19."""
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    from dashboards.sample import build_sample_home

    return str(build_sample_home(tmp_path_factory.mktemp("dashqa") / "home", n_turns=2500, days=14, seed=1).root)


def open_page(monkeypatch, root, page=None, reviewer=None, query=None) -> AppTest:
    monkeypatch.setenv("MONITOR_HOME", str(root))
    at = AppTest.from_file(APP, default_timeout=60)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    if reviewer:
        at.sidebar.text_input(key="reviewer").input(reviewer)
        at.run()
    if page and page != "app_pages/overview.py":
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def title(spec: dict) -> str:
    return str(spec["layout"].get("title", {}).get("text", ""))


# -- time window ----------------------------------------------------------------------------------------------------
def test_data_anchor_treats_a_metric_window_end_as_exclusive():
    from dashboards.data import data_anchor

    # the newest day window is 2026-11-27: it ends at 2026-11-28 00:00, which holds no data
    anchor = data_anchor({"latest_event": None, "latest_metric_window": pd.Timestamp("2026-11-28")})
    assert anchor.date() == dt.date(2026, 11, 27)
    anchor = data_anchor({"latest_event": pd.Timestamp("2026-11-27 23:59:34"),
                          "latest_metric_window": pd.Timestamp("2026-11-28")})
    assert anchor.date() == dt.date(2026, 11, 27)


@pytest.mark.parametrize("label, days", [("Last 7 days", 7), ("Last 14 days", 14)])
def test_time_window_holds_n_full_days_ending_with_the_last_data_day(monkeypatch, sample_root, label, days):
    at = open_page(monkeypatch, sample_root)
    at.sidebar.selectbox(key="window").select(label)
    at.run()
    first = dt.date(2026, 11, 19) - dt.timedelta(days=days - 1)
    assert f"{label}: {first:%Y-%m-%d} to 2026-11-19 (UTC)" in texts(at)
    overunder = next(s for s in specs(at) if any("Over-refusal" in str(a.get("text"))
                                                  for a in s["layout"].get("annotations", [])))
    line = next(t for t in overunder["data"] if t.get("mode") == "lines+markers")
    assert len(line["x"]) == days  # one daily point per day of the window


def test_all_time_is_captioned_from_the_first_data_day(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root)
    at.sidebar.selectbox(key="window").select("All time")
    at.run()
    assert "All time: 2026-11-06 to 2026-11-19 (UTC)" in texts(at)
    assert "1970" not in texts(at)


# -- alerts: deep links ---------------------------------------------------------------------------------------------
def _resolved_alert(root) -> dict:
    from monitor.home import Home

    return Home.open(root).state.query("SELECT id, status FROM alerts WHERE status='resolved'")[0]


def test_deep_link_to_a_filtered_out_alert_widens_the_filter_and_shows_it(monkeypatch, tmp_path):
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=800, days=6, seed=2)
    resolved = _resolved_alert(home.root)["id"]
    at = open_page(monkeypatch, home.root, "app_pages/alerts.py", reviewer="Ana",
                   query={"alert_id": str(resolved)})
    assert at.selectbox(key="al_pick").value == resolved
    assert "resolved" in at.multiselect(key="al_status").value
    assert any(f"alert #{resolved} from the link" in i.value for i in at.info)
    assert at.subheader[0].value.startswith(f"#{resolved} ")
    # the form acts on the linked alert, not on another one
    at.text_area(key="al_comment").input("seen from the link")
    at.button(key="al_comment_btn").click()
    at.run()
    assert not at.exception
    assert home.state.query("SELECT alert_id FROM alert_comments") == [{"alert_id": resolved}]


def test_deep_link_to_a_missing_alert_says_so_and_opens_none(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/alerts.py", reviewer="Ana", query={"alert_id": "999"})
    assert any("#999" in w.value and "does not exist" in w.value for w in at.warning)
    assert at.selectbox(key="al_pick").value is None
    assert not [b for b in at.button if b.key == "al_ack"]


# -- alerts: disparity reference, missing values, plain names --------------------------------------------------------
def _disparity_alert(home) -> tuple[int, dict]:
    """A disparity alert as the disparity rule writes it (no reference, no threshold) on a sample metric row."""
    from dashboards import data
    from monitor.state import iso, utcnow

    root = str(home.root)
    rows = data.metric_rows(root, data.lake_version(root), ("over_refusal_disparity",), dt.datetime(2000, 1, 1),
                            dt.datetime(2100, 1, 1))
    r = rows[rows["details_obj"].map(lambda d: d.get("reference_rate") is not None)].iloc[-1]
    ws = r["window_start"].to_pydatetime()
    now = iso(utcnow())
    with home.state.tx() as con:
        cur = con.execute(
            "INSERT INTO alerts (dedup_key, rule, metric, model, segment, granularity, window_start, window_end, value,"
            " ci_low, ci_high, n, reference, threshold, severity, status, message, evidence, created_at, updated_at)"
            " VALUES (?,?,?,?,?,'day',?,?,?,?,?,?,NULL,NULL,'warning','firing',?,?,?,?)",
            ("disparity|x", "disparity", "over_refusal_disparity", r["model"], r["segment"], iso(ws),
             iso(ws + dt.timedelta(days=1)), float(r["value"]), float(r["ci_low"]), float(r["ci_high"]), int(r["n"]),
             "over_refusal_disparity gap", json.dumps({"kind": "flag", "gap": r["details_obj"].get("gap")}), now, now))
    return cur.lastrowid, r["details_obj"]


def test_disparity_alert_shows_the_reference_group_rate_and_n(monkeypatch, tmp_path):
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=800, days=6, seed=2)
    alert_id, det = _disparity_alert(home)
    at = open_page(monkeypatch, home.root, "app_pages/alerts.py", query={"alert_id": str(alert_id)})
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Reference (rest of traffic)" if det.get("reference_label") else "Reference (reference)"] \
        == f"{det['reference_rate']:.1%}"
    assert tiles["Reference n"] == f"{int(det['reference_n']):,}"
    assert "n/a" not in tiles.values()
    # the chart is titled with the plain metric name and draws the reference
    spec = specs(at)[0]
    assert title(spec) == "Over-refusal gap between groups around the alert window"
    assert any("reference" in str(a.get("text")) for a in spec["layout"].get("annotations", []))


def test_alerts_table_shows_no_raw_none(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/alerts.py")
    incidents = at.dataframe[0].value  # one row per incident (the default view)
    assert "None" not in incidents.astype(str).to_numpy() and "nan" not in incidents.astype(str).to_numpy()
    assert any(w.endswith("all traffic") for w in incidents["where"])
    at.toggle(key="al_group").set_value(False)
    at.run()
    table = at.dataframe[0].value
    assert "None" not in table.astype(str).to_numpy()
    assert not table[["model", "segment", "assigned_to"]].isna().any().any()
    assert "all traffic" in set(table["segment"])


# -- disparity: default attribute, labels, missing values -------------------------------------------------------------
def _disparity_home(tmp_path):
    """A sample home plus age_band disparity rows with nothing significant (alphabetically before 'language')."""
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=1500, days=6, seed=3)
    import pyarrow as pa

    from dashboards import data

    root = str(home.root)
    lang = data.metric_rows(root, data.lake_version(root), ("over_refusal_disparity",), dt.datetime(2000, 1, 1),
                            dt.datetime(2100, 1, 1))
    assert lang["details_obj"].map(lambda d: d.get("significant")).any(), "the sample needs a significant gap"
    extra = []
    for r in lang.drop_duplicates(["window_start", "model"]).itertuples():
        for band in ("18-24", "65+"):
            extra.append({"metric": "over_refusal_disparity", "granularity": "day", "window_start": r.window_start,
                          "window_end": r.window_end, "model": r.model, "deployment": None,
                          "segment": json.dumps({"age_band": band}), "value": 0.1, "ci_low": 0.05, "ci_high": 0.15,
                          "n": 80, "numerator": 8.0, "small_sample": False, "job": "test", "run_id": "r9",
                          "family": "disparity", "computed_at": dt.datetime(2026, 12, 1),
                          "details": json.dumps({"attribute": "age_band", "group": band, "gap": 0.0, "ratio": 1.0,
                                                 "p_value": None, "q_value": None, "significant": False,
                                                 "min_n_ok": True, "reference_rate": 0.1,
                                                 "source": "production"})})
    home.lake.append("metrics_log", pa.Table.from_pylist(extra))
    return home


def test_disparity_opens_on_the_attribute_with_significant_gaps(monkeypatch, tmp_path):
    home = _disparity_home(tmp_path)
    at = open_page(monkeypatch, home.root, "app_pages/disparity.py")
    box = at.selectbox(key="dp_attr")
    assert box.options == ["age_band", "language"] and box.value == "language"
    # an explicit choice is kept across reruns
    box.select("age_band")
    at.run()
    at.selectbox(key="dp_window").select(at.selectbox(key="dp_window").options[-1])
    at.run()
    assert at.selectbox(key="dp_attr").value == "age_band"
    # age_band's groups were not tested: p and q are '—' with a caption, never None
    table = at.dataframe[0].value
    assert set(table["p_value"]) == {"—"} and "not computed" in texts(at)
    assert "None" not in table.astype(str).to_numpy()


def test_disparity_charts_label_groups_plainly_and_title_rates_as_rates(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/disparity.py")
    charts_ = specs(at)
    prod = next(s for s in charts_ if title(s).startswith("Production traffic"))
    assert title(prod) == "Production traffic by language"
    assert not any("=" in str(x) for x in prod["data"][0]["x"])  # 'hi', not 'language=hi'
    assert prod["layout"]["showlegend"] is False and prod["layout"]["xaxis"]["tickangle"] == -30
    trend = next(s for s in charts_ if "per language group" in title(s))
    assert title(trend) == "Over-refusal rate per language group"
    assert "gap" not in title(trend)


def test_value_gap_help_names_the_test_once():
    from dashboards.ui import metric_help

    caption_tail = " Significance uses Welch's t-test"
    assert (metric_help("value_disparity") + caption_tail).count("Welch") == 1


def test_as_text_blanks_missing_values():
    from dashboards.ui import as_text

    df = pd.DataFrame({"p": [0.0123, None, float("nan")], "k": [0.5, 1.0, None]})
    got = as_text(df, {"p": "%.2g", "k": "%.2f"})
    assert list(got["p"]) == ["0.012", "—", "—"] and list(got["k"]) == ["0.50", "1.00", "—"]


# -- values: the model picker filters; small samples marked ---------------------------------------------------------
def test_values_model_picker_filters_profile_and_series(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/values.py")
    for model in at.selectbox(key="vd_model").options:
        at.selectbox(key="vd_model").select(model)
        at.run()
        assert not at.exception
        by_title = {title(s): s for s in specs(at)}
        profile = by_title["Value profile: mean score per dimension"]
        assert {t["name"] for t in profile["data"]} == {model}
        series = next(s for t, s in by_title.items() if t.endswith("mean score per window"))
        assert {t["name"] for t in series["data"] if t.get("mode") == "lines+markers"} == {model}


def test_small_samples_are_marked_on_every_chart():
    from dashboards import charts

    colors = charts.color_map(["A"])
    w = pd.Timestamp("2026-11-10")
    rate = pd.DataFrame({"window_start": [w, w + pd.Timedelta(days=1)], "model_label": ["A", "A"],
                         "value": [0.1, 0.2], "ci_low": [0.05, 0.1], "ci_high": [0.15, 0.3], "n": [500, 20],
                         "small_sample": [False, True]})
    fig = charts.tradeoff_scatter(rate, rate.assign(small_sample=[False, False]), colors)
    assert list(fig.data[0].marker.color) == [colors["A"], "white"]  # hollow where a rate rests on a small n
    prof = pd.DataFrame({"dimension": ["care", "moralizing"], "model_label": ["A", "A"], "value": [0.1, 0.47],
                         "ci_low": [0.05, 0.2], "ci_high": [0.15, 0.7], "n": [500, 34], "small_sample": [False, True]})
    bar = charts.value_profile(prof, colors).data[0]
    assert list(bar.marker.pattern.shape) == ["", "/"] and bar.marker.color[0] != bar.marker.color[1]
    heat = pd.DataFrame({"dimension": ["care", "moralizing"], "window": ["2026-11-10"] * 2, "value": [0.1, 0.47],
                         "drifted": [False, False], "n": [500, 34], "small_sample": [False, True]})
    fig = charts.drift_heatmap(heat)
    grey, coloured = fig.data
    assert grey.showscale is False and [list(r) for r in grey.text] == [[""], ["○"]]
    z = [list(r) for r in coloured.z]
    assert z[0] == [0.1] and pd.isna(z[1][0])  # the small cell is not on the colour scale
    assert "○" in fig.layout.title.text


def test_many_groups_are_drawn_as_small_multiples_on_one_scale():
    """Five segment groups overlaid were five bands and five dotted lines in one tangle: one panel per group now,
    every panel on the same time and rate axes; three groups or fewer stay overlaid."""
    from dashboards import charts

    w = pd.Timestamp("2026-11-10")
    groups = ["ar", "de", "en", "es", "fr"]
    df = pd.DataFrame([{"window_start": w + pd.Timedelta(days=d), "group": g, "value": 0.1 * (i + 1),
                        "ci_low": 0.1 * i, "ci_high": 0.1 * (i + 1.5), "n": 200, "small_sample": False,
                        "corrected": 0.1 * (i + 1) - 0.01} for i, g in enumerate(groups) for d in range(3)])
    fig = charts.rate_lines(df, {}, "Over-refusal rate by segment", "rate", by="group")
    titles = [a.text for a in fig.layout.annotations]
    assert titles == groups
    axes = {t.yaxis for t in fig.data}
    assert len(axes) == 5 and len(fig.data) == 5 * 4  # band (2), line, corrected line per group
    ranges = [tuple(getattr(fig.layout, "yaxis" + ("" if k == 1 else str(k))).range) for k in range(1, 6)]
    assert ranges == [(0, pytest.approx(0.55 * 1.05))] * 5  # one scale (top: the highest upper bound)
    assert len({t.line.color for t in fig.data if t.mode == "lines+markers"}) == 5
    few = charts.rate_lines(df[df["group"].isin(groups[:3])], {}, "t", by="group")
    assert not few.layout.annotations and {t.yaxis for t in few.data} == {None}


def test_overview_subplot_titles_are_short(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root)
    overunder = next(s for s in specs(at) if s["layout"].get("annotations"))
    assert all(len(a["text"]) <= 32 for a in overunder["layout"]["annotations"])


# -- review: refilling the queue needs a name -------------------------------------------------------------------------
def test_refill_the_queue_without_a_name_is_refused(monkeypatch, tmp_path):
    from dashboards.sample import build_sample_home

    home = build_sample_home(tmp_path / "h", n_turns=600, days=5, seed=6)
    at = open_page(monkeypatch, home.root, "app_pages/review.py")
    at.button(key="rv_build").click()
    at.run()
    assert not at.exception
    assert at.error and "reviewer name is required" in at.error[0].value and "Reviewer" in at.error[0].value
    assert home.state.query("SELECT count(*) AS n FROM review_queue")[0]["n"] == 0
    assert not home.state.query("SELECT actor FROM audit_log WHERE actor='dashboard'")


def test_agreement_table_shows_a_dash_where_kappa_is_not_computed(monkeypatch, tmp_path):
    from dashboards.sample import build_sample_home
    from monitor import review
    from monitor.db import connect

    home = build_sample_home(tmp_path / "h", n_turns=600, days=5, seed=7)
    con = connect(home)
    tid = con.execute("SELECT turn_id FROM turns LIMIT 1").fetchone()[0]
    con.close()
    review.add_label(home, tid, "Cy", refusal_correct=True)  # one reviewer: nothing to agree on yet
    at = open_page(monkeypatch, home.root, "app_pages/review.py")
    agr = next(d.value for d in at.dataframe if "fleiss_kappa" in d.value.columns)
    assert "None" not in agr.astype(str).to_numpy() and "nan" not in agr.astype(str).to_numpy()
    assert set(agr["fleiss_kappa"]) == {"—"} and "'—': not computed" in texts(at)


# -- SQL: the error title once ---------------------------------------------------------------------------------------
def test_sql_refusal_names_its_title_once(monkeypatch, sample_root):
    at = open_page(monkeypatch, sample_root, "app_pages/sql.py")
    at.text_area(key="sq_sql").input("DROP TABLE turns")
    at.button(key="sq_run").click()
    at.run()
    msg = at.error[0].value
    assert msg.startswith("**Query refused**: ") and msg.lower().count("query refused") == 1
