"""`monitor disparity`: per-group disparity of one window as a terminal table (for an incident doc) or JSON.

A group whose replies the classifiers read none of (the language gate) has no disparity row; it is listed as
unmeasured (n 0, no value) with its label estimate, from reviewer labels, where one exists
(monitor/disparity/unmeasured.py)."""
from __future__ import annotations

import datetime as dt
import difflib
import json
import math

import click

from monitor.errors import MonitorError
from monitor.state import iso

RATE_METRICS = ("refusal_disparity", "over_refusal_disparity", "under_refusal_disparity")
VALUE_METRIC = "value_disparity"
_ROW_FIELDS = ("metric", "source", "granularity", "window_start", "window_end", "model", "attribute", "group",
                "dimension", "segment", "n", "value", "ci_low", "ci_high", "reference_label", "reference_value",
                "reference_n", "gap", "ratio", "four_fifths_ratio", "four_fifths_flag", "test", "p_value",
                "q_value", "significant", "adverse", "direction", "min_n_ok", "small_sample", "is_reference",
                "bh_family_size", "fdr", "min_n")
# Added to every row by monitor/disparity/unmeasured.py: unmeasured (bool), note (the unmeasured marker), unscored
# (the group's replies left unscored in the window), label_estimate (from reviewer labels; None where there is none).
_JSON_FIELDS = _ROW_FIELDS + ("unmeasured", "note", "unscored", "label_estimate")


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def parse_day(value: str | None) -> dt.date | None:
    """A YYYY-MM-DD date (or an ISO timestamp, whose day is used)."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00")).date()
    except ValueError:
        raise MonitorError(f"--window {value!r} is not a date", "use YYYY-MM-DD, e.g. --window 2026-11-14") from None


def _base(metric: str) -> str:
    return metric.removeprefix("probe_")


def disparity_rows(home, attribute: str | None = None, day: dt.date | None = None, model: str | None = None,
                   metrics: tuple[str, ...] = RATE_METRICS, dimension: str | None = None) -> list[dict]:
    """The latest disparity rows of one window (or day) as flat JSON-ready dicts; MonitorError naming the valid
    choices when a filter matches nothing."""
    import duckdb

    from monitor.db import connect
    from monitor.errors import QueryError
    from monitor.resources import load_sql

    con = connect(home)
    try:
        cur = con.execute(load_sql("disparity/cli_rows.sql").sql,
                          {"day": day, "model": model, "attribute": attribute})
        names = [d[0] for d in cur.description]
        raw = [dict(zip(names, v)) for v in cur.fetchall()]
        choices = None if raw else con.execute(load_sql("disparity/cli_choices.sql").sql).fetchall()
    except duckdb.Error as e:
        raise QueryError(f"reading disparity rows failed: {e}") from e
    finally:
        con.close()
    if choices is not None:
        _explain_empty(choices, attribute, day, model)
    out = []
    for r in raw:
        if _base(r["metric"]) not in metrics:
            continue
        d = json.loads(r["details"]) if r["details"] else {}
        seg = json.loads(r["segment"] or "{}")
        if dimension is not None and d.get("dimension") != dimension:
            continue
        row = {
            "metric": r["metric"], "source": d.get("source") or ("probe" if r["metric"].startswith("probe_")
                                                                 else "production"),
            "granularity": r["granularity"], "window_start": iso(r["window_start"]),
            "window_end": iso(r["window_end"]), "model": r["model"], "attribute": d.get("attribute"),
            "group": d.get("group"), "dimension": d.get("dimension"), "segment": seg, "n": int(r["n"]),
            "value": _num(r["value"]), "ci_low": _num(r["ci_low"]), "ci_high": _num(r["ci_high"]),
            "reference_value": d.get("reference_mean") if d.get("dimension") else d.get("reference_rate"),
            "small_sample": bool(r["small_sample"]),
        }
        for k in _ROW_FIELDS:
            if k not in row:
                row[k] = d.get(k)
        out.append({k: row[k] for k in _ROW_FIELDS})
    if raw and not out:
        _explain_filtered(raw, metrics, dimension)
    from monitor.disparity.unmeasured import add_unmeasured

    return [{k: r.get(k) for k in _JSON_FIELDS} for r in add_unmeasured(home, out, _base)]


def _explain_filtered(raw: list[dict], metrics: tuple[str, ...], dimension: str | None) -> None:
    """The window has disparity rows, but none of the chosen metrics or dimension: name those it has."""
    if dimension is not None:
        dims = sorted({json.loads(r["details"] or "{}").get("dimension") for r in raw} - {None})
        close = difflib.get_close_matches(dimension, dims, 1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise MonitorError(f"no value_disparity rows for dimension {dimension!r} in this window",
                           hint + f"dimensions: {', '.join(dims) or 'none (no value scores in this window)'}")
    present = sorted({_base(r["metric"]) for r in raw})
    raise MonitorError(f"no {' / '.join(metrics)} rows in this window", f"metrics with rows: {', '.join(present)}")


def _explain_empty(choices, attribute, day, model) -> None:
    if not choices:
        return  # no disparity rows at all: the caller says so
    models = sorted({c[0] for c in choices if c[0] is not None})
    attrs = sorted({c[1] for c in choices if c[1]})
    days = sorted({c[2] for c in choices}, reverse=True)
    if model is not None and model not in models:
        close = difflib.get_close_matches(model, models, 1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise MonitorError(f"no disparity rows for model {model!r}",
                           hint + f"models: {', '.join(models) or 'none'} (omit --model for all models together)")
    if attribute is not None and attribute not in attrs:
        close = difflib.get_close_matches(attribute, attrs, 1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise MonitorError(f"no disparity rows for attribute {attribute!r}", hint + f"attributes: {', '.join(attrs)}")
    if day is not None:
        raise MonitorError(f"no disparity rows for window {day.isoformat()} with these filters",
                           "latest windows with rows: " + ", ".join(d.isoformat() for d in days[:5]))


def _f3(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _signed(x) -> str:
    return "-" if x is None else f"{x:+.3f}"


def _p(x) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if x >= 0.001 else f"{x:.1e}"


def _finding(r: dict) -> str:
    if r.get("unmeasured"):
        return r["note"]
    if r["is_reference"]:
        return "reference"
    if r["adverse"]:
        return "ADVERSE"
    if r["significant"]:
        if r["dimension"]:
            return f"significant ({r['direction']})"
        return "significant (better off)"
    return "not tested" if r["p_value"] is None else ""


def render(rows: list[dict]) -> str:
    """Terminal text: one block per window, metric and attribute, one line per group (unmeasured groups last), then
    the groups' label estimates."""
    from monitor.disparity.unmeasured import estimate_lines

    blocks = []
    keyf = (lambda r: (r["window_start"], r["source"], _base(r["metric"]), r["attribute"] or "",
                       r["dimension"] or ""))
    order = sorted({keyf(r) for r in rows})
    for key in order:
        grp = [r for r in rows if keyf(r) == key]
        first = grp[0]
        value_metric = first["dimension"] is not None
        what = f"{first['metric']}" + (f" [{first['dimension']}]" if value_metric else "")
        ref = next((r["reference_label"] for r in grp if r["reference_label"]), "rest of traffic")
        # The window's family size, as the tested rows carry it; a block without a tested row was in no family.
        fam = max((r["bh_family_size"] or 0) for r in grp)
        tests = f"BH family {fam} tests" if fam else "no group tested"
        title = (f"{what} by {first['attribute']}, window {first['window_start'][:16].replace('T', ' ')}, "
                 f"{first['model'] or 'all models'}; reference: {ref}; {tests}, "
                 f"FDR {first['fdr']}, min n {first['min_n']}")
        head = ("group", "n", "mean" if value_metric else "rate", "95% CI", "ref", "ref n", "gap", "ratio",
                "4/5", "p", "q", "finding", "small n")
        lines = []
        for r in sorted(grp, key=lambda r: (bool(r.get("unmeasured")), r["group"] == "other", -(r["value"] or 0),
                                            str(r["group"]))):
            ci = f"{_f3(r['ci_low'])}-{_f3(r['ci_high'])}" if r["ci_low"] is not None else "-"
            ff = "n/a" if value_metric else ("FLAG" if r["four_fifths_flag"] else
                                             ("ok" if r["four_fifths_ratio"] is not None else "-"))
            lines.append((str(r["group"]), f"{r['n']:,}", _f3(r["value"]), ci, _f3(r["reference_value"]),
                          "-" if r["reference_n"] is None else f"{r['reference_n']:,}", _signed(r["gap"]),
                          "-" if r["ratio"] is None else f"{r['ratio']:.2f}", ff, _p(r["p_value"]),
                          _p(r["q_value"]), _finding(r), "yes" if r["small_sample"] else ""))
        widths = [max(len(x) for x in col) for col in zip(head, *lines)]
        right = {1, 2, 4, 5, 6, 7, 9, 10}
        fmt = "  ".join(f"{{:>{w}}}" if i in right else f"{{:<{w}}}" for i, w in enumerate(widths))
        blocks.append("\n".join([title] + [fmt.format(*row).rstrip() for row in [head, *lines]]
                                 + estimate_lines(grp)))
    return "\n\n".join(blocks)


