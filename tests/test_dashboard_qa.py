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
