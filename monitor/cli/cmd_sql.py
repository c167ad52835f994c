"""`monitor sql`: read-only ad hoc SQL over every table and view of the home, through the same guard as the dashboard."""
from __future__ import annotations

import csv
import io
import json
import sys

import click

from monitor.errors import QueryError

_CELL_WIDTH = 60


def _cell(value) -> str:
    text = "" if value is None else str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """Rows as an aligned plain-text table with a header rule (long cells are cut to 60 characters)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def format_csv(columns: list[str], rows: list[tuple]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in r] for r in rows])
    return buf.getvalue().rstrip("\n")


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise QueryError(f"--param {item!r} is not NAME=VALUE", "e.g. --param version=2026.11")
        params[name.strip().lstrip("$:")] = value
    return params


@click.command("sql")
@click.argument("query", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True,
              help="Output format.")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="Value of a named parameter ($name or :name); repeatable. Values are text: cast in SQL if needed.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Row cap (default [dashboard] sql_row_limit, 1000); a notice on stderr says when it was hit.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
              help="Time limit in seconds (default [dashboard] sql_time_limit_s, 10).")
@click.option("--tables", "list_tables", is_flag=True, help="List the tables and views with their columns.")
@click.pass_obj
def sql_command(obj, query, fmt, params, limit, timeout, list_tables):
    """Run one read-only query (DuckDB SQL) over the monitor's tables and views.

    Only SELECT, WITH ... SELECT, VALUES, PIVOT (with its values listed: ON col IN (...)), DESCRIBE, SHOW TABLES and
    SUMMARIZE run; anything that writes, attaches, installs, reads or writes files, or changes settings is refused.

    \b
    Examples:
      monitor sql --tables
      monitor sql "SELECT model_version, count(*) AS turns FROM turns GROUP BY 1 ORDER BY 1"
      monitor sql "SELECT * FROM metrics WHERE metric = \\$m ORDER BY window_start" -p m=over_refusal_rate
      monitor sql "SELECT * FROM alerts WHERE status = 'firing'" --format json
      monitor sql "SELECT turn_id, user_message FROM scored_turns WHERE refusal <> 'compliance'" --format csv --limit 50000 > r.csv

    Alert status is firing, acknowledged, silenced or resolved; refusal is compliance, partial_refusal or
    full_refusal.
    """
    from monitor.sqlguard import run_query, schema

    home = obj.home
    if list_tables:
        tables = schema(home)
        if fmt == "json":
            click.echo(json.dumps({t: [{"column": c, "type": ty} for c, ty in cols] for t, cols in tables.items()},
                                  indent=2))
            return
        rows = [(t, c, ty) for t, cols in tables.items() for c, ty in cols]
        click.echo(format_csv(["table", "column", "type"], rows) if fmt == "csv"
                   else format_table(["table", "column", "type"], rows))
        return
    if query is None:
        raise QueryError("no query given", "monitor sql \"SELECT count(*) FROM turns\" (or monitor sql --tables)")
    if query == "-":
        query = sys.stdin.read()
    cfg = home.config.dashboard
    res = run_query(home, query, _parse_params(params), row_limit=limit or cfg.sql_row_limit,
                    time_limit_s=timeout or cfg.sql_time_limit_s)
    if fmt == "json":
        click.echo(json.dumps(res.records(), indent=2, ensure_ascii=False, allow_nan=False))
    elif fmt == "csv":
        click.echo(format_csv(res.columns, res.rows))
    else:
        click.echo(format_table(res.columns, res.rows))
        click.echo(f"({len(res.rows):,} row{'s' if len(res.rows) != 1 else ''}, {res.elapsed:.2f} s)", err=True)
    if res.truncated:
        click.secho(f"truncated: showing the first {res.row_limit:,} rows; raise --limit or add a LIMIT/WHERE",
                    fg="yellow", err=True)


commands = [sql_command]
