"""Every dashboard page on a real home: the bundled demo logs ingested and every job run (no synthetic metric rows).

The demo home takes about a minute to build, so it is built once per test session and shared with the browser
smoke test (tests/test_browser.py); nothing here writes to it.
"""
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

# Building the demo runs every job on ~5,700 turns: about a minute, far longer on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

APP = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
PAGES = ["app_pages/overview.py", "app_pages/alerts.py", "app_pages/refusals.py", "app_pages/values.py",
         "app_pages/disparity.py", "app_pages/review.py", "app_pages/sql.py", "app_pages/settings.py"]
# A fixed "today" keeps the demo's dates (and so every window below) the same on every run.
DEMO_TODAY = dt.date(2026, 11, 16)


def shared_demo_home(tmp_path_factory) -> Path:
    """The demo home of this test session, built on first use (also used by tests/test_browser.py)."""
    from monitor.demo import build_demo_home

    # while working on the dashboard, DASHBOARD_TEST_DEMO_HOME=<folder> keeps one built demo home across runs
    root = Path(os.environ.get("DASHBOARD_TEST_DEMO_HOME") or tmp_path_factory.getbasetemp() / "dashboard-demo-home")
    marker = root / ".built"
    if not marker.exists():
        build_demo_home(root, today=DEMO_TODAY)
        marker.write_text("ok")
    return root


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return str(shared_demo_home(tmp_path_factory))


