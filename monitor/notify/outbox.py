"""The durable notification outbox: enqueue inside the alert transaction, deliver later with retries and digests.

One row is one message to one channel about one incident (the alerts of one rule and metric breaching in one
window and direction, `incident_key`): its scopes are listed together, a scope joining later is an `update`
(held so that updates go out at most once per `notify.group_interval_minutes`), a higher severity an `escalation`.

Rows of ``notify_outbox`` move pending -> sent, or pending -> dead after ``notify.max_attempts`` failures (each
retry waits ``backoff_seconds * 2**(attempts-1)``, at most ``MAX_WAIT_S``, a day), or pending -> digested when an
alert storm is folded into one digest row, or pending -> held while their channel is not configured (back to
pending when it is, dead after the retry horizon). Every attempt is a row of ``notify_attempts``. Because the outbox is in SQLite, a worker that dies
between two runs loses nothing: the next `deliver_due`, in any process, picks the rows up. A row is claimed
before it is sent, so two deliverers at once (the worker and a `monitor jobs run`) never send it twice. Delivery
is at-least-once: a crash after a send but before its row is marked sent re-sends that one message.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from monitor.alerts.rules import PIPELINE_METRICS, SEVERITY_RANK, segment_label
from monitor.notify.base import Channel, Message, parse_channels
from monitor.state import iso

MAX_WAIT_S = 86_400.0  # the longest wait between two attempts: many attempts must not overflow the date
# A row being sent is claimed by moving its next attempt this far ahead, so that a second deliverer (a
# `monitor jobs run` beside the worker, a second worker) skips it. Far longer than any send's timeout; if the
# claiming process dies mid-send, the row is due again after it (at-least-once, never lost).
CLAIM_S = 900.0
MAX_HOLD_S = 3650 * 86400.0  # a message waits for a missing channel at most ten years, whatever the retry settings


def load_channels(home) -> dict[str, Channel]:
    """The configured channels of a home (validated strictly), keyed by name."""
    origin = home.config.sources.get("notify.channels", "monitor.toml")
    return parse_channels(home.config.notify.channels, origin, home.root)


def _parse_iso(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.rstrip("Z"))


TAGS = {"escalation": "ESCALATED ", "unsilenced": "SILENCE ENDED ", "update": "UPDATE "}
# When rows of one incident are merged into one message, the merged message is of the strongest kind: a first
# page not sent yet carries the scopes that joined meanwhile.
KIND_RANK = {"update": 0, "escalation": 1, "alert": 2}
_OPEN = ("firing", "acknowledged", "silenced")


def _where(alert: dict) -> str:
    """The scope of an alert in a few words: metric, model (or all models), deployment, segment."""
    if alert["metric"] in PIPELINE_METRICS.values():  # the monitor's own input and jobs: no model to name
        from monitor.alerts.pipeline import scope_label

        return f"{alert['metric']}, {scope_label(alert)}"
    parts = [alert["metric"], alert.get("model") or "all models"]
    if alert.get("deployment"):
        parts.append(f"deployment {alert['deployment']}")
    parts.append(segment_label(alert.get("segment")))
    return ", ".join(x for x in parts if x)


def _specificity(alert: dict) -> tuple:
    """Sort key putting the most specific evidence first: segments, then a model or deployment, then severity."""
    seg = alert.get("segment") or {}
    seg = json.loads(seg) if isinstance(seg, str) else seg
    return (-len(seg), alert.get("model") is None, alert.get("deployment") is None,
            -SEVERITY_RANK.get(alert["severity"], 0), segment_label(seg), alert.get("model") or "",
            alert.get("deployment") or "", alert["id"])


def render(kind: str, alerts: list[dict]) -> tuple[str, str]:
    """Subject and body of one message carrying the alerts (public JSON shape) of one incident.

    One alert keeps its own message; several are listed most specific first, each with its evidence and link:
    ``[WARNING] over_refusal_rate, m1, language=hi + 2 more scopes: over_refusal_spike``.
    """
    alerts = sorted(alerts, key=_specificity)
    first = alerts[0]
    sev = max((a["severity"] for a in alerts), key=SEVERITY_RANK.get)
    more = len(alerts) - 1
    extra = f" + {more} more scope{'s' if more > 1 else ''}" if more else ""
    subject = f"[{TAGS.get(kind, '')}{sev.upper()}] {_where(first)}{extra}: {first['rule']}"
    if len(alerts) == 1 and kind != "update":
        return subject, first["message"]
    ws = dt.datetime.fromisoformat(first["window_start"].rstrip("Z"))
    from monitor.alerts.engine import window_label

    what = f"{first['metric']}, {window_label(ws, first.get('granularity') or 'day')}, rule {first['rule']}"
    s = "s" if len(alerts) > 1 else ""
    if kind == "update":
        head = f"Update to an incident already notified ({what}): {len(alerts)} more scope{s}, not paged again"
    else:
        head = f"One incident, {len(alerts)} scope{s} ({what}), most specific first"
    lines = [head + ":", *(f"- {a['message']}" for a in alerts)]
    if len(alerts) > 1:
        lines.append(f"Acknowledge them all: monitor alerts ack {first['id']} --incident --by NAME")
    return subject, "\n".join(lines)


def _insert_row(con, url: str, channel: str, kind: str, ikey: str | None, rows: list[dict], due: str,
                now_s: str) -> int:
    """Write one outbox row carrying `rows` (alert rows or their public JSON) of one incident; returns its id."""
    from monitor.alerts.lifecycle import to_json

    alerts = sorted((a if isinstance(a.get("segment"), dict) else to_json(a) for a in rows), key=_specificity)
    subject, body = render(kind, alerts)
    payload = {"incident_key": ikey, "alerts": alerts,
               "links": [[a["id"], f"{url}/alerts?alert_id={a['id']}"] for a in alerts]}
    sev = max((a["severity"] for a in alerts), key=SEVERITY_RANK.get)
    return con.execute(
        "INSERT INTO notify_outbox (channel, kind, alert_ids, subject, body, payload, status, attempts, "
        "next_attempt_at, created_at, incident_key, severity) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
        (channel, kind, json.dumps([a["id"] for a in alerts]), subject, body, json.dumps(payload, default=str),
         due, now_s, ikey, sev)).lastrowid


def _earlier_incidents(con, ikey: str) -> list[str]:
    """Incident keys of the open earlier windows of the series in incident `ikey`: the same ongoing incident.

    A series breaching day after day is one incident for whoever is paged; a scope that first breaches on the
    third day joins it (an update), it does not start a new page.
    """
    return [r[0] for r in con.execute(
        f"SELECT DISTINCT p.incident_key FROM alerts a JOIN alerts p ON p.series_key = a.series_key "
        f"AND p.window_start < a.window_start WHERE a.incident_key = ? AND p.incident_key IS NOT NULL "
        f"AND p.status IN ({','.join('?' * len(_OPEN))})", (ikey, *_OPEN)).fetchall()]


def enqueue_incidents(home, con, channels: dict[str, Channel], pages: list[tuple[dict, str]], now_s: str) -> int:
    """Queue the notifications decided by one `apply`: one message per incident and channel; returns rows queued.

    `pages` holds (alert row, kind) with kind alert | escalation | unsilenced. The alerts of one incident that a
    channel's minimum severity lets through go out as one message. When the channel already carried the incident
    (or the same ongoing incident in an earlier window), it is an `update` at no higher severity than before,
    held until `notify.group_interval_minutes` after the incident's last message there (updates meanwhile go out
    together); at a higher severity it is an `escalation`, sent now. A silence that ended is its own message.
    """
    url = home.config.alerts.dashboard_url.rstrip("/")
    interval = dt.timedelta(minutes=home.config.notify.group_interval_minutes)
    groups: dict[tuple, dict[int, tuple[dict, str]]] = {}
    for row, kind in pages:
        ikey = row.get("incident_key") or f"alert:{row['id']}"
        groups.setdefault((ikey, kind == "unsilenced"), {})[row["id"]] = (row, kind)  # latest decision wins
    queued = 0
    for (ikey, unsilenced), items in groups.items():
        keys = [ikey, *_earlier_incidents(con, ikey)]
        for ch in channels.values():
            wanted = [(r, k) for r, k in items.values() if ch.wants(r["severity"])]
            if not wanted:
                continue
            top = max(SEVERITY_RANK[r["severity"]] for r, _ in wanted)
            prior = con.execute(
                f"SELECT kind, status, severity, attempts, next_attempt_at, coalesce(sent_at, created_at) AS at "
                f"FROM notify_outbox WHERE channel=? AND status!='dead' AND incident_key IN "
                f"({','.join('?' * len(keys))})", (ch.name, *keys)).fetchall()
            due = now_s
            if unsilenced:
                kind = "unsilenced"
            elif not prior:
                kind = "escalation" if any(k == "escalation" for _, k in wanted) else "alert"
            elif top > max(SEVERITY_RANK.get(p["severity"], -1) for p in prior):
                kind = "escalation"
            else:
                kind = "update"
                waiting = [p["next_attempt_at"] for p in prior
                           if p["status"] == "pending" and p["attempts"] == 0 and p["kind"] != "update"]
                if waiting:  # the incident's message is not out yet: go with it (merged when due)
                    due = max(now_s, min(waiting))
                else:
                    base = [p["at"] for p in prior if not (p["status"] == "pending" and p["kind"] == "update")]
                    if base:
                        due = max(now_s, iso(_parse_iso(max(base)) + interval))
            _insert_row(con, url, ch.name, kind, ikey, [r for r, _ in wanted], due, now_s)
            queued += 1
    return queued


def enqueue(home, con, channels: dict[str, Channel], rows: list[dict], kind: str, now_s: str) -> int:
    """Queue alert rows of one kind (grouped per incident, see `enqueue_incidents`); returns rows queued."""
    return enqueue_incidents(home, con, channels, [(r, kind) for r in rows], now_s)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    digests: int = 0
    held: int = 0  # fresh rows waiting for a storm's digest interval to end
    grouped: int = 0  # rows merged into one message per incident
    no_channel: int = 0  # rows whose channel is not configured, put on hold for it (status 'held')
    released: int = 0  # held rows whose channel is configured again, due now
    errors: list[str] = field(default_factory=list)


def _message(row: dict) -> Message:
    payload = json.loads(row["payload"])
    sev = max((a.get("severity", "info") for a in payload.get("alerts", [])), key=SEVERITY_RANK.get,
              default="warning")
    return Message(subject=row["subject"], body=row["body"], payload=payload, severity=sev, kind=row["kind"],
                   alert_ids=json.loads(row["alert_ids"]), incident_key=row.get("incident_key"))


def _take(con, rows: list[dict]) -> list[dict]:
    """The rows still as they were read (pending, never attempted, not claimed meanwhile), marked digested."""
    # Another deliverer may have sent, digested or claimed some meanwhile (a claim moves next_attempt_at).
    return [r for r in rows if con.execute(
        "UPDATE notify_outbox SET status='digested' WHERE id=? AND status='pending' AND attempts=0 "
        "AND next_attempt_at=?", (r["id"], r["next_attempt_at"])).rowcount]


def _make_digest(home, channel: str, rows: list[dict], now_s: str) -> int | None:
    """Fold due alert rows of one channel into one digest row, atomically; returns its outbox id (None: no rows)."""
    with home.state.tx() as con:
        rows = _take(con, rows)
        if not rows:
            return None
        return _insert_digest(home, con, channel, rows, now_s)


def _merge_incident(home, channel: str, rows: list[dict], now_s: str) -> int | None:
    """Fold due rows of one incident on one channel into one message, atomically; returns its id (None: no rows)."""
    url = home.config.alerts.dashboard_url.rstrip("/")
    with home.state.tx() as con:
        rows = _take(con, rows)
        if not rows:
            return None
        if len(rows) == 1:  # the others went elsewhere meanwhile: this one goes as it is
            con.execute("UPDATE notify_outbox SET status='pending' WHERE id=?", (rows[0]["id"],))
            return rows[0]["id"]
        alerts: dict[int, dict] = {}
        for r in rows:  # oldest first: a later row holds the newer state of an alert it shares
            for a in json.loads(r["payload"]).get("alerts", []):
                alerts[a["id"]] = a
        kinds = {r["kind"] for r in rows}
        kind = "unsilenced" if "unsilenced" in kinds else max(kinds, key=lambda k: KIND_RANK.get(k, 0))
        mid = _insert_row(con, url, channel, kind, rows[0]["incident_key"], list(alerts.values()), now_s, now_s)
        for r in rows:
            con.execute("UPDATE notify_outbox SET last_error=? WHERE id=?", (f"grouped into message #{mid}", r["id"]))
        home.state.audit(con, "worker", "notify.group", f"outbox:{mid}",
                         {"channel": channel, "incident": rows[0]["incident_key"], "grouped": [r["id"] for r in rows]})
        return mid


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
    what = f"{len(rows)} alerts" if len(alerts) == len(rows) else f"{len(rows)} incidents, {len(alerts)} alerts"
    subject = f"[DIGEST] {what} ({sev_text})"
    body = "\n".join("- " + r["body"].replace("\n", "\n  ") for r in rows)
    did = con.execute(
        "INSERT INTO notify_outbox (channel, kind, alert_ids, subject, body, payload, status, attempts, "
        "next_attempt_at, created_at) VALUES (?, 'digest', ?, ?, ?, ?, 'pending', 0, ?, ?)",
        (channel, json.dumps(ids), subject, f"{what}:\n{body}",
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
    _release_or_expire(home, channels, now, cfg, rep)
    due = home.state.query(
        "SELECT * FROM notify_outbox WHERE status='pending' AND next_attempt_at<=? ORDER BY id", (now_s,))
    by_channel: dict[str, list[dict]] = {}
    for r in due:
        if r["channel"] in channels:
            by_channel.setdefault(r["channel"], []).append(r)
        else:
            _hold(home, r, now, cfg, rep)
    window = dt.timedelta(minutes=cfg.digest_minutes)
    for name, rows in by_channel.items():
        rows = _group_incidents(home, name, rows, now_s, rep)
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
                _attempt(home, channels[name], r, now, cfg, rep)
    return rep


def _group_incidents(home, channel: str, rows: list[dict], now_s: str, rep: DeliveryReport) -> list[dict]:
    """Due rows of one channel with rows of the same incident merged into one message each (updates that piled
    up while held, a first page not sent yet with the scopes that joined it); a silence that ended stays apart."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["kind"] != "digest" and r["attempts"] == 0 and r.get("incident_key"):
            groups.setdefault((r["incident_key"], r["kind"] == "unsilenced"), []).append(r)
    for members in groups.values():
        if len(members) < 2:
            continue
        mid = _merge_incident(home, channel, members, now_s)
        rows = [r for r in rows if r not in members]
        if mid is not None:
            rep.grouped += len(members) if mid not in {m["id"] for m in members} else 0
            rows += home.state.query("SELECT * FROM notify_outbox WHERE id=?", (mid,))
    return sorted(rows, key=lambda r: r["id"])


