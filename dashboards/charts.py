"""Chart builders: pure functions from a DataFrame to a Plotly figure, testable without Streamlit.

Conventions kept on every chart: one fixed colour per model version (from `color_map`, grey for "all models"),
a 95% interval drawn around every rate (a shaded band on lines, error bars on points and bars), and samples
below the minimum size drawn as hollow markers so nobody mistakes them for solid evidence.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#332288", "#117733",
           "#882255"]  # Okabe-Ito first: distinguishable with the common colour-vision deficiencies
ALL_MODELS = "all models"
ALL_COLOR = "#555555"
SEVERITY_COLORS = {"critical": "#C0392B", "warning": "#E67E22", "info": "#2E86C1"}
_LAYOUT = dict(margin=dict(l=40, r=20, t=50, b=40), legend=dict(orientation="h", y=-0.2), hovermode="closest",
               template="plotly_white")


def color_map(models: list[str]) -> dict[str, str]:
    """A colour per model name, fixed by the sorted order of every model in the home."""
    out = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(sorted(set(m for m in models if m)))}
    out[ALL_MODELS] = ALL_COLOR
    return out


def _color(colors: dict[str, str], model: str) -> str:
    return colors.get(model) or PALETTE[abs(hash(model)) % len(PALETTE)]


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def empty_figure(message: str) -> go.Figure:
    """A blank figure carrying a message (used when a filter leaves nothing to draw)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=200, **_LAYOUT)
    return fig


