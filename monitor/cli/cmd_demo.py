"""`monitor demo`: build a home from the bundled demo data, run every job, then open the dashboard on it."""
from __future__ import annotations

import click

from monitor.alerts.rules import SEVERITY_RANK, segment_label
from monitor.errors import MonitorError

DEFAULT_DEMO_HOME = "./monitor-demo"
MAX_SERIES_SHOWN = 8


def _counts(home) -> dict:
    from monitor.db import connect

    con = connect(home)
    try:
        turns = con.execute("SELECT count(*) FROM turns WHERE source = 'demo'").fetchone()[0]
        versions = con.execute(
            "SELECT model, count(*) FROM turns WHERE source = 'demo' "
            "GROUP BY 1 ORDER BY 1").fetchall()
        metrics = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    finally:
        con.close()
    alerts = home.state.query(
        "SELECT severity, count(*) AS n FROM alerts WHERE status = 'firing' GROUP BY severity ORDER BY severity")
    # One line per alerting series (rule, metric, model, deployment, segment), oldest first: the incidents.
    series = home.state.query(
        "SELECT rule, metric, model, deployment, segment, min(window_start) AS since, count(*) AS windows "
        "FROM alerts WHERE status = 'firing' GROUP BY rule, metric, model, deployment, segment "
        "ORDER BY since, rule, metric, segment")
    return {"turns": turns, "versions": versions, "metrics": metrics, "alerts": {a["severity"]: a["n"] for a in alerts},
            "series": series}


@click.command("demo")
@click.option("--home", "demo_home", type=click.Path(file_okay=False), default=None,
              help=f"Where to build the demo home (default: the global --home / MONITOR_HOME, else {DEFAULT_DEMO_HOME}).")
@click.option("--no-dashboard", is_flag=True, help="Build the home and run the jobs, but do not start the dashboard.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Dashboard port (default 8501).")
@click.option("--address", default="127.0.0.1", show_default=True, help="Dashboard address to listen on.")
@click.pass_obj
def demo(obj, demo_home, no_dashboard, port, address):
    """Build a demo home from the bundled real conversations (HH-RLHF), run every job, open the dashboard.

    The data is 30 days ending yesterday, two model versions, several user segments and planted incidents
    (see monitor/demo/README.md). Running it again on the same home adds nothing (every turn is a duplicate).

    \b
    Examples:
      monitor demo
      monitor demo --no-dashboard --home /tmp/demo
      monitor demo --port 8502
    """
    from monitor.cli.cmd_dashboard import app_path, run_dashboard
    from monitor.demo import build_demo

    if not no_dashboard:
        app_path()  # fail before the work if the dashboard is not installed
    root = demo_home or obj.home_arg or DEFAULT_DEMO_HOME
    click.echo(f"building the demo home in {root} ...", err=True)
    s = build_demo(root, progress=True)
    home = s.home
    ing = s.ingest
    click.echo(f"ingested {ing['ingested']:,} turns from {s.records:,} demo conversations "
               f"({s.first_day} to {s.last_day}); {ing['duplicates']:,} duplicates; {ing['quarantined']:,} quarantined")
    for r in s.jobs:
        click.echo(f"  job {r.job:<20} {r.status:<8} {r.rows:>8,} rows  {r.seconds:6.2f}s"
                   + (f"  {r.message}" if r.message else ""))
    c = _counts(home)
    firing = sum(c["alerts"].values())
    by_severity = ", ".join(f"{n} {sev}" for sev, n in sorted(c["alerts"].items(), key=lambda x: -SEVERITY_RANK[x[0]]))
    versions = ", ".join(f"{v}: {n:,}" for v, n in c["versions"])
    click.echo(f"home:    {home.root}\n"
               f"turns:   {c['turns']:,} ({versions})\n"
               f"metrics: {c['metrics']:,} rows\n"
               f"alerts:  {firing:,} firing" + (f" ({by_severity}) in {len(c['series'])} series" if firing else ""))
    for a in c["series"][:MAX_SERIES_SHOWN]:
        where = ", ".join([a["model"] or "all models"] + ([a["deployment"]] if a["deployment"] else [])
                          + [segment_label(a["segment"])])
        click.echo(f"  {a['rule']:<20} {a['metric']:<24} {where} since {a['since'][:10]} ({a['windows']} windows)")
    if len(c["series"]) > MAX_SERIES_SHOWN:
        click.echo(f"  ... and {len(c['series']) - MAX_SERIES_SHOWN} more series")
    if firing:
        click.echo(f"see them: monitor --home {home.root} alerts list --status firing")
    click.echo(f"query it: monitor --home {home.root} sql \"SELECT model, count(*) FROM turns GROUP BY 1\"\n"
               f"          duckdb -readonly {home.catalog_path}")
    failed = [r.job for r in s.jobs if r.status == "failed"]
    if failed:
        click.secho(f"warning: {len(failed)} job(s) failed: {', '.join(failed)}", fg="yellow", err=True)
    if no_dashboard:
        return
    code = run_dashboard(home.root, port or home.config.dashboard.port, address)
    if code not in (0, -2, 130):
        raise MonitorError(f"the dashboard (streamlit) exited with code {code}", "see the messages above")


commands = [demo]
