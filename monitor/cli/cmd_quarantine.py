"""`monitor quarantine`: inspect records that could not be ingested, and re-ingest them after a fix."""
from __future__ import annotations

import json

import click

from monitor.errors import IngestError


@click.group("quarantine")
def quarantine_group():
    """Inspect quarantined input records and retry them after a fix.

    \b
    Examples:
      monitor quarantine list
      monitor quarantine show 3f9a0c1e
      monitor quarantine retry --all                 # e.g. after fixing [ingest.columns]
      monitor quarantine retry 3f9a0c1e --format openai
    """


def _resolve(home, prefix: str) -> dict:
    from monitor.ingest import quarantine_rows

    rows = [r for r in quarantine_rows(home, include_resolved=True) if r["quarantine_id"].startswith(prefix)]
    if not rows:
        raise IngestError(f"no quarantined record with id {prefix!r}", "see `monitor quarantine list --all`")
    if len(rows) > 1:
        raise IngestError(f"id prefix {prefix!r} matches {len(rows)} records", "give more characters of the id")
    return rows[0]


def _latest_reason(r: dict) -> str:
    """Why the record is quarantined now: after a failed retry, the retry's reason (a new format or config can
    fail differently from the first ingest), with the first one beside it when they differ."""
    first = f"{r['field']}: {r['reason']}" if r["field"] else r["reason"]
    prefix = "still failing: "
    if r["status"] != "retried" or not (r["note"] or "").startswith(prefix):
        return first
    latest = r["note"][len(prefix):]
    return first if latest == first else f"{latest} (on retry; first: {first})"


@quarantine_group.command("list")
@click.option("--all", "include_resolved", is_flag=True, help="Include records already re-ingested or dismissed.")
@click.option("--limit", default=50, show_default=True, help="Rows to show (0 = all).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def q_list(obj, include_resolved, limit, as_json):
    """List quarantined records: id, file:line, field and reason.

    \b
    Examples:
      monitor quarantine list
      monitor quarantine list --all --json
    """
    from monitor.ingest import quarantine_rows

    rows = quarantine_rows(obj.home, include_resolved=include_resolved)
    shown = rows if not limit else rows[:limit]
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    if not rows:
        click.echo("no quarantined records")
        return
    for r in shown:
        where = f"{r['source_file']}:{r['source_line']}"
        click.echo(f"{r['quarantine_id'][:12]}  {r['status']:<8} {where}  {_latest_reason(r)}")
    if len(shown) < len(rows):
        click.echo(f"... {len(rows) - len(shown)} more (use --limit 0)")


@quarantine_group.command("show")
@click.argument("qid")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def q_show(obj, qid, as_json):
    """Show one quarantined record in full, raw text included (QID may be a unique prefix).

    \b
    Example:
      monitor quarantine show 3f9a0c1e
    """
    r = _resolve(obj.home, qid)
    if as_json:
        click.echo(json.dumps(r, indent=2, default=str))
        return
    for k in ("quarantine_id", "status", "source_file", "source_line", "source_format", "field", "reason",
              "quarantined_at", "note"):
        click.echo(f"{k:<15} {r[k]}")
    click.echo("raw:")
    click.echo(r["raw"])


@quarantine_group.command("retry")
@click.argument("qids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every open quarantined record.")
@click.option("--format", "fmt", metavar="F", help="Parse the raw records with this format instead of the original.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def q_retry(obj, qids, retry_all, fmt, as_json):
    """Re-ingest quarantined records after a fix (config, format); records that still fail stay quarantined.

    \b
    Examples:
      monitor quarantine retry --all
      monitor quarantine retry 3f9a0c1e 77b2d410 --format tabular
    """
    from monitor.ingest import retry_quarantined

    if not qids and not retry_all:
        raise IngestError("name the records to retry, or pass --all", "monitor quarantine retry --all")
    ids = [_resolve(obj.home, q)["quarantine_id"] for q in qids] if qids else None
    out = retry_quarantined(obj.home, ids=ids, fmt=fmt)
    if as_json:
        click.echo(json.dumps(out.__dict__, indent=2))
        return
    click.echo(f"retried {out.retried:,} records: {out.ingested:,} ingested ({out.turns:,} turns), "
               f"{out.still_quarantined:,} still quarantined")
    for r in out.results:
        if r["status"] != "ingested":
            click.echo(f"  {r['quarantine_id'][:12]}  {r['note']}")


commands = [quarantine_group]
