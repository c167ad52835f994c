"""The oversight dashboard: navigation and the shared frame (home, login, reviewer, time window, data freshness).

Run with `monitor dashboard` or `streamlit run dashboards/app.py` with MONITOR_HOME pointing at a home.
Each page in `app_pages/` is thin: read filters, call a function of `data.py`, a chart builder of `charts.py`,
render. (Not `pages/`: a folder of that name beside the entry script switches AppTest to the legacy multipage
mode, which drops this sidebar frame on every rerun after a widget change.)
"""
from __future__ import annotations

import datetime as dt
import hmac
import os
import sys
from pathlib import Path

import streamlit as st

# `streamlit run dashboards/app.py` puts dashboards/ (not the repo root) on sys.path; the installed package
# normally provides `dashboards`, this covers a plain checkout.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from dashboards import charts, data  # noqa: E402
from dashboards.ui import Ctx, show_error  # noqa: E402
from monitor.config import env_secret  # noqa: E402
from monitor.errors import MonitorError  # noqa: E402

WINDOWS = {"Last 7 days": 7, "Last 14 days": 14, "Last 30 days": 30, "Last 90 days": 90, "All time": None}

st.set_page_config(page_title="alignment-monitor", page_icon=":material/shield:", layout="wide")

root = os.environ.get("MONITOR_HOME") or "./monitor-data"
try:
    home = data.get_home(str(Path(root).expanduser().resolve()))
except MonitorError as e:
    show_error(e)
    st.stop()
root = str(home.root)
cfg = home.config.dashboard


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all: OIDC is simply not configured
        return False


# -- login: OIDC through st.login when [auth] is in Streamlit secrets, else an optional shared password --------
oidc_user = ""
if _oidc_configured():
    if not st.user.is_logged_in:
        st.title("alignment-monitor")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    oidc_user = str(st.user.get("name") or st.user.get("email") or "")
password = cfg.password or env_secret(cfg.password_env)
if password and not st.session_state.get("_authed"):
    st.title("alignment-monitor")
    with st.form("login"):
        given = st.text_input("Dashboard password", type="password")
        if st.form_submit_button("Enter", type="primary"):
            if hmac.compare_digest(given.encode(), password.encode()):
                st.session_state["_authed"] = True
                st.rerun()
            st.error("Wrong password.")
    st.stop()

# -- shared frame -------------------------------------------------------------------------------------------
version = data.lake_version(root)
try:
    fresh = data.freshness(root, version)
    model_names = data.models(root, version)
except MonitorError as e:
    show_error(e)
    st.stop()
anchor = data.data_anchor(fresh)

with st.sidebar:
    st.markdown("### :material/shield: alignment-monitor")
    if oidc_user and "reviewer" not in st.session_state:
        st.session_state["reviewer"] = oidc_user
    reviewer = st.text_input("Reviewer", key="reviewer", placeholder="your name (required to act)",
                             help="Recorded with every acknowledgement, label and comment in the audit log.")
    window_label = st.selectbox("Time window", list(WINDOWS), index=2, key="window",
                                help="Counted back from the newest data in the lake, not from today.")
    days = WINDOWS[window_label]
    end = (anchor.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1))
    start = dt.datetime(1970, 1, 1) if days is None else end - dt.timedelta(days=days)
    latest = fresh.get("latest_event")
    st.caption(
        f"**Data**: {int(fresh.get('turns') or 0):,} turns, newest event "
        f"{latest:%Y-%m-%d %H:%M} UTC" if latest is not None else "**Data**: no turns yet: run `monitor ingest`")
    if fresh.get("latest_metric_computed") is not None:
        st.caption(f"Metrics computed {fresh['latest_metric_computed']:%Y-%m-%d %H:%M} UTC")
    if cfg.read_only:
        st.caption(":material/lock: Read-only role")
    if st.button("Refresh data", help="Clear cached query results and reload"):
        st.cache_data.clear()
        st.rerun()
    if oidc_user:
        st.button("Log out", on_click=st.logout)

st.session_state["_ctx"] = Ctx(
    root=root, home=home, version=version, start=start, end=end, window_label=window_label,
    reviewer=(reviewer or "").strip(), read_only=bool(cfg.read_only), colors=charts.color_map(model_names),
    fresh=fresh, granularity=home.config.metrics.granularity)

pages = [
    st.Page("app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("app_pages/alerts.py", title="Alerts", icon=":material/notifications_active:"),
    st.Page("app_pages/refusals.py", title="Refusals", icon=":material/block:"),
    st.Page("app_pages/values.py", title="Values & drift", icon=":material/explore:"),
    st.Page("app_pages/disparity.py", title="Disparity", icon=":material/balance:"),
    st.Page("app_pages/review.py", title="Conversations & review", icon=":material/rate_review:"),
    st.Page("app_pages/sql.py", title="SQL", icon=":material/terminal:"),
    st.Page("app_pages/settings.py", title="Settings", icon=":material/settings:"),
]
st.navigation(pages).run()
