"""What a person does to an alert (acknowledge, resolve, silence, comment, assign), shared by the CLI and dashboard.

Every function takes the acting person's name, changes the alert in one transaction and writes an audit-log
entry in the same transaction, so the audit log can never miss a change nor record one that did not happen.
`ack`, `resolve` and `silence` take `incident=True` to act on every open alert of the alert's incident (the
scopes one message listed), each audited on its own.
"""
from __future__ import annotations

import datetime as dt
import json
import re

from monitor.errors import MonitorError
from monitor.state import iso, utcnow

STATUSES = ("firing", "acknowledged", "silenced", "resolved")
OPEN = ("firing", "acknowledged", "silenced")


class AlertError(MonitorError):
    title = "Alert action refused"


def to_json(row: dict) -> dict:
    """The public JSON shape of an alert (what `monitor alerts list --json` prints and webhooks receive)."""
    seg = row.get("segment") or "{}"
    return {
        "id": row["id"], "rule": row["rule"], "metric": row["metric"],
        "segment": json.loads(seg) if isinstance(seg, str) else seg, "model": row.get("model"),
        "deployment": row.get("deployment"), "granularity": row.get("granularity"),
        "window_start": row["window_start"], "window_end": row["window_end"], "value": row.get("value"),
        "ci_low": row.get("ci_low"), "ci_high": row.get("ci_high"), "n": row.get("n"),
        "reference": row.get("reference"), "reference_n": row.get("reference_n"),
        "threshold": row.get("threshold"), "p_value": row.get("p_value"), "severity": row["severity"],
        "status": row["status"], "backfill": bool(row.get("backfill")), "message": row["message"],
        "acknowledged_by": row.get("acknowledged_by"), "ack_note": row.get("ack_note"),
        "assigned_to": row.get("assigned_to"), "silenced_until": row.get("silenced_until"),
        "resolved_at": row.get("resolved_at"), "resolved_by": row.get("resolved_by"),
        "created_at": row.get("created_at"), "updated_at": row.get("updated_at"),
        "incident_key": row.get("incident_key"),
    }


def list_alerts(home, status: str | None = None) -> list[dict]:
    """Every alert (newest window first), or only those with `status`; backfilled ones included."""
    if status is not None and status not in STATUSES:
        raise AlertError(f"unknown alert status {status!r}", f"one of {', '.join(STATUSES)}")
    if status:
        return home.state.query("SELECT * FROM alerts WHERE status=? ORDER BY window_start DESC, id DESC", (status,))
    return home.state.query("SELECT * FROM alerts ORDER BY window_start DESC, id DESC")


def get_alert(home, alert_id: int) -> dict:
    rows = home.state.query("SELECT * FROM alerts WHERE id=?", (alert_id,))
    if not rows:
        raise AlertError(f"no alert with id {alert_id}", "see `monitor alerts list`")
    return rows[0]


def incident(home, alert_id: int) -> list[dict]:
    """Every alert of the alert's incident (itself included), most recent id last."""
    a = get_alert(home, alert_id)
    if not a.get("incident_key"):
        return [a]
    return home.state.query("SELECT * FROM alerts WHERE incident_key=? ORDER BY id", (a["incident_key"],))


def _siblings(con, a: dict, statuses: tuple[str, ...]) -> list[dict]:
    """The other alerts of `a`'s incident whose status is one of `statuses`."""
    if not a.get("incident_key"):
        return []
    return [dict(r) for r in con.execute(
        f"SELECT * FROM alerts WHERE incident_key=? AND id!=? AND status IN ({','.join('?' * len(statuses))}) "
        "ORDER BY id", (a["incident_key"], a["id"], *statuses)).fetchall()]


def comments(home, alert_id: int) -> list[dict]:
    return home.state.query("SELECT * FROM alert_comments WHERE alert_id=? ORDER BY id", (alert_id,))