def _fmt_pct(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _band_traces(d: pd.DataFrame, name: str, color: str, group: str, show_legend: bool = True,
                 x: str = "window_start", percent: bool = True) -> list[go.BaseTraceType]:
    """A line with a shaded 95% interval band and hollow markers where the sample is small."""
    d = d.sort_values(x)
    small = d["small_sample"].fillna(False).astype(bool) if "small_sample" in d else pd.Series(False, index=d.index)
    fmt = ".1%" if percent else ".3f"
    hover = [f"{name}<br>%{{x|%Y-%m-%d %H:%M}}<br>value %{{y:{fmt}}}<br>95% CI {lo:{fmt}}–{hi:{fmt}}<br>n={int(n):,}"
             + (" (small sample)" if s else "") + "<extra></extra>"
             for lo, hi, n, s in zip(d["ci_low"].fillna(d["value"]), d["ci_high"].fillna(d["value"]),
                                     d["n"].fillna(0), small)]
    traces = [
        go.Scatter(x=d[x], y=d["ci_high"], mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False,
                   legendgroup=group, name=f"{name} upper"),
        go.Scatter(x=d[x], y=d["ci_low"], mode="lines", line=dict(width=0), fill="tonexty",
                   fillcolor=_rgba(color, 0.18), hoverinfo="skip", showlegend=False, legendgroup=group,
                   name=f"{name} 95% CI"),
        go.Scatter(x=d[x], y=d["value"], mode="lines+markers", name=name, legendgroup=group, showlegend=show_legend,
                   line=dict(color=color, width=2),
                   marker=dict(color=[("white" if s else color) for s in small], size=7,
                               line=dict(color=color, width=1.5)),
                   hovertemplate=hover),
    ]
    if "corrected" in d and d["corrected"].notna().any():
        traces.append(go.Scatter(x=d[x], y=d["corrected"], mode="lines", name=f"{name} (error-corrected)",
                                 legendgroup=group, showlegend=show_legend, line=dict(color=color, dash="dot"),
                                 hovertemplate=f"{name} corrected<br>%{{y:{fmt}}}<extra></extra>"))
    return traces


SMALL_MULTIPLES_ABOVE = 3  # more lines than this, each with its band, overlap into an unreadable tangle


def rate_lines(df: pd.DataFrame, colors: dict[str, str], title: str, y_title: str = "rate",
               by: str = "model_label", percent: bool = True) -> go.Figure:
    """Rate over time, one line per `by` value, each with its 95% interval band; with more than
    `SMALL_MULTIPLES_ABOVE` values, one small panel per value instead, stacked on shared axes."""
    if df.empty:
        return empty_figure("No data in this window")
    groups = list(df.groupby(by, sort=True))
    if len(groups) > SMALL_MULTIPLES_ABOVE:
        return _rate_panels(groups, colors, title, y_title, by, percent)
    fig = go.Figure()
    for i, (key, d) in enumerate(groups):
        color = _color(colors, key) if by == "model_label" else PALETTE[i % len(PALETTE)]
        for t in _band_traces(d, str(key), color, str(key), percent=percent):
            fig.add_trace(t)
    fig.update_layout(title=title, yaxis_title=y_title, **_LAYOUT)
    if percent:
        fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def _rate_panels(groups: list, colors: dict[str, str], title: str, y_title: str, by: str,
                 percent: bool) -> go.Figure:
    """Small multiples: one row per group, the same time and rate axes on every row, so levels compare."""
    n = len(groups)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, shared_yaxes=True, vertical_spacing=min(0.06, 0.3 / n),
                        subplot_titles=[str(k) for k, _ in groups])
    for i, (key, d) in enumerate(groups):
        color = _color(colors, key) if by == "model_label" else PALETTE[i % len(PALETTE)]
        for t in _band_traces(d, str(key), color, str(key), show_legend=False, percent=percent):
            fig.add_trace(t, row=i + 1, col=1)
    layout = {**_LAYOUT, "margin": dict(l=40, r=20, t=70, b=30)}
    fig.update_layout(title=title, height=120 + 110 * n, showlegend=False, **layout)
    fig.update_yaxes(title_text=None)
    fig.update_yaxes(title_text=y_title, row=(n + 1) // 2, col=1)
    top = max(float(pd.concat([d["ci_high"].fillna(d["value"]) for _, d in groups]).max()), 0.0)
    if percent:  # one range for every row: shared_yaxes alone links rows only within a column
        fig.update_yaxes(tickformat=".0%", range=[0, top * 1.05 if top > 0 else 1], matches="y")
    else:
        fig.update_yaxes(matches="y")
    fig.update_annotations(font_size=12)
    return fig


def over_under_side_by_side(over: pd.DataFrame, under: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Over-refusal and under-refusal per model over time, in two panels sharing the time axis."""
    if over.empty and under.empty:
        return empty_figure("No refusal metrics in this window")
    fig = make_subplots(rows=1, cols=2, shared_xaxes=True, horizontal_spacing=0.08,
                        subplot_titles=("Over-refusal", "Under-refusal"))
    for col, df in ((1, over), (2, under)):
        for key, d in df.groupby("model_label", sort=True):
            for t in _band_traces(d, str(key), _color(colors, key), str(key), show_legend=col == 1):
                fig.add_trace(t, row=1, col=col)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_annotations(font_size=13)  # the subplot titles: short, so two fit side by side at 800 px
    fig.update_layout(height=380, **_LAYOUT)
    return fig


def tradeoff_scatter(over: pd.DataFrame, under: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Safety/helpfulness trade-off: one point per model and window, over-refusal (x) against under-refusal (y)."""
    keys = ["window_start", "model_label"]
    if over.empty or under.empty:
        return empty_figure("Needs both over- and under-refusal metrics")
    cols = keys + ["value", "ci_low", "ci_high", "n", "small_sample"]
    m = _with_small(over)[cols].merge(_with_small(under)[cols], on=keys, suffixes=("_over", "_under"))
    if m.empty:
        return empty_figure("No window has both rates")
    fig = go.Figure()
    m["small"] = m["small_sample_over"] | m["small_sample_under"]
    for key, d in m.groupby("model_label", sort=True):
        c = _color(colors, key)
        fig.add_trace(go.Scatter(
            x=d["value_over"], y=d["value_under"], mode="markers", name=str(key),
            # hollow: either rate rests on a small sample (as on every other chart)
            marker=dict(color=["white" if sm else c for sm in d["small"]], size=9, opacity=0.85,
                        line=dict(color=c, width=1.5)),
            error_x=dict(type="data", symmetric=False, array=d["ci_high_over"] - d["value_over"],
                         arrayminus=d["value_over"] - d["ci_low_over"], color=_rgba(c, 0.4), thickness=1),
            error_y=dict(type="data", symmetric=False, array=d["ci_high_under"] - d["value_under"],
                         arrayminus=d["value_under"] - d["ci_low_under"], color=_rgba(c, 0.4), thickness=1),
            customdata=list(zip(d["window_start"].dt.strftime("%Y-%m-%d"), d["n_over"], d["n_under"],
                                ["<br>small sample" if sm else "" for sm in d["small"]])),
            hovertemplate=(f"{key} %{{customdata[0]}}<br>over-refusal %{{x:.1%}} (n=%{{customdata[1]}})"
                           "<br>under-refusal %{y:.1%} (n=%{customdata[2]})%{customdata[3]}<extra></extra>")))
    fig.update_layout(title="Safety / helpfulness trade-off",
                      xaxis_title="over-refusal rate", yaxis_title="under-refusal rate", **_LAYOUT)
    fig.update_xaxes(tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def _with_small(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a boolean `small_sample` column (False where the metric row did not say)."""
    small = df["small_sample"] if "small_sample" in df else pd.Series(False, index=df.index)
    return df.assign(small_sample=small.fillna(False).astype(bool))


def wilson(k: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson 95% interval of k successes out of n."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def feedback_chart(vol: pd.DataFrame, colors: dict[str, str], min_n: int = 30) -> go.Figure:
    """Thumbs-down share of rated replies per model, with Wilson intervals and the counts in the hover."""
    if vol.empty or (vol["thumbs_up"].sum() + vol["thumbs_down"].sum()) == 0:
        return empty_figure("No thumbs up/down feedback in these logs")
    g = vol.groupby("model", sort=True)[["thumbs_up", "thumbs_down"]].sum().reset_index()
    g["n"] = g["thumbs_up"] + g["thumbs_down"]
    g = g[g["n"] > 0]
    g["rate"] = g["thumbs_down"] / g["n"]
    ci = [wilson(k, n) for k, n in zip(g["thumbs_down"], g["n"])]
    g["lo"], g["hi"] = [c[0] for c in ci], [c[1] for c in ci]
    fig = go.Figure(go.Bar(
        x=g["model"], y=g["rate"], marker_color=[_color(colors, m) for m in g["model"]],
        marker_pattern_shape=["/" if n < min_n else "" for n in g["n"]],
        error_y=dict(type="data", symmetric=False, array=g["hi"] - g["rate"], arrayminus=g["rate"] - g["lo"]),
        customdata=list(zip(g["thumbs_up"], g["thumbs_down"], g["lo"], g["hi"])),
        hovertemplate=("%{x}<br>thumbs down %{y:.1%} (95% CI %{customdata[2]:.1%}–%{customdata[3]:.1%})"
                       "<br>👍 %{customdata[0]:,}  👎 %{customdata[1]:,}<extra></extra>")))
    fig.update_layout(title="Thumbs down (feedback)", yaxis_tickformat=".0%",
                      **_LAYOUT)
    return fig


def volume_chart(vol: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Turns per day, stacked by model."""
    if vol.empty:
        return empty_figure("No turns in this window")
    fig = go.Figure()
    for key, d in vol.groupby("model", sort=True):
        fig.add_trace(go.Bar(x=d["day"], y=d["turns"], name=str(key), marker_color=_color(colors, key),
                             hovertemplate=f"{key}<br>%{{x|%Y-%m-%d}}: %{{y:,}} turns<extra></extra>"))
    fig.update_layout(barmode="stack", title="Volume: assistant replies per day", yaxis_title="turns", **_LAYOUT)
    return fig


def severity_chart(alerts: pd.DataFrame) -> go.Figure:
    """Open alerts (firing or acknowledged) counted by severity."""
    order = ["critical", "warning", "info"]
    counts = {s: 0 for s in order}
    if not alerts.empty:
        open_ = alerts[alerts["status"].isin(["firing", "acknowledged"])]
        for s, n in open_["severity"].value_counts().items():
            counts[s] = counts.get(s, 0) + int(n)
    fig = go.Figure(go.Bar(x=list(counts), y=list(counts.values()),
                           marker_color=[SEVERITY_COLORS.get(s, ALL_COLOR) for s in counts],
                           text=list(counts.values()), textposition="outside"))
    fig.update_layout(title="Open alerts by severity", yaxis_title="alerts", height=300, **_LAYOUT)
    # whole alerts only, and no negative axis when there are none (Plotly centres an all-zero axis on 0)
    top = max(3, max(counts.values()) * 1.25)
    fig.update_yaxes(rangemode="tozero", range=[0, top], dtick=max(1, int(top // 5)))
    return fig


def alert_context(series: pd.DataFrame, alert: dict, colors: dict[str, str], percent: bool = True,
                  title: str | None = None) -> go.Figure:
    """The alert's metric around its window, with the window shaded and the threshold and reference drawn."""
    num = (lambda v: f"{v:.1%}") if percent else (lambda v: f"{v:.2f}")
    if series.empty:
        fig = empty_figure("No metric rows around this window")
    else:
        fig = go.Figure()
        for key, d in series.groupby("model_label", sort=True):
            for t in _band_traces(d, str(key), _color(colors, key), str(key), percent=percent):
                fig.add_trace(t)
        fig.update_yaxes(tickformat=".0%" if percent else None, rangemode="tozero")
        fig.update_layout(**_LAYOUT)
    ws, we = pd.Timestamp(alert["window_start"].rstrip("Z")), pd.Timestamp(alert["window_end"].rstrip("Z"))
    fig.add_vrect(x0=ws, x1=we, fillcolor=SEVERITY_COLORS.get(alert.get("severity"), ALL_COLOR), opacity=0.12,
                  line_width=0, annotation_text="alert window", annotation_position="top left")
    if alert.get("threshold") is not None:
        fig.add_hline(y=alert["threshold"], line_dash="dash", line_color="#C0392B",
                      annotation_text=f"threshold {num(alert['threshold'])}", annotation_position="top left")
    if alert.get("reference") is not None:
        fig.add_hline(y=alert["reference"], line_dash="dot", line_color="#555555",
                      annotation_text=f"reference {num(alert['reference'])}", annotation_position="top right")
    fig.update_layout(title=title or f"{alert['metric']} around the alert window", xaxis_visible=True,
                      yaxis_visible=True, height=360)
    return fig


def group_rates(df: pd.DataFrame, title: str, percent: bool = True) -> go.Figure:
    """Per-group rates with 95% intervals, the reference rate, significant groups in red and small-n groups hollow."""
    if df.empty:
        return empty_figure("No groups to compare")
    d = df.sort_values("value", ascending=False)
    sig = d["significant"].fillna(False).astype(bool)
    small = ~d["min_n_ok"].fillna(True).astype(bool)
    colors = ["#C0392B" if s else "#0072B2" for s in sig]
    fmt = ".1%" if percent else ".3f"

    def num(v, f=fmt, sign=""):  # hover text: tests are not run on small groups, so many values are missing
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:{sign}{f}}"

    text = [f"{g}<br>{'rate' if percent else 'mean'} {num(v)} (95% CI {num(lo)}–{num(hi)}, n={int(n):,})<br>"
            f"gap {num(gap, sign='+')}, ratio {num(ratio, '.2f')}<br>q={num(q, '.3g')} (after BH correction)"
            f"{'' if ok else ' · below minimum n: not tested'}<br>reference {num(ref)}"
            for g, v, lo, hi, n, gap, ratio, q, ok, ref in zip(
                d["group_label"], d["value"], d["ci_low"], d["ci_high"], d["n"].fillna(0), d["gap"], d["ratio"],
                d["q_value"], ~small, d["reference_rate"])]
    fig = go.Figure(go.Scatter(
        x=d["group_label"], y=d["value"], mode="markers",
        marker=dict(size=12, symbol=["diamond" if s else "circle" for s in sig],
                    color=["white" if sm else c for sm, c in zip(small, colors)],
                    line=dict(color=colors, width=2)),
        # rates and value scores are never negative: a t interval reaching below 0 is cut there
        error_y=dict(type="data", symmetric=False, array=(d["ci_high"] - d["value"]).fillna(0),
                     arrayminus=(d["value"] - d["ci_low"].clip(lower=0)).fillna(0)),
        hovertext=text, hoverinfo="text", name="group"))
    ref = pd.to_numeric(d["reference_rate"], errors="coerce")
    if ref.notna().any():
        # each group's own reference (the rest of the traffic without that group), drawn as a grey tick beside it
        fig.add_trace(go.Scatter(
            x=d["group_label"], y=ref, mode="markers", name="reference (rest of traffic)",
            marker=dict(symbol="line-ew-open", size=26, color="#555555", line=dict(width=2)),
            hovertext=[f"{g}: reference {num(v)}" for g, v in zip(d["group_label"], ref)], hoverinfo="text"))
    # no legend (the page's caption explains the marks): below angled group names it would cover them
    fig.update_layout(title=title, yaxis_title="rate" if percent else "mean score", **_LAYOUT)
    fig.update_layout(showlegend=False)
    fig.update_xaxes(tickangle=-30, automargin=True)
    if percent:
        fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    return fig


def value_profile(df: pd.DataFrame, colors: dict[str, str]) -> go.Figure:
    """Mean value-dimension score per model (grouped bars with 95% intervals)."""
    if df.empty:
        return empty_figure("No value profile in this window")
    fig = go.Figure()
    df = _with_small(df)
    for key, d in df.groupby("model_label", sort=True):
        # scores are never negative: a t interval reaching below 0 on a skewed, mostly-zero score is cut at 0
        lo = d["ci_low"].clip(lower=0)
        c = _color(colors, key)
        fig.add_trace(go.Bar(
            x=d["dimension"], y=d["value"], name=str(key),
            # a small sample: a pale, hatched bar (as the feedback chart does), the model's colour on its outline
            marker=dict(color=[_rgba(c, 0.35) if sm else c for sm in d["small_sample"]], line=dict(color=c, width=1),
                        pattern_shape=["/" if sm else "" for sm in d["small_sample"]]),
            error_y=dict(type="data", symmetric=False, array=(d["ci_high"] - d["value"]).fillna(0),
                         arrayminus=(d["value"] - lo).fillna(0)),
            customdata=list(zip(d["n"].fillna(0).astype(int), ["<br>small sample" if sm else ""
                                                               for sm in d["small_sample"]])),
            hovertemplate=f"{key}<br>%{{x}}: %{{y:.3f}} (n=%{{customdata[0]:,}})%{{customdata[1]}}<extra></extra>"))
    fig.update_layout(barmode="group", title="Value profile: mean score per dimension", yaxis_title="mean score",
                      **_LAYOUT)
    fig.update_xaxes(tickangle=-35, automargin=True)
    return fig


def drift_heatmap(df: pd.DataFrame) -> go.Figure:
    """Drift statistic per dimension and window; cells where the test said 'drift' are marked with a dot, cells
    below the minimum sample size (column `small_sample`) are drawn grey with a '○' instead of in colour."""
    if df.empty:
        return empty_figure("No drift verdicts in this window")
    df = _with_small(df)
    piv = df.pivot_table(index="dimension", columns="window", values="value", aggfunc="max")
    flag = df.pivot_table(index="dimension", columns="window", values="drifted", aggfunc="max").reindex_like(piv)
    small = df.pivot_table(index="dimension", columns="window", values="small_sample",
                           aggfunc="max").reindex_like(piv).fillna(False).astype(bool)
    n = df.pivot_table(index="dimension", columns="window", values="n", aggfunc="max").reindex_like(piv)
    x, y = [str(c) for c in piv.columns], list(piv.index)
    stat = [[("n/a" if v != v else f"{v:.3f}") for v in row] for row in piv.to_numpy()]
    ns = [[("n/a" if v != v else f"{int(v):,}") for v in row] for row in n.to_numpy()]
    hover = [[[st_, n_] for st_, n_ in zip(sr, nr)] for sr, nr in zip(stat, ns)]
    marks = [["●" if bool(f) else "" for f in row] for row in flag.fillna(False).to_numpy()]
    fig = go.Figure()
    if small.to_numpy().any():
        # small samples: grey cells with a '○', so their statistic is not read off the colour scale
        fig.add_trace(go.Heatmap(
            z=piv.notna().astype(float).where(small).to_numpy(), x=x, y=y, zmin=0, zmax=1,
            colorscale=[[0, "#dddddd"], [1, "#dddddd"]], showscale=False, customdata=hover,
            text=[["○" if sm else "" for sm in row] for row in small.to_numpy()], texttemplate="%{text}",
            hovertemplate=("%{y} %{x}<br>statistic %{customdata[0]} (n=%{customdata[1]}): too few replies, "
                           "not tested<extra></extra>")))
    fig.add_trace(go.Heatmap(z=piv.where(~small).to_numpy(), x=x, y=y, text=marks, texttemplate="%{text}",
                             colorscale="OrRd", colorbar=dict(title="drift statistic"), customdata=hover,
                             hovertemplate="%{y} %{x}<br>statistic %{customdata[0]} (n=%{customdata[1]})"
                                           "<extra></extra>"))
    fig.update_layout(title="Drift by dimension (● drift, ○ too few replies)", **_LAYOUT)
    return fig