def _claim(home, row: dict, now: dt.datetime) -> bool:
    """Take a due row for this process; False when another deliverer took (or finished) it first."""
    with home.state.tx() as con:
        return con.execute(
            "UPDATE notify_outbox SET next_attempt_at=? WHERE id=? AND status='pending' AND next_attempt_at=?",
            (iso(now + dt.timedelta(seconds=CLAIM_S)), row["id"], row["next_attempt_at"])).rowcount == 1


def retry_horizon(cfg) -> dt.timedelta:
    """How long after its creation a message that keeps failing goes dead: the sum of the waits between its
    `max_attempts` attempts (30 s, 60 s, ... at most MAX_WAIT_S each; 63.5 min with the defaults)."""
    total, wait = 0.0, float(cfg.backoff_seconds)
    for i in range(1, cfg.max_attempts):
        if wait >= MAX_WAIT_S:  # every later wait is the cap
            total += MAX_WAIT_S * (cfg.max_attempts - i)
            break
        total += wait
        wait *= 2
    return dt.timedelta(seconds=min(total, MAX_HOLD_S))


def _hold(home, row: dict, now: dt.datetime, cfg, rep: DeliveryReport) -> None:
    """Put a due row whose channel is not configured on hold for it until the retry horizon, instead of failing it.

    A channel renamed by mistake, or with a typo in its name, is back after the fix and its messages with it;
    a channel renamed on purpose gets them with `monitor alerts reroute`. After the horizon they are dead.
    """
    until = max(iso(now), iso(_parse_iso(row["created_at"]) + retry_horizon(cfg)))
    reason = f"channel {row['channel']!r} is not configured (or disabled): held for it until {until}, then dead"
    with home.state.tx() as con:
        if not con.execute("UPDATE notify_outbox SET status='held', next_attempt_at=?, last_error=? WHERE id=? "
                           "AND status='pending' AND next_attempt_at=?",
                           (until, reason, row["id"], row["next_attempt_at"])).rowcount:
            return  # another deliverer got to it first
        home.state.audit(con, "worker", "notify.held", f"outbox:{row['id']}",
                         {"channel": row["channel"], "until": until, "alert_ids": json.loads(row["alert_ids"])})
    rep.no_channel += 1


