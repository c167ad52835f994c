"""The durable notification outbox: enqueue inside the alert transaction, deliver later with retries and digests.

Rows of ``notify_outbox`` move pending -> sent, or pending -> dead after ``notify.max_attempts`` failures (each
retry waits ``backoff_seconds * 2**(attempts-1)``, at most ``MAX_WAIT_S``, a day), or pending -> digested when an alert storm is folded into one
digest row. Every attempt is a row of ``notify_attempts``. Because the outbox is in SQLite, a worker that dies
between two runs loses nothing: the next `deliver_due`, in any process, picks the rows up. A row is claimed
before it is sent, so two deliverers at once (the worker and a `monitor jobs run`) never send it twice. Delivery
is at-least-once: a crash after a send but before its row is marked sent re-sends that one message.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from monitor.alerts.rules import SEVERITY_RANK, segment_label
from monitor.notify.base import Channel, Message, parse_channels
from monitor.state import iso

MAX_WAIT_S = 86_400.0  # the longest wait between two attempts: many attempts must not overflow the date
# A row being sent is claimed by moving its next attempt this far ahead, so that a second deliverer (a
# `monitor jobs run` beside the worker, a second worker) skips it. Far longer than any send's timeout; if the
# claiming process dies mid-send, the row is due again after it (at-least-once, never lost).
CLAIM_S = 900.0


def load_channels(home) -> dict[str, Channel]:
    """The configured channels of a home (validated strictly), keyed by name."""
    origin = home.config.sources.get("notify.channels", "monitor.toml")
    return parse_channels(home.config.notify.channels, origin, home.root)


def _parse_iso(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.rstrip("Z"))


def _subject(row: dict, kind: str) -> str:
    where = ", ".join(x for x in (row["metric"], row["model"] or "all models", segment_label(row["segment"])) if x)
    tag = {"escalation": "ESCALATED ", "unsilenced": "SILENCE ENDED "}.get(kind, "")
    return f"[{tag}{row['severity'].upper()}] {where}: {row['rule']}"


def enqueue(home, con, channels: dict[str, Channel], rows: list[dict], kind: str, now_s: str) -> int:
    """Queue one message per alert row for every channel whose minimum severity it reaches; returns rows queued."""
    from monitor.alerts.lifecycle import to_json

    url = home.config.alerts.dashboard_url.rstrip("/")
    queued = 0
    for row in rows:
        alert = to_json(row)
        payload = {"alerts": [alert], "links": [[row["id"], f"{url}/alerts?alert_id={row['id']}"]]}
        for ch in channels.values():
            if not ch.wants(row["severity"]):
                continue
            con.execute(
                "INSERT INTO notify_outbox (channel, kind, alert_ids, subject, body, payload, status, attempts, "
                "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                (ch.name, kind, json.dumps([row["id"]]), _subject(row, kind), row["message"],
                 json.dumps(payload, default=str), now_s, now_s),
            )
            queued += 1
    return queued


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    digests: int = 0
    held: int = 0
    errors: list[str] = field(default_factory=list)


def _message(row: dict) -> Message:
    payload = json.loads(row["payload"])
    sev = max((a.get("severity", "info") for a in payload.get("alerts", [])), key=SEVERITY_RANK.get,
              default="warning")
    return Message(subject=row["subject"], body=row["body"], payload=payload, severity=sev, kind=row["kind"],
                   alert_ids=json.loads(row["alert_ids"]))


def _make_digest(home, channel: str, rows: list[dict], now_s: str) -> int | None:
    """Fold due alert rows of one channel into one digest row, atomically; returns its outbox id (None: no rows)."""
    with home.state.tx() as con:
        # Only the rows still pending are folded: another deliverer may have sent or digested some meanwhile.
        rows = [r for r in rows if con.execute(
            "UPDATE notify_outbox SET status='digested' WHERE id=? AND status='pending' AND attempts=0",
            (r["id"],)).rowcount]
        if not rows:
            return None
        return _insert_digest(home, con, channel, rows, now_s)


def _insert_digest(home, con, channel: str, rows: list[dict], now_s: str) -> int:
    alerts, links, ids = [], [], []
    for r in rows:
        p = json.loads(r["payload"])
        alerts += p.get("alerts", [])
        links += p.get("links", [])
        ids += json.loads(r["alert_ids"])
    counts: dict[str, int] = {}
    for a in alerts:
        counts[a["severity"]] = counts.get(a["severity"], 0) + 1
    sev_text = ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=SEVERITY_RANK.get, reverse=True))
    subject = f"[DIGEST] {len(rows)} alerts ({sev_text})"
    body = "\n".join(f"- {r['body']}" for r in rows)
    did = con.execute(
        "INSERT INTO notify_outbox (channel, kind, alert_ids, subject, body, payload, status, attempts, "
        "next_attempt_at, created_at) VALUES (?, 'digest', ?, ?, ?, ?, 'pending', 0, ?, ?)",
        (channel, json.dumps(ids), subject, f"{len(rows)} alerts:\n{body}",
         json.dumps({"alerts": alerts, "links": links}, default=str), now_s, now_s),
    ).lastrowid
    for r in rows:
        con.execute("UPDATE notify_outbox SET last_error=? WHERE id=?", (f"grouped into digest #{did}", r["id"]))
    home.state.audit(con, "worker", "notify.digest", f"outbox:{did}",
                     {"channel": channel, "grouped": [r["id"] for r in rows]})
    return did


def deliver_due(home, now: dt.datetime, channels: dict[str, Channel] | None = None) -> DeliveryReport:
    """Send every due outbox row (grouping storms into digests), recording each attempt and scheduling retries."""
    cfg = home.config.notify
    channels = load_channels(home) if channels is None else channels
    rep = DeliveryReport()
    now_s = iso(now)
    due = home.state.query(
        "SELECT * FROM notify_outbox WHERE status='pending' AND next_attempt_at<=? ORDER BY id", (now_s,))
    by_channel: dict[str, list[dict]] = {}
    for r in due:
        by_channel.setdefault(r["channel"], []).append(r)
    window = dt.timedelta(minutes=cfg.digest_minutes)
    for name, rows in by_channel.items():
        fresh = [r for r in rows if r["kind"] != "digest" and r["attempts"] == 0]
        last = home.state.query("SELECT max(created_at) AS at FROM notify_outbox WHERE channel=? AND kind='digest'",
                                (name,))[0]["at"]
        if fresh and last and now < _parse_iso(last) + window:
            # A storm is in progress on this channel: collect alerts until its digest interval ends.
            until = iso(_parse_iso(last) + window)
            with home.state.tx() as con:
                for r in fresh:
                    con.execute("UPDATE notify_outbox SET next_attempt_at=? WHERE id=?", (until, r["id"]))
            rep.held += len(fresh)
            rows = [r for r in rows if r not in fresh]
        elif len(fresh) > cfg.digest_threshold:
            did = _make_digest(home, name, fresh, now_s)
            rows = [r for r in rows if r not in fresh]
            if did is not None:
                rep.digests += 1
                rows += home.state.query("SELECT * FROM notify_outbox WHERE id=?", (did,))
        for r in rows:
            if _claim(home, r, now):
                _attempt(home, channels.get(name), r, now, cfg, rep)
    return rep


def _claim(home, row: dict, now: dt.datetime) -> bool:
    """Take a due row for this process; False when another deliverer took (or finished) it first."""
    with home.state.tx() as con:
        return con.execute(
            "UPDATE notify_outbox SET next_attempt_at=? WHERE id=? AND status='pending' AND next_attempt_at=?",
            (iso(now + dt.timedelta(seconds=CLAIM_S)), row["id"], row["next_attempt_at"])).rowcount == 1


def _attempt(home, ch: Channel | None, row: dict, now: dt.datetime, cfg, rep: DeliveryReport) -> None:
    error = None
    if ch is None:
        error = f"channel {row['channel']!r} is not configured (or disabled)"
        attempts, final = row["attempts"] + 1, True
    else:
        try:
            ch.send(_message(row))
        except Exception as e:  # NotifyError, or a third-party channel's bug: both are a failed attempt
            error = str(e) if str(e) else type(e).__name__
        attempts = row["attempts"] + 1
        final = error is not None and attempts >= cfg.max_attempts
    now_s = iso(now)
    with home.state.tx() as con:
        con.execute("INSERT INTO notify_attempts (outbox_id, at, ok, error) VALUES (?, ?, ?, ?)",
                    (row["id"], now_s, int(error is None), error))
        if error is None:
            con.execute("UPDATE notify_outbox SET status='sent', attempts=?, sent_at=?, last_error=NULL WHERE id=?",
                        (attempts, now_s, row["id"]))
            rep.sent += 1
        elif final:
            con.execute("UPDATE notify_outbox SET status='dead', attempts=?, last_error=? WHERE id=?",
                        (attempts, error, row["id"]))
            home.state.audit(con, "worker", "notify.dead", f"outbox:{row['id']}",
                             {"channel": row["channel"], "attempts": attempts, "error": error,
                              "alert_ids": json.loads(row["alert_ids"])})
            rep.dead += 1
            rep.errors.append(error)
        else:
            wait = min(cfg.backoff_seconds * 2.0 ** min(attempts - 1, 60), MAX_WAIT_S)
            con.execute("UPDATE notify_outbox SET attempts=?, next_attempt_at=?, last_error=? WHERE id=?",
                        (attempts, iso(now + dt.timedelta(seconds=wait)), error, row["id"]))
            rep.failed += 1
            rep.errors.append(error)
