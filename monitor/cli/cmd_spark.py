"""`monitor spark-sql`: run one of the jobs' SQL files on a Spark session over the home's lake (docs/scaling.md)."""
from __future__ import annotations

import json

import click

from monitor.errors import QueryError


def _parse_params(values: tuple[str, ...]) -> dict:
    from monitor.spark import parse_param

    params = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise QueryError(f"--param {item!r} is not NAME=VALUE", "e.g. --param windows='[\"2026-03-01T00:00\"]'")
        params[name.strip().lstrip("$:")] = parse_param(value)
    return params


@click.command("spark-sql")
@click.argument("file", required=False)
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="Value of $NAME; repeatable. JSON when it parses (null, numbers, lists); ISO date-times "
                   "(with a time part) become timestamps; anything else is text.")
@click.option("--master", default=None, help="Spark master (default $MONITOR_SPARK_MASTER or local[2]).")
@click.option("--since", type=int, default=None,
              help="For files reading new_<table> / new_inputs views: files committed after this manifest version "
                   "(default: all files).")
@click.option("--inputs", default="scores,segments", show_default=True,
              help="Tables whose new rows make up view new_inputs (sql/jobs/touched_windows.sql).")
@click.option("--translate", "show_sql", is_flag=True, help="Print the Spark SQL instead of running it.")
@click.option("--list", "list_files", is_flag=True, help="List the SQL files that run on Spark, with their parameters.")
@click.pass_obj
def spark_sql(obj, file: str | None, params: tuple[str, ...], master: str | None, since: int | None, inputs: str,
              show_sql: bool, list_files: bool):
    """Run a metric SQL file (e.g. metrics/refusal_rates.sql) on Spark; rows are printed as JSON lines.

    \b
    Examples:
      monitor spark-sql --list
      monitor spark-sql values/all_windows.sql -p granularity=day -p scorer_version=values-2026.11.1 \\
          -p date_min=2026-03-01 -p date_max=2026-03-31
      monitor spark-sql metrics/refusal_rates.sql -p granularity=day -p date_min=2026-03-01 \\
          -p date_max=2026-03-01 -p windows='["2026-03-01T00:00:00"]' -p attributes='["language"]' --master local[4]
      monitor spark-sql jobs/touched_windows.sql -p granularity=day -p date_min=2026-03-01 \\
          -p date_max=2026-03-31 --since 41 --inputs scores
    """
    from monitor.resources import load_sql
    from monitor.spark import SparkRunner, default_master, new_views, portable_files

    if list_files:
        for rel in portable_files():
            click.echo(f"{rel}  {' '.join('$' + p for p in load_sql(rel).params)}".rstrip())
        return
    if not file:
        raise QueryError("no SQL file given", "monitor spark-sql --list shows the files")
    rel = file.removeprefix("sql/")
    if rel not in portable_files():
        raise QueryError(f"{file} is not one of the SQL files the jobs run", "monitor spark-sql --list shows them")
    values = _parse_params(params)
    missing = [] if show_sql else [p for p in load_sql(rel).params if p not in values]
    if missing:  # before starting Spark, which takes seconds
        raise QueryError(f"{rel}: no value for {', '.join('$' + m for m in missing)}",
                         f"add --param {missing[0]}=VALUE")
    runner = SparkRunner(obj.home, master=master or default_master())
    if show_sql:
        click.echo(runner.translate(rel))
        return
    for table in new_views(rel):
        if table == "inputs":
            runner.register_inputs(tuple(t.strip() for t in inputs.split(",") if t.strip()), since)
        else:
            runner.register_new(table, since)
    table = runner.run(rel, values)
    for row in table.to_pylist():
        click.echo(json.dumps(row, default=_json_default, ensure_ascii=False))
    click.echo(f"{table.num_rows:,} rows from {rel} on Spark", err=True)


def _json_default(v):
    return v.isoformat() if hasattr(v, "isoformat") else str(v)


commands = [spark_sql]