def notifications(home, alert_id: int) -> list[dict]:
    """The outbox rows that carry an alert (its own, escalations, digests), oldest first."""
    return home.state.query(
        "SELECT id, channel, kind, status, attempts, last_error, created_at, sent_at FROM notify_outbox "
        "WHERE EXISTS (SELECT 1 FROM json_each(alert_ids) WHERE value=?) ORDER BY id", (alert_id,))


def _actor(by: str) -> str:
    by = (by or "").strip()
    if not by:
        raise AlertError("who is acting must be named", "pass --by NAME")
    return by


def _load(con, alert_id: int) -> dict:
    row = con.execute("SELECT * FROM alerts WHERE id=?", (alert_id,)).fetchone()
    if row is None:
        raise AlertError(f"no alert with id {alert_id}", "see `monitor alerts list`")
    return dict(row)


def _via(a: dict, first: dict) -> dict:
    """Audit details naming the alert acted on when an action reached `a` through its incident."""
    return {"incident": a["incident_key"], "via": first["id"]} if a["id"] != first["id"] else {}


def ack(home, alert_id: int, by: str, note: str | None = None, now: dt.datetime | None = None,
        incident: bool = False) -> dict:
    """Acknowledge a firing (or silenced) alert, or with `incident` every such alert of its incident."""
    by, now_s = _actor(by), iso(now or utcnow())
    with home.state.tx() as con:
        a = _load(con, alert_id)
        others = _siblings(con, a, ("firing", "silenced")) if incident else []
        if a["status"] not in ("firing", "silenced") and not others:
            raise AlertError(f"alert {alert_id} is {a['status']}" + (
                f" (by {a['acknowledged_by']})" if a["status"] == "acknowledged" else ""),
                "only firing or silenced alerts can be acknowledged"
                + (", and no other alert of its incident is" if incident else ""))
        for x in ([a] if a["status"] in ("firing", "silenced") else []) + others:
            con.execute("UPDATE alerts SET status='acknowledged', acknowledged_by=?, ack_note=?, "
                        "silenced_until=NULL, updated_at=? WHERE id=?", (by, note, now_s, x["id"]))
            home.state.audit(con, by, "alert.ack", f"alert:{x['id']}",
                             {"from": x["status"], "note": note, **_via(x, a)})
    return get_alert(home, alert_id)


def resolve(home, alert_id: int, by: str, note: str | None = None, now: dt.datetime | None = None,
            incident: bool = False) -> dict:
    """Resolve an open alert by hand, or with `incident` every open alert of its incident."""
    by, now_s = _actor(by), iso(now or utcnow())
    with home.state.tx() as con:
        a = _load(con, alert_id)
        others = _siblings(con, a, OPEN) if incident else []
        if a["status"] == "resolved" and not others:
            raise AlertError(f"alert {alert_id} is already resolved (by {a['resolved_by']} at {a['resolved_at']})"
                             + ("; so is every other alert of its incident" if incident else ""))
        for x in ([a] if a["status"] != "resolved" else []) + others:
            con.execute("UPDATE alerts SET status='resolved', resolved_at=?, resolved_by=?, updated_at=? "
                        "WHERE id=?", (now_s, by, now_s, x["id"]))
            if note:
                con.execute("INSERT INTO alert_comments (alert_id, at, author, body) VALUES (?, ?, ?, ?)",
                            (x["id"], now_s, by, note))
            home.state.audit(con, by, "alert.resolve", f"alert:{x['id']}",
                             {"from": x["status"], "note": note, **_via(x, a)})
    return get_alert(home, alert_id)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
MAX_SILENCE_DAYS = 3650  # ten years: longer is not a silence but a resolve


class DurationRangeError(AlertError):
    title = "Duration out of range"


