"""Settings: the effective configuration and alert rules, read-only, with where each value came from."""
import json

import pandas as pd
import streamlit as st

from dashboards.ui import ctx, show_error
from monitor.errors import MonitorError
from monitor.notify.channels import public_url

c = ctx()
st.title("Settings")
cfg = c.home.config
src_file = c.home.config_file or (c.home.root / "monitor.toml")
st.caption(f"Home: `{c.home.root}` · config file: `{src_file}`" + ("" if src_file.exists() else " (absent: all "
           "defaults)") + ". Edit monitor.toml and restart to change a value; the dashboard never writes config.")

SECRET_WORDS = ("password", "token", "key", "secret", "authorization", "cookie", "credential")
MASK = "••••••"


def _masked(value, key: str = "", under_headers: bool = False):
    """value with every secret inside it masked, at any depth: values of secret-named keys (not the `*_env` names
    of variables holding them), every HTTP header value (headers carry credentials), and the path and query of URLs
    (a Slack or webhook URL is itself the credential)."""
    if isinstance(value, dict):
        return {k: _masked(v, k, under_headers or k.lower() == "headers") for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key, under_headers) for v in value]
    if value in (None, "", False) or key.endswith("_env"):
        return value
    low = key.lower()
    if under_headers or any(w in low for w in SECRET_WORDS):
        return MASK
    if isinstance(value, str) and "://" in value:
        return public_url(value, MASK)
    return value


def _flatten(d, prefix=""):
    for k, v in d.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v and all(isinstance(x, (dict, list, str, int, float, bool, type(None)))
                                             for x in v.values()) and prefix == "":
            yield from _flatten(v, path)
        else:
            yield path, v


rows = []
for path, value in _flatten(cfg.as_dict()):
    shown = _masked(value, path.split(".")[-1])
    rows.append({"key": path, "value": shown if shown == MASK else json.dumps(shown, default=str),
                 "from": cfg.sources.get(path, "default")})
df = pd.DataFrame(rows)
section = st.selectbox("Section", ["all"] + sorted({k.split(".")[0] for k in df["key"]}), key="st_section")
if section != "all":
    df = df[df["key"].str.startswith(section + ".")]
st.dataframe(df, hide_index=True, height=min(38 + 35 * len(df), 600))

st.subheader("Alert rules")
try:
    from monitor.alerts.rules import effective_rules

    rules = [r.to_dict() for r in effective_rules(cfg)]
except MonitorError as e:
    show_error(e)
    rules = []
if rules:
    st.caption("Rules in force: the defaults (unless alerts.use_default_rules = false) plus those in monitor.toml; "
               "`source` says where each came from.")
    # unset fields show blank, not None / nan; lists and tables as JSON
    st.dataframe(pd.DataFrame([{k: "" if v is None else v if isinstance(v, str) else json.dumps(v, default=str)
                                for k, v in r.items()} for r in rules]).fillna(""), hide_index=True)
else:
    st.caption("No alert rules are in force: default rules are off and monitor.toml defines none.")
