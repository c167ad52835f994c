"""`monitor ingest`: read log files and folders into the lake."""
from __future__ import annotations

import json

import click


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--format", "fmt", metavar="F",
              help="Log format (canonical, openai, sharegpt, tabular, otlp, or a plugin's); default: detect.")
@click.option("--source", default="production", show_default=True,
              help="Source label stored on each turn (production, probe, demo, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as a JSON object.")
@click.pass_obj
def ingest_cmd(obj, paths, fmt, source, as_json):
    """Ingest log files or folders: one row per assistant reply, bad records quarantined, duplicates skipped.

    A folder is an inbox: files already ingested (same content hash) are skipped. A file given by name is always
    read again, and the turns it already delivered come out as duplicates. Every record read is counted once:
    read = ingested + duplicates + quarantined.

    \b
    Examples:
      monitor ingest logs/2026-11-03.jsonl
      monitor ingest exports/ --json
      monitor ingest chats.csv --format tabular      # columns mapped by [ingest.columns] in monitor.toml
      monitor ingest traces.json --format otlp
    """
    from monitor.ingest import ingest_paths

    summary = ingest_paths(obj.open_home(create=True), paths, fmt=fmt, progress=not as_json, source=source)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        click.echo(summary.line())
        if summary.quarantined:
            click.echo("  see them with: monitor quarantine list", err=True)


commands = [ingest_cmd]
