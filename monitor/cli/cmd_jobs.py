"""`monitor jobs`: run the scheduled jobs once, now."""
from __future__ import annotations

import json

import click

from monitor.errors import JobError


@click.group("jobs")
def jobs_group():
    """Run or list the scheduled jobs (score, metrics, values, drift, disparity, alerts...)."""


@jobs_group.command("run")
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the run results as JSON.")
@click.pass_obj
def jobs_run(obj, names, as_json):
    """Run every job once, now, in dependency order (or only NAMES and their dependencies).

    \b
    Examples:
      monitor jobs run
      monitor jobs run refusal_metrics
    """
    from monitor.jobs import run_all

    results = run_all(obj.home, list(names) or None)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        for r in results:
            line = f"{r.job:<22} {r.status:<8} {r.rows:>9,} rows  {r.seconds:6.2f}s"
            click.echo(line + (f"  {r.message}" if r.message else ""))
    failed = [r.job for r in results if r.status == "failed"]
    if failed:
        raise JobError(f"{len(failed)} job(s) failed: {', '.join(failed)}", "see the messages above and `monitor sql \"SELECT * FROM job_runs ORDER BY id DESC LIMIT 20\"`")


@jobs_group.command("list")
def jobs_list():
    """List the jobs in the order `jobs run` runs them."""
    from monitor.jobs import discover, ordered

    for job in ordered(discover()):
        deps = f" (after {', '.join(job.depends_on + job.after)})" if job.depends_on or job.after else ""
        click.echo(f"{job.name:<22} {job.help}{deps}")


commands = [jobs_group]