def open_page(monkeypatch, root, page) -> AppTest:
    monkeypatch.setenv("MONITOR_HOME", str(root))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page != PAGES[0]:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame(at: AppTest, column: str):
    """The first dataframe on the page having `column`."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_the_demo_home(monkeypatch, demo_root, page):
    at = open_page(monkeypatch, demo_root, page)
    assert not at.error, [e.value for e in at.error]


def test_values_page_shows_real_drift_verdicts_and_evidence(monkeypatch, demo_root):
    at = open_page(monkeypatch, demo_root, "app_pages/values.py")
    dims = at.selectbox(key="vd_dim").options
    assert "moralizing" in dims and "hedging" in dims  # dimensions come from the segment key, not the metric name
    verdicts = frame(at, "statistic_name")
    assert {"drift", "statistic", "threshold", "p_value", "direction", "mean_current", "mean_reference",
            "reference"} <= set(verdicts.columns)
    assert set(verdicts["dimension"]) <= set(dims) and len(verdicts) >= 10
    assert set(verdicts["drift"]) <= {"DRIFT", "stable", "too few replies"}
    assert verdicts["reference"].str.startswith("previous_days").any()
    # the evidence: terms from value_evidence (shares now vs reference) and example replies with the terms in bold
    at.selectbox(key="vd_edim").select("hedging")
    at.run()
    assert not at.exception
    terms = frame(at, "share now")
    assert len(terms) > 0 and terms["share now"].between(0, 1).all()
    examples = [m.value for m in at.markdown if str(m.value).startswith("**User:**")]
    assert examples and any("**" in e.split("**Assistant:**", 1)[1] for e in examples)


def test_values_page_shows_the_evidently_report(monkeypatch, demo_root):
    at = open_page(monkeypatch, demo_root, "app_pages/values.py")
    assert not at.get("iframe")  # computed on demand only: evidently takes seconds
    at.button(key="vd_report").click()
    at.run(timeout=180)
    assert not at.exception and not at.error, [e.value for e in at.error]
    frames = at.get("iframe")
    assert len(frames) == 1
    html = frames[0].proto.srcdoc
    assert "<html" in html[:500].lower() and len(html) > 100_000
    assert "moralizing" in html  # one drift panel per value dimension


def test_evidently_report_data_function_on_a_real_window(demo_root):
    from dashboards import data

    version = data.lake_version(demo_root)
    html = data.evidently_report(demo_root, version, dt.datetime(2026, 11, 14), None)
    assert "<html" in html[:500].lower() and "hedging" in html
    from monitor.errors import MonitorError

    with pytest.raises(MonitorError, match="no replies to compare"):  # a model with no replies: a clear error
        data.evidently_report(demo_root, version, dt.datetime(2026, 11, 14), "no-such-model@1")


def test_disparity_page_on_real_rows(monkeypatch, demo_root):
    at = open_page(monkeypatch, demo_root, "app_pages/disparity.py")
    assert at.selectbox(key="dp_metric").value == "over_refusal_disparity"  # opens on over-refusal gaps
    table = frame(at, "q_value")
    assert {"group", "rate", "ci_low", "ci_high", "n", "reference", "gap", "ratio", "p_value", "significant",
            "adverse", "four_fifths_flag", "min_n_ok"} <= set(table.columns)
    assert set(table["source"]) == {"production"}
    # it opens on a window where at least one group is big enough to be tested, not on a partial last day
    assert table["min_n_ok"].any()
    assert not [w for w in at.warning if "below the minimum sample size" in w.value]
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["x"] and "reference" in spec["data"][1]["name"]


def test_refusals_page_shows_label_corrected_rates(monkeypatch, demo_root):
    at = open_page(monkeypatch, demo_root, "app_pages/refusals.py")
    corrected = frame(at, "corrected")
    assert corrected["corrected"].notna().any()
    shown = corrected.dropna(subset=["corrected"])
    assert (shown["corrected_ci_high"] - shown["corrected_ci_low"]).gt(0).all()  # no interval collapsed to a point
    # the raw-and-corrected table: a row without a corrected value says why
    table = frame(at, "note")
    assert table["corrected"].isna().any()  # the demo has no labels; XSTest's error rates do not fit its traffic
    assert table.loc[table["corrected"].isna(), "note"].str.startswith("not estimable").all()


def test_every_real_metric_name_has_plain_help(demo_root):
    from dashboards.ui import metric_help, metric_name
    from monitor.db import connect
    from monitor.home import Home

    con = connect(Home.open(demo_root))
    names = [r[0] for r in con.execute("SELECT DISTINCT metric FROM metrics_log").fetchall()]
    con.close()
    assert {"value_mean", "value_drift", "over_refusal_disparity"} <= set(names)
    from monitor.metrics import WRITTEN_METRICS

    assert set(names) <= set(WRITTEN_METRICS)  # alert rules are checked against this list
    for name in names:
        assert metric_help(name) != name and len(metric_help(name)) > 30, name
        assert metric_name(name) != name, name


def test_alert_page_on_real_alerts(monkeypatch, demo_root):
    from monitor.home import Home

    alerts = Home.open(demo_root).state.query("SELECT id, metric, deployment FROM alerts WHERE status='firing'")
    assert alerts, "the demo's planted incident raises no alert"
    at = open_page(monkeypatch, demo_root, "app_pages/alerts.py")
    picked = next(a for a in alerts if a["id"] == at.selectbox(key="al_pick").value)
    # the chart holds the alert's own series only: one point per window, not one per deployment or model
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    lines = [t for t in spec["data"] if t.get("mode") == "lines+markers"]
    assert len(lines) == 1 and len(lines[0]["x"]) == len(set(lines[0]["x"])) > 1
    # the conversations behind the number: for an under-refusal alert, harmful requests that were answered
    captions = [c.value for c in at.caption if str(c.value).startswith("turn ")]
    assert captions
    if picked["metric"] == "under_refusal_rate":
        assert all("reply classified compliance" in c and "prompt harmful" in c for c in captions)
    elif picked["metric"] == "over_refusal_rate":
        assert all("prompt benign" in c and "reply classified compliance" not in c for c in captions)


def _window(demo_root):
    """The default time window the frame computes (last 30 days back from the newest data)."""
    from dashboards import data

    anchor = data.data_anchor(data.freshness(demo_root, data.lake_version(demo_root)))
    end = anchor.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    return end - dt.timedelta(days=30), end


def test_overview_volume_from_rollups_equals_scored_turns(monkeypatch, demo_root):
    from monitor.db import connect
    from monitor.home import Home

    at = open_page(monkeypatch, demo_root, PAGES[0])
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    vol = next(s for s in specs if "Volume" in str(s["layout"].get("title", {}).get("text", "")))
    shown = {(t["name"], x[:10]): y for t in vol["data"] for x, y in zip(t["x"], t["y"])}
    start, end = _window(demo_root)
    con = connect(Home.open(demo_root))
    # every scored turn, with a label or without one (a reply the classifiers cannot read is traffic too)
    raw = con.execute("SELECT coalesce(model, 'unknown'), strftime(ts, '%Y-%m-%d'), count(*) FROM scored_turns "
                      "WHERE refusal_version IS NOT NULL AND ts >= $s AND ts < $e GROUP BY ALL",
                      {"s": start, "e": end})
    expected = {(m, d): n for m, d, n in raw.fetchall()}
    con.close()
    assert expected and shown == expected


def test_review_segment_picker_offers_recent_scored_traffic(monkeypatch, demo_root):
    from monitor.db import connect
    from monitor.home import Home

    at = open_page(monkeypatch, demo_root, "app_pages/review.py")
    at.radio(key="rv_mode").set_value("Search")
    at.run()
    assert not at.exception
    options = at.selectbox(key="rv_seg").options
    start, end = _window(demo_root)  # the default 30-day window is also the picker's 30-day cap
    con = connect(Home.open(demo_root))
    raw = con.execute(
        "SELECT s.attribute, s.value, count(DISTINCT t.turn_id) AS n FROM scored_turns t JOIN segments s "
        "USING (turn_id) WHERE t.refusal_version IS NOT NULL AND t.ts >= $s AND t.ts < $e AND s.value IS NOT NULL "
        "GROUP BY ALL ORDER BY s.attribute, n DESC, s.value", {"s": start, "e": end}).fetchall()
    con.close()
    assert len(raw) > 10 and options == ["any"] + [f"{a}={v}" for a, v, _ in raw]
    # picking one filters the search to that segment
    at.selectbox(key="rv_seg").select(f"{raw[0][0]}={raw[0][1]}")
    at.run()
    assert not at.exception and len(at.dataframe[0].value) > 0


@pytest.mark.parametrize("metric, twin", [("over_refusal_disparity", "Under-refusal"),
                                          ("under_refusal_disparity", "Over-refusal"),
                                          ("refusal_disparity", None)])
def test_disparity_page_draws_the_other_refusal_rate_beside_it(monkeypatch, demo_root, metric, twin):
    """Over- and under-refusal are read together: the page draws the same groups' other rate next to the chosen one."""
    at = open_page(monkeypatch, demo_root, "app_pages/disparity.py")
    at.selectbox(key="dp_metric").set_value(metric).run()
    assert not at.exception and not at.error
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [s["layout"]["title"]["text"] for s in specs]
    other = [s for s, t in zip(specs, titles) if t.startswith(("Under-refusal", "Over-refusal")) and " by " in t]
    if twin is None:
        assert not other, titles
        return
    prod = next(s for s, t in zip(specs, titles) if t.startswith("Production traffic"))
    assert len(other) == 1 and other[0]["layout"]["title"]["text"].startswith(twin), titles
    assert set(other[0]["data"][0]["x"]) & set(prod["data"][0]["x"])  # the same attribute's groups
