"""Shared page helpers: the frame context set up by app.py, plain-language metric names, errors and empty states."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st

from monitor.errors import MonitorError
from monitor.home import Home

# Plain-language names and help for metrics, used when the metric registry (monitor.metrics.METRICS) does not
# describe a metric itself, e.g. before a stage has been installed.
FALLBACK_METRICS = {
    "refusal_rate": ("Refusal rate", "Share of all assistant replies that refuse fully or partly."),
    "over_refusal_rate": ("Over-refusal rate",
                          "Share of replies to benign requests that refuse (fully or partly): lost helpfulness."),
    "under_refusal_rate": ("Under-refusal rate (harmful compliance)",
                           "Share of replies to harmful requests that comply: a safety failure."),
    "partial_refusal_share": ("Partial-refusal share",
                              "Among refusals, the share that are partial (refuse part, answer part)."),
    "labelled_refusal_rate": ("Refusal rate (reviewer labels)",
                              "Share of refusals among randomly sampled, human-labelled replies the classifiers could "
                              "not score (another language), pooled over 28 days."),
    "labelled_over_refusal_rate": ("Over-refusal rate (reviewer labels)",
                                   "Share of refusals among randomly sampled, human-labelled benign requests whose "
                                   "prompt or reply the classifiers could not score, pooled over 28 days."),
    "labelled_under_refusal_rate": ("Under-refusal rate (reviewer labels)",
                                    "Share of compliances among randomly sampled, human-labelled harmful requests whose "
                                    "prompt or reply the classifiers could not score, pooled over 28 days."),
    "thumbs_down_rate": ("Thumbs-down rate", "Share of replies users rated that got a thumbs down."),
    "turn_count": ("Volume", "Number of assistant replies in the window."),
    "value_mean": ("Value score", "Mean score of replies on a value dimension (e.g. moralising), per window."),
    "value_coverage": ("Value coverage", "Share of replies with at least one term of the dimension's lexicon."),
    "value_drift": ("Value drift", "Drift statistic of a value dimension against its reference window; "
                    "a test decides 'drifted'."),
    "over_refusal_disparity": ("Over-refusal gap between groups",
                               "Over-refusal rate of one group compared with the reference (rest of traffic)."),
    "under_refusal_disparity": ("Under-refusal gap between groups",
                                "Harmful-compliance rate of one group compared with the reference."),
    "refusal_disparity": ("Refusal gap between groups", "Refusal rate of one group compared with the reference."),
    "value_disparity": ("Value-score gap between groups",
                        "Mean value-dimension score of one group's replies compared with the reference (rest of "
                        "traffic)."),
    "topic_drift": ("Topic-mix drift", "How far the mix of topics users ask about moved from the reference window "
                    "(Jensen-Shannon distance): did the users change rather than the model?"),
    "prompt_mix_drift": ("Prompt-mix drift", "How far the mix of prompt-harm categories moved from the reference "
                         "window (Jensen-Shannon distance)."),
    "language_mismatch_rate": ("Language mismatch rate", "Share of turns whose message was detected in another "
                               "language than the one the user declared (a sign of mislabelled segments)."),
}
PROBE_PREFIX = "probe_"  # counterfactual-probe rows carry the observational metric's name with this prefix


def _registry() -> dict[str, Any]:
    try:
        from monitor.metrics import METRICS  # the refusal stage's registry: name -> Metric(name, sql_file, help)
    except Exception:
        return {}
    if isinstance(METRICS, dict):
        return METRICS
    return {getattr(m, "name", str(m)): m for m in METRICS}


def metric_name(metric: str) -> str:
    """Plain-language name of a metric."""
    if metric in FALLBACK_METRICS:
        return FALLBACK_METRICS[metric][0]
    if metric.startswith(PROBE_PREFIX):
        return metric_name(metric[len(PROBE_PREFIX):]) + " (counterfactual probes)"
    m = _registry().get(metric)
    title = getattr(m, "title", None) or getattr(m, "label", None)
    return title or metric.replace("_", " ").capitalize()


def metric_help(metric: str) -> str:
    """One-sentence help text of a metric (for tooltips)."""
    m = _registry().get(metric)
    text = getattr(m, "help", None) if m is not None else None
    if text:
        return text
    if metric in FALLBACK_METRICS:
        return FALLBACK_METRICS[metric][1]
    if metric.startswith(PROBE_PREFIX):
        return ("Counterfactual probes: the same prompts with only an identity term swapped, sent to the model. "
                + metric_help(metric[len(PROBE_PREFIX):]))
    for stem, (_, help_) in FALLBACK_METRICS.items():
        if metric.endswith(stem):
            return help_
    return metric


@dataclass
class Ctx:
    """What every page needs from the frame: the home, the lake version, the time window and the reviewer."""

    root: str
    home: Home
    version: int
    start: dt.datetime
    end: dt.datetime
    window_label: str
    reviewer: str
    read_only: bool
    colors: dict[str, str]
    fresh: dict[str, Any] = field(default_factory=dict)
    granularity: str = "day"


def window_dates(c: Ctx) -> tuple[dt.date, dt.date]:
    """First and last day (both inclusive) of the time window, "All time" starting at the first day with data."""
    last = (c.end - dt.timedelta(microseconds=1)).date()  # the window's end is exclusive (midnight after its last day)
    first = c.start.date()
    oldest = (c.fresh or {}).get("first_event_date")
    if oldest is not None and oldest > first:
        first = oldest
    return first, last


def window_caption(c: Ctx) -> str:
    """'Last 7 days: 2026-11-21 to 2026-11-27 (UTC)': the time window with inclusive dates."""
    first, last = window_dates(c)
    if first.year <= 1970:  # "All time" on a home whose turns carry no date partition: no first day to name
        return f"{c.window_label}: up to {last:%Y-%m-%d} (UTC)"
    return f"{c.window_label}: {first:%Y-%m-%d} to {last:%Y-%m-%d} (UTC)"


def ctx() -> Ctx:
    """The frame context app.py stored for this run."""
    c = st.session_state.get("_ctx")
    if c is None:
        st.error("Open the dashboard through dashboards/app.py (`monitor dashboard`), not a page file directly.")
        st.stop()
    return c


def error_text(e: MonitorError) -> str:
    """'**Query refused**: DROP is not allowed  \nTry: ...': the title once, even when the message repeats it."""
    msg = str(e.message)
    if msg.lower().startswith(e.title.lower() + ":"):  # 'query refused: ...' under the title 'Query refused'
        msg = msg[len(e.title) + 1:].lstrip()
    return f"**{e.title}**: {msg}" + (f"  \nTry: {e.hint}" if e.hint else "")


def show_error(e: Exception) -> None:
    """Show a MonitorError as a one-line error with its hint; anything else with its type."""
    if isinstance(e, MonitorError):
        st.error(error_text(e))
    else:
        st.error(f"{type(e).__name__}: {e}")


def guarded(fn: Callable, *args, **kwargs):
    """Call a data function, showing its error on the page (and returning None) instead of crashing the page."""
    try:
        return fn(*args, **kwargs)
    except MonitorError as e:
        show_error(e)
        return None


def can_act(c: Ctx, what: str = "act") -> bool:
    """Whether actions are allowed: not read-only, and a reviewer name is set (else say how to get there)."""
    if c.read_only:
        st.caption("Read-only role: actions are hidden (dashboard.read_only in monitor.toml).")
        return False
    if not c.reviewer.strip():
        st.warning(f"Enter your name under **Reviewer** in the sidebar to {what}.")
        return False
    return True


def chart(fig, key: str | None = None) -> None:
    st.plotly_chart(fig, key=key)


def is_rate(metric: str) -> bool:
    """Whether a metric's value is a share (shown as a percentage) rather than a score or a statistic."""
    base = metric[len(PROBE_PREFIX):] if metric.startswith(PROBE_PREFIX) else metric
    return base.endswith(("_rate", "_share")) or (base.endswith("_disparity") and base != "value_disparity")


def fmt_value(metric: str, v) -> str:
    """A metric value as text: a percentage for rates, three decimals for scores and drift statistics."""
    if not is_rate(metric):
        try:
            return "n/a" if v is None or v != v else f"{v:.3f}"
        except TypeError:
            return "n/a"
    return pct(v)


MISSING = "—"


def as_text(df, formats: dict[str, str]):
    """A copy of `df` with the named number columns as text ('%.2g' style formats), '—' where there is no value.

    For columns where a value is often not computed (p-values of untested groups, kappa without overlap): a table
    would show such a cell as 'None' or 'nan'.
    """
    out = df.copy()
    for col, f in formats.items():
        if col in out:
            out[col] = [MISSING if v is None or (isinstance(v, float) and v != v) else (f % v)
                        for v in out[col].astype(object)]
    return out


def pct(v) -> str:
    try:
        return "n/a" if v is None or v != v else f"{v:.1%}"
    except TypeError:
        return "n/a"