def parse_duration(text: str) -> dt.timedelta:
    """'90m', '2h', '1.5d', '1w' -> timedelta, more than zero and at most MAX_SILENCE_DAYS."""
    m = _DURATION.match(text or "")
    if not m:
        raise AlertError(f"cannot read duration {text!r}", "use a number and a unit: 30m, 2h, 1d, 1w")
    # Checked as a number before a timedelta is built: '99999999999999999999w' would overflow it.
    seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    if seconds > MAX_SILENCE_DAYS * 86400:
        raise DurationRangeError(f"{text.strip()} is too long: a silence lasts at most {MAX_SILENCE_DAYS:,} days",
                                 "e.g. 30d; to close the alert instead, `monitor alerts resolve`")
    if seconds <= 0:
        raise DurationRangeError(f"{text.strip()} is no time at all: a silence must last more than zero",
                                 "e.g. 30m, 2h, 1d")
    return dt.timedelta(seconds=seconds)


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 time; a zone is converted to UTC, none means UTC. Returns naive UTC."""
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise AlertError(f"cannot read time {text!r}", "use ISO 8601, e.g. 2026-11-15T08:00Z") from e
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


def silence(home, alert_id: int, by: str, until: dt.datetime, note: str | None = None,
            now: dt.datetime | None = None, incident: bool = False) -> dict:
    """Silence an open alert (with `incident`, every open alert of its incident) until a time: no notifications
    meanwhile; it fires again after if still breaching."""
    by, now = _actor(by), now or utcnow()
    if until <= now:
        raise AlertError(f"silence end {iso(until)} is not in the future", "pass a later --until or a --for")
    if until - now > dt.timedelta(days=MAX_SILENCE_DAYS):  # the same bound as parse_duration, for --until too
        raise DurationRangeError(f"silence end {iso(until)} is too far: a silence lasts at most "
                                 f"{MAX_SILENCE_DAYS:,} days", "to close the alert instead, `monitor alerts resolve`")
    with home.state.tx() as con:
        a = _load(con, alert_id)
        others = _siblings(con, a, OPEN) if incident else []
        if a["status"] == "resolved" and not others:
            raise AlertError(f"alert {alert_id} is resolved; nothing to silence"
                             + (" (nor in its incident)" if incident else ""))
        for x in ([a] if a["status"] != "resolved" else []) + others:
            con.execute("UPDATE alerts SET status='silenced', silenced_until=?, updated_at=? WHERE id=?",
                        (iso(until), iso(now), x["id"]))
            home.state.audit(con, by, "alert.silence", f"alert:{x['id']}",
                             {"from": x["status"], "until": iso(until), "note": note, **_via(x, a)})
    return get_alert(home, alert_id)


def comment(home, alert_id: int, by: str, text: str, now: dt.datetime | None = None) -> dict:
    """Add a comment to an alert (any status)."""
    by, now_s = _actor(by), iso(now or utcnow())
    if not (text or "").strip():
        raise AlertError("empty comment", "pass --text ...")
    with home.state.tx() as con:
        _load(con, alert_id)
        cid = con.execute("INSERT INTO alert_comments (alert_id, at, author, body) VALUES (?, ?, ?, ?)",
                          (alert_id, now_s, by, text)).lastrowid
        home.state.audit(con, by, "alert.comment", f"alert:{alert_id}", {"comment_id": cid, "text": text})
    return get_alert(home, alert_id)


def assign(home, alert_id: int, to: str, by: str, now: dt.datetime | None = None) -> dict:
    """Assign an alert to a person (any status but resolved)."""
    by, now_s = _actor(by), iso(now or utcnow())
    to = (to or "").strip()
    if not to:
        raise AlertError("assignee must be named", "pass --to NAME")
    with home.state.tx() as con:
        a = _load(con, alert_id)
        if a["status"] == "resolved":
            raise AlertError(f"alert {alert_id} is resolved; reopen is not supported, comment instead")
        con.execute("UPDATE alerts SET assigned_to=?, updated_at=? WHERE id=?", (to, now_s, alert_id))
        home.state.audit(con, by, "alert.assign", f"alert:{alert_id}", {"from": a["assigned_to"], "to": to})
    return get_alert(home, alert_id)