def summary(rows: list[dict]) -> str:
    """One line: rows, adverse findings, other significant findings, rows below the minimum n."""
    adverse = sum(r["adverse"] for r in rows)
    sig = sum(r["significant"] and not r["adverse"] for r in rows)
    unmeasured = sum(bool(r.get("unmeasured")) for r in rows)
    small = sum(r["small_sample"] for r in rows) - unmeasured
    estimates = sum(bool(r.get("label_estimate")) for r in rows)
    return (f"{len(rows):,} group rows: {adverse} adverse, {sig} other significant, {small} below min n "
            f"(reported, never tested)" + (f", {unmeasured} unmeasured (unscored, language gate)" if unmeasured else "")
            + (f", {estimates} with a label estimate (from human labels)" if estimates else ""))


@click.command("disparity")
@click.option("--attribute", metavar="A", help="Only attribute A (e.g. language, or language&age_band).")
@click.option("--window", metavar="DATE", help="Windows starting on DATE (YYYY-MM-DD); default the latest window.")
@click.option("--model", metavar="M", help="Model identifier name@version; default all models together.")
@click.option("--metric", "metric", multiple=True, metavar="NAME",
              help="Metric(s) to show (refusal_disparity, over_refusal_disparity, under_refusal_disparity, "
                   "value_disparity); default the three rate metrics. Probe rows are included.")
