"""`monitor alerts`: list and show alerts, act on them (ack, resolve, silence, comment, assign), show the rules."""
from __future__ import annotations

import json

import click


@click.group("alerts")
def alerts_group():
    """List alerts and act on them; show the alert rules in force.

    \b
    Examples:
      monitor alerts list --status firing
      monitor alerts show 12
      monitor alerts ack 12 --by dana --note "looking at the hi locale"
      monitor alerts ack 12 --incident --by dana
      monitor alerts silence 12 --for 2h --by dana
      monitor alerts reroute --from oncall-mail --to oncall-email --by dana
    """


@alerts_group.command("list")
@click.option("--status", type=click.Choice(["firing", "acknowledged", "silenced", "resolved"]),
              help="Only alerts with this status (default: every alert, backfilled ones included).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of alert objects.")
@click.pass_obj
def alerts_list(obj, status, as_json):
    """List alerts, newest window first."""
    from monitor.alerts.lifecycle import list_alerts, to_json

    rows = [to_json(r) for r in list_alerts(obj.home, status)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for a in rows:
        flag = " [backfill]" if a["backfill"] else ""
        click.echo(f"#{a['id']:<5} {a['status']:<12} {a['severity']:<8}{flag} {a['message']}")
    counts: dict[str, int] = {}
    for a in rows:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"
    click.echo(f"{len(rows):,} alert(s): {summary}")


_INCIDENT = click.option("--incident", is_flag=True,
                         help="Act on every open alert of this alert's incident (the scopes one message listed).")


def _incident_note(before: list[dict], alert_id: int) -> None:
    others = [x for x in before if x["id"] != alert_id]
    if others:
        click.echo(f"  and {len(others)} more alert(s) of its incident: {', '.join(str(x['id']) for x in others)}")


def _open_siblings(home, alert_id: int, statuses: tuple[str, ...]) -> list[dict]:
    from monitor.alerts.lifecycle import incident

    return [x for x in incident(home, alert_id) if x["status"] in statuses]


def _show(a: dict) -> None:
    click.echo(f"alert {a['id']}: {a['status']}"
               + (f" by {a['acknowledged_by']}" if a["status"] == "acknowledged" else "")
               + (f" until {a['silenced_until']}" if a["status"] == "silenced" else "")
               + (f"; assigned to {a['assigned_to']}" if a.get("assigned_to") else ""))


@alerts_group.command("show")
@click.argument("alert_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the alert object with its comments and notifications.")
@click.pass_obj
def alerts_show(obj, alert_id, as_json):
    """Show one alert: its evidence, who acted on it, its comments and where it was notified."""
    from monitor.alerts.lifecycle import comments, get_alert, incident, notifications, to_json

    a = to_json(get_alert(obj.home, alert_id))
    notes, sent = comments(obj.home, alert_id), notifications(obj.home, alert_id)
    others = [x for x in incident(obj.home, alert_id) if x["id"] != alert_id]
    if as_json:
        same = [{k: x[k] for k in ("id", "status", "severity", "message")} for x in others]
        click.echo(json.dumps({**a, "comments": notes, "notifications": sent, "incident": same}, indent=2,
                              default=str))
        return
    _show(a)
    click.echo(f"  {a['severity']}, rule {a['rule']}, window {a['window_start']} - {a['window_end']}"
               + (", backfill (never notified)" if a["backfill"] else ""))
    click.echo(f"  {a['message']}")
    if a["ack_note"]:
        click.echo(f"  ack note: {a['ack_note']}")
    if a["status"] == "resolved":
        click.echo(f"  resolved at {a['resolved_at']} by {a['resolved_by']}")
    for c in notes:
        click.echo(f"  comment {c['at']} {c['author']}: {c['body']}")
    for n in sent:
        tries = f"{n['attempts']} attempt(s)" + (f", last error: {n['last_error']}" if n["last_error"] else "")
        click.echo(f"  notified #{n['id']} {n['channel']} ({n['kind']}): {n['status']}, {tries}")
    if not sent:
        click.echo("  notified: nowhere" + (" (backfill)" if a["backfill"] else ""))
    if others:
        click.echo(f"  same incident ({a['incident_key']}): {len(others)} other alert(s)")
        for x in others:
            click.echo(f"    #{x['id']:<5} {x['status']:<12} {x['severity']:<8} {x['message']}")


@alerts_group.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who acknowledges.")
@click.option("--note", help="What is being done.")
@_INCIDENT
@click.pass_obj
def alerts_ack(obj, alert_id, by, note, incident):
    """Acknowledge an alert (someone is on it)."""
    from monitor.alerts.lifecycle import ack

    before = _open_siblings(obj.home, alert_id, ("firing", "silenced")) if incident else []
    a = ack(obj.home, alert_id, by, note, incident=incident)
    _show(a)
    _incident_note(before, alert_id)


@alerts_group.command("resolve")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who resolves.")
@click.option("--note", help="Why (kept as a comment).")
@_INCIDENT
@click.pass_obj
def alerts_resolve(obj, alert_id, by, note, incident):
    """Resolve an alert by hand."""
    from monitor.alerts.lifecycle import OPEN, resolve

    before = _open_siblings(obj.home, alert_id, OPEN) if incident else []
    a = resolve(obj.home, alert_id, by, note, incident=incident)
    _show(a)
    _incident_note(before, alert_id)


@alerts_group.command("silence")
@click.argument("alert_id", type=int)
@click.option("--until", "until", help="ISO 8601 time (UTC unless a zone is given), e.g. 2026-11-15T08:00Z.")
@click.option("--for", "duration", help="A duration from now: 30m, 2h, 1d.")
@click.option("--by", required=True, help="Who silences.")
@click.option("--note", help="Why.")
@_INCIDENT
@click.pass_obj
def alerts_silence(obj, alert_id, until, duration, by, note, incident):
    """Silence an alert until a time: no notifications; it fires again after if still breaching."""
    from monitor.alerts.lifecycle import OPEN, AlertError, DurationRangeError, parse_duration, parse_time, silence
    from monitor.state import utcnow

    if bool(until) == bool(duration):
        raise AlertError("give exactly one of --until and --for", "e.g. --for 2h")
    if until:
        end = parse_time(until)
    else:
        try:
            end = utcnow() + parse_duration(duration)
        except DurationRangeError as e:
            raise DurationRangeError(f"--for {e.message}", e.hint) from None
    before = _open_siblings(obj.home, alert_id, OPEN) if incident else []
    a = silence(obj.home, alert_id, by, end, note, incident=incident)
    _show(a)
    _incident_note(before, alert_id)


@alerts_group.command("comment")
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Author.")
@click.option("--text", required=True, help="The comment.")
@click.pass_obj
def alerts_comment(obj, alert_id, by, text):
    """Add a comment to an alert."""
    from monitor.alerts.lifecycle import comment, comments

    comment(obj.home, alert_id, by, text)
    click.echo(f"alert {alert_id}: {len(comments(obj.home, alert_id))} comment(s)")


@alerts_group.command("assign")
@click.argument("alert_id", type=int)
@click.option("--to", "to", required=True, help="Assignee.")
@click.option("--by", required=True, help="Who assigns.")
@click.pass_obj
def alerts_assign(obj, alert_id, to, by):
    """Assign an alert to someone."""
    from monitor.alerts.lifecycle import assign

    _show(assign(obj.home, alert_id, to, by))


@alerts_group.command("reroute")
@click.option("--from", "old", required=True, help="The channel name the messages were queued for.")
@click.option("--to", "new", required=True, help="A configured channel to send them through instead.")
@click.option("--by", required=True, help="Who reroutes.")
@click.pass_obj
def alerts_reroute(obj, old, new, by):
    """Send the held and pending notifications of a channel through another one (after renaming a channel).

    \b
    Messages for a channel that is not configured (renamed, or a typo in its
    name) are held for it until the retry horizon, then dead.
    Examples:
      monitor alerts reroute --from oncall-mail --to oncall-email --by dana
    """
    from monitor.notify.outbox import reroute

    n = reroute(obj.home, old, new, by)
    click.echo(f"rerouted {n:,} message(s) from {old} to {new}" + ("" if n else " (none held or pending)"))


@alerts_group.command("rules")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@click.pass_obj
def alerts_rules(obj, as_json):
    """Show the effective alert rules and where each came from (default or config file)."""
    from monitor.alerts.rules import effective_rules

    rules = [r.to_dict() for r in effective_rules(obj.home.config)]
    if as_json:
        click.echo(json.dumps(rules, indent=2, default=str))
        return
    from monitor.alerts.rules import KIND_KEYS, PIPELINE_KINDS

    for r in rules:
        if r["kind"] in PIPELINE_KINDS:  # no series to filter: show its settings instead
            scope = ", ".join(f"{k} {r[k]}" for k in KIND_KEYS[r["kind"]] if r.get(k) is not None)
        else:
            scope = r["segment"] if r["segment"] != {} else "all traffic"
        click.echo(f"{r['name']:<24} {r['kind']:<16} {r['severity']:<8} {r['metric']} [{scope}]  from {r['source']}")
    click.echo(f"{len(rules)} rule(s)")


commands = [alerts_group]