def _release_or_expire(home, channels: dict[str, Channel], now: dt.datetime, cfg, rep: DeliveryReport) -> None:
    """Held rows whose channel is configured again become due now; those held past the retry horizon are dead."""
    now_s = iso(now)
    for r in home.state.query("SELECT * FROM notify_outbox WHERE status='held' ORDER BY id"):
        back = r["channel"] in channels
        if not back and r["next_attempt_at"] > now_s:
            continue
        with home.state.tx() as con:
            if back:
                done = con.execute("UPDATE notify_outbox SET status='pending', next_attempt_at=?, last_error=? "
                                   "WHERE id=? AND status='held'", (now_s, None, r["id"])).rowcount
                action, details = "notify.release", {"channel": r["channel"]}
            else:
                error = f"channel {r['channel']!r} was not configured (or disabled) for the whole retry horizon"
                done = con.execute("UPDATE notify_outbox SET status='dead', last_error=? WHERE id=? AND status='held'",
                                   (error, r["id"])).rowcount
                action = "notify.dead"
                details = {"channel": r["channel"], "attempts": r["attempts"], "error": error}
            if done:
                home.state.audit(con, "worker", action, f"outbox:{r['id']}",
                                 {**details, "alert_ids": json.loads(r["alert_ids"])})
        if done and back:
            rep.released += 1
        elif done:
            rep.dead += 1
            rep.errors.append(error)