@click.option("--values", "with_values", is_flag=True, help="Add value_disparity rows (one block per dimension).")
@click.option("--dimension", metavar="D", help="Only value dimension D (implies --values).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of group rows.")
@click.pass_obj
def disparity_cmd(obj, attribute, window, model, metric, with_values, dimension, as_json):
    """Show per-group disparity of one window: n, rate and 95% CI, gap and ratio to the reference, four-fifths
    flag, p and BH q-value, finding (ADVERSE = significantly worse off), small-n flag. A group whose replies were
    all left unscored (language gate) is listed as unmeasured, with its estimate from random-sample reviewer labels
    where one exists (JSON: `unmeasured`, `note`, `unscored`, `label_estimate`).

    \b
    Examples:
      monitor disparity                                  # latest window, all models
      monitor disparity --attribute language --window 2026-11-14 --model assistant@2026.11
      monitor disparity --values --dimension moralizing --json
    """
    known = RATE_METRICS + (VALUE_METRIC,)
    for m in metric:
        if _base(m) not in known:
            close = difflib.get_close_matches(_base(m), known, 1)
            raise MonitorError(f"--metric {m!r} is not a disparity metric",
                               (f"did you mean {close[0]!r}? " if close else "") + f"known: {', '.join(known)}")
    metrics = tuple(_base(m) for m in metric) or RATE_METRICS
    if with_values or dimension:
        metrics += (VALUE_METRIC,)
    rows = disparity_rows(obj.home, attribute, parse_day(window), model, metrics, dimension)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no disparity rows match (run `monitor jobs run` on logs carrying user.* attributes)", err=True)
        return
    click.echo(render(rows))
    click.echo(summary(rows), err=True)


commands = [disparity_cmd]
