"""`monitor metrics`: the computed metric rows, as a table or as JSON for scripts and notebooks."""
from __future__ import annotations

import datetime as dt
import difflib
import json
import math

import click

from monitor.errors import MonitorError
from monitor.state import iso

_JSON_FIELDS = ("metric", "family", "granularity", "window_start", "window_end", "model", "deployment", "segment",
                "value", "ci_low", "ci_high", "n", "numerator", "small_sample", "corrected", "corrected_ci_low",
                "corrected_ci_high", "details", "computed_at")


def parse_since(value: str | None) -> dt.datetime | None:
    """A date or ISO 8601 timestamp (UTC; a trailing Z or offset is honoured) as naive UTC."""
    if not value:
        return None
    text = value.strip()
    try:
        ts = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MonitorError(f"--since {value!r} is not a date", "use YYYY-MM-DD or 2026-11-01T12:00:00Z") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ts


def _num(x):
    if x is None:
        return None
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def metric_rows(home, metric: str | None = None, since: dt.datetime | None = None,
                model: str | None = None) -> list[dict]:
    """The latest metric rows as JSON-ready dicts (timestamps ISO 8601 with Z, segment/details as objects)."""
    import duckdb

    from monitor.db import connect
    from monitor.errors import QueryError
    from monitor.resources import load_sql

    q = load_sql("queries/metrics_list.sql")
    con = connect(home)
    try:
        cur = con.execute(q.sql, {"metric": metric, "since": since, "model": model})
        names = [d[0] for d in cur.description]
        raw = cur.fetchall()
    except duckdb.Error as e:
        raise QueryError(f"listing metrics failed: {e}") from e
    finally:
        con.close()
    out = []
    for values in raw:
        r = dict(zip(names, values))
        r["window_start"], r["window_end"] = iso(r["window_start"]), iso(r["window_end"])
        r["computed_at"] = iso(r["computed_at"])
        r["segment"] = json.loads(r["segment"] or "{}")
        r["details"] = json.loads(r["details"]) if r["details"] else {}
        for k in ("value", "ci_low", "ci_high", "numerator", "corrected", "corrected_ci_low", "corrected_ci_high"):
            r[k] = _num(r[k])
        out.append({k: r[k] for k in _JSON_FIELDS})
    return out


def _fmt(x, pct: bool) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if pct else f"{x:,.0f}"


def _table(rows: list[dict]) -> str:
    head = ("metric", "window", "model", "segment", "value", "95% CI", "n", "corrected", "")
    lines = []
    for r in rows:
        rate = r["metric"] != "turn_count" and r["ci_low"] is not None
        ci = f"{_fmt(r['ci_low'], True)}-{_fmt(r['ci_high'], True)}" if r["ci_low"] is not None else ""
        corr = ""
        if r["corrected"] is not None:
            corr = f"{r['corrected']:.3f} ({_fmt(r['corrected_ci_low'], True)}-{_fmt(r['corrected_ci_high'], True)})"
        seg = ", ".join(f"{k}={v}" for k, v in r["segment"].items()) or "all"
        model = r["model"] or "all"
        if r["deployment"]:
            model += f" @{r['deployment']}"
        lines.append((r["metric"], r["window_start"][:16].replace("T", " "), model, seg, _fmt(r["value"], rate), ci,
                      f"{r['n']:,}", corr, "small n" if r["small_sample"] else ""))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row).rstrip() for row in [head, *lines])


def metric_names(home) -> list[str]:
    """Every metric name the home has rows of, with every metric the jobs write (some may have no rows yet)."""
    import duckdb

    from monitor.db import connect
    from monitor.metrics import WRITTEN_METRICS

    con = connect(home)
    try:
        present = {r[0] for r in con.execute("SELECT DISTINCT metric FROM metrics").fetchall()}
    except duckdb.Error:
        present = set()
    finally:
        con.close()
    return sorted(present | set(WRITTEN_METRICS))


def _check_metric_name(home, metric: str) -> None:
    names = metric_names(home)
    if metric in names:
        return
    close = difflib.get_close_matches(metric, names, 1)
    raise MonitorError(f"--metric {metric!r} is not a metric of this home",
                       (f"did you mean {close[0]!r}? " if close else "") + f"metrics: {', '.join(names)}")


@click.command("metrics")
@click.option("--metric", "metric", metavar="NAME", help="Only this metric (e.g. over_refusal_rate).")
@click.option("--since", metavar="DATE", help="Only windows starting on or after DATE (YYYY-MM-DD or ISO 8601).")
@click.option("--model", metavar="M", help="Only rows of model M (rows for all models have model null).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of metric objects.")
@click.pass_obj
def metrics_cmd(obj, metric, since, model, as_json):
    """Show the computed metrics (latest computation of every window, model and segment).

    Rates carry a 95% Wilson interval and n; over- and under-refusal also carry the value corrected for the
    classifiers' measured error rates. Segment {} (or "all") is all traffic, model null all models.

    \b
    Examples:
      monitor metrics --metric over_refusal_rate --since 2026-11-01
      monitor metrics --json | jq '.[] | select(.segment == {})'
    """
    rows = metric_rows(obj.home, metric, parse_since(since), model)
    if metric is not None and not rows:
        _check_metric_name(obj.home, metric)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no metric rows match (run `monitor jobs run` first, or widen --since / --model)", err=True)
        return
    click.echo(_table(rows))
    click.echo(f"{len(rows):,} rows", err=True)


commands = [metrics_cmd]