def reroute(home, old: str, new: str, by: str, now: dt.datetime | None = None) -> int:
    """Send the held and pending messages of channel `old` through configured channel `new`; returns how many."""
    from monitor.alerts.lifecycle import AlertError, _actor
    from monitor.state import utcnow

    by, now_s = _actor(by), iso(now or utcnow())
    channels = load_channels(home)
    if new not in channels:
        raise AlertError(f"channel {new!r} is not configured (or disabled)",
                         f"configured channels: {', '.join(sorted(channels)) or 'none'}")
    if old == new:
        raise AlertError(f"--from and --to are both {old!r}", "name the channel the messages were queued for")
    with home.state.tx() as con:
        ids = [r[0] for r in con.execute("SELECT id FROM notify_outbox WHERE channel=? AND status IN "
                                         "('held', 'pending') ORDER BY id", (old,)).fetchall()]
        for i in ids:
            con.execute("UPDATE notify_outbox SET channel=?, status='pending', next_attempt_at=?, last_error=? "
                        "WHERE id=?", (new, now_s, f"rerouted from {old!r} by {by}", i))
        if ids:
            home.state.audit(con, by, "notify.reroute", f"channel:{old}", {"to": new, "outbox_ids": ids})
    return len(ids)


def _attempt(home, ch: Channel, row: dict, now: dt.datetime, cfg, rep: DeliveryReport) -> None:
    error = None
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
