"""`monitor forget` and `monitor retention`: delete one user's data on request, drop data past the retention period."""
from __future__ import annotations

import datetime as dt
import json

import click


def _parse_now(value: str | None) -> dt.datetime:
    from monitor.retention import RetentionError
    from monitor.state import utcnow

    if not value:
        return utcnow()
    try:
        ts = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RetentionError(f"--now {value!r} is not a date", "use YYYY-MM-DD or 2026-11-01T12:00:00Z") from None
    return ts.astimezone(dt.timezone.utc).replace(tzinfo=None) if ts.tzinfo else ts


def _print_counts(rows: dict[str, int], files: dict[str, int], untouched: dict[str, int] | None = None) -> None:
    for table, n in rows.items():
        extra = ""
        if table in files:
            extra = f"  ({files[table]:,} files" + (f", {untouched[table]:,} untouched)" if untouched else ")")
        click.echo(f"  {table:<18} {n:>10,}{extra}")


@click.command("forget")
@click.option("--user-id", required=True, help="The exact user id, as stored in turns.user_id.")
@click.option("--actor", required=True, help="Who performs the deletion (recorded in the audit log).")
@click.option("--reason", required=True, help="Why, e.g. a ticket number (recorded in the audit log).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def forget(obj, user_id, actor, reason, dry_run, as_json):
    """Delete every row of one user: turns, segments, scores, value rows, quarantined records, review labels.

    Files holding the user's rows are rewritten in one atomic lake commit; one audit entry records the actor,
    the reason, the sha256 of the user id (not the id) and the counts per table. The replaced files are deleted
    by the next `compact` job after the grace period (docs/data-retention.md).

    \b
    Examples:
      monitor forget --user-id u-19 --actor jane --reason "erasure request #123" --dry-run
      monitor forget --user-id u-19 --actor jane --reason "erasure request #123" --json
    """
    from monitor.retention import forget_user

    s = forget_user(obj.home, user_id, actor, reason, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(s.as_dict(), indent=2))
        return
    _print_counts(s.rows, s.files_rewritten, s.files_untouched)
    if s.audit_id is not None:
        click.echo(f"  audit entry {s.audit_id}")
    for path in s.inbox_files:
        click.echo(f"  warning: the id also appears in inbox file {path}: edit or remove it at the source", err=True)
    click.echo(s.line())


@click.command("retention")
@click.option("--days", type=int, default=None,
              help="Keep this many days (default: ingest.retention_days; 0 = keep forever).")
@click.option("--now", "now_text", metavar="TIME", help="Pretend it is this time (UTC), e.g. to preview a date.")
@click.option("--actor", default="cli", show_default=True, help="Who applies it (recorded in the audit log).")
@click.option("--dry-run", is_flag=True, help="Count what would be dropped; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def retention(obj, days, now_text, actor, dry_run, as_json):
    """Drop lake data dated before the retention period (whole date partitions); metrics are kept.

    \b
    Examples:
      monitor retention --dry-run            # with ingest.retention_days set
      monitor retention --days 90 --json
    """
    from monitor.retention import RetentionError, apply_retention

    home = obj.home
    if days is None:
        days = home.config.ingest.retention_days
        if not days:
            raise RetentionError("retention is off: ingest.retention_days is 0 (keep forever)",
                                 "pass --days N, or set retention_days under [ingest] in monitor.toml")
    s = apply_retention(home, _parse_now(now_text), days, actor=actor, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(s.as_dict(), indent=2))
        return
    _print_counts(s.rows, s.files)
    if s.audit_id is not None:
        click.echo(f"  audit entry {s.audit_id}")
    click.echo(s.line())


commands = [forget, retention]
