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
