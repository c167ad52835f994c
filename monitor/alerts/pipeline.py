"""Pipeline-health checks: alerts about the monitor's own input and jobs, for the people who rely on it.

When the collector breaks, no turn arrives, no metric row is written for the new day and the metric rules have
nothing to evaluate: they stay silent while the dashboards go quietly stale. Five rule kinds page instead
(docs/alerts.md, "Pipeline health"):

- ``no_data``: no turn for longer than ``max_silence``, by event time or by ingest time, for all traffic and for
  each deployment, unless the same hours of the week of the previous weeks (or, with less than ``min_weeks`` of
  history, the same hours of the day of the previous days) were that quiet too (a night, a weekend);
- ``job_failures``: a job failed its last ``failures`` runs (the worker's retries included);
- ``job_stuck``: a job's run in progress has run past its limit (hung: it fails no run, so job_failures never
  sees it); the limit and what counts as in progress are GET /readyz's (monitor/worker/runs.py);
- ``quarantine_share``: more than ``max_share`` of the input records read in the last ``window`` were quarantined
  (a log format changed upstream);
- ``config_invalid``: an edit broke the configuration file; the worker runs on the last configuration that passed
  its checks (monitor/worker/config_guard.py) until the file is fixed.

They are evaluated by the `pipeline_health` job, which depends on no other job: it runs, and pages, while the
metric jobs fail. Each check reads what is cheap: the turns files committed since its last run (the newest turn
per source and deployment is a running maximum kept in `kv` under ``pipeline.turns``), `job_runs` and
`ingested_files` in the state store, and only while a problem shows, the few days of files that say what to
expect or why records were quarantined. The alerts go through `engine.apply` like every other: the same lifecycle
(acknowledge, silence, resolve), incidents and notifications, and they resolve themselves when turns flow again,
the job succeeds or the share falls back.

An alert is one *episode* of a scope: one silence (from its last turn), one run of failures (from its first
failed run), one stretch above the share. Evaluated again while the episode lasts, it is left as it was, unless
its severity rises (a silence past ``critical_after``: an escalation). Resolved by hand during the episode (a
deployment retired on purpose), it stays resolved until the next episode.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import math
import re
from dataclasses import dataclass

from monitor.alerts.engine import OPEN, AlertList, AlertRow, ApplyResult, apply
from monitor.alerts.rules import PIPELINE_KINDS, SEVERITY_RANK, Rule, duration_s, effective_rules, segment_label
from monitor.errors import JobError
from monitor.resources import load_sql
from monitor.state import iso

log = logging.getLogger("monitor.alerts.pipeline")

GRANULARITY = "minute"  # an episode starts and is seen to the minute (window_label)
STATE_KEY = "pipeline.turns"
FIRST_RUN_DAYS = 14  # the first run reads the newest event dates only: a scope silent for longer is not watched
JOB_JOIN = dt.timedelta(hours=1)  # failure runs starting within an hour of each other are one incident
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
WEEK = dt.timedelta(days=7)
_DATE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)")


@dataclass
class _Scope:
    """One scope of a freshness check: all traffic (deployment None) or one deployment."""

    deployment: str | None
    event: str | None  # iso text of the newest event time
    ingest: str | None  # iso text of the newest ingest time


def _parse(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.rstrip("Z")) if text else None


def _hm(ts: dt.datetime, now: dt.datetime | None = None) -> str:
    """'2026-11-27 14:02 UTC'; '14:02 UTC' for a time on the same day as `now` (given for the later times of a
    message, once its start has named the day)."""
    return f"{ts:%H:%M} UTC" if now is not None and ts.date() == now.date() else f"{ts:%Y-%m-%d %H:%M} UTC"


def _span(seconds: float) -> str:
    """A silence's length in a few characters: '45 min', '6.2 h', '3.1 d'."""
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} d"


def _series_key(rule: Rule, deployment: str | None = None, segment: dict | None = None) -> str:
    """The series of a pipeline scope, spelt as the metric engine spells its series (rule | metric | granularity |
    model | deployment | segment)."""
    return "|".join([rule.name, rule.metric, GRANULARITY, "*", deployment or "*",
                     json.dumps(segment or {}, sort_keys=True)])


# -- reading ------------------------------------------------------------------------------------------------
def turn_freshness(home) -> dict[tuple[str, str | None], list[str]]:
    """(source, deployment) -> [newest event time, newest ingest time] (iso text), updated from the turns files
    committed since the last call (saved in `kv`); the first call reads the newest FIRST_RUN_DAYS event dates."""
    from monitor.db import memory_connection, scoped_manifest
    from monitor.incremental import Delta

    manifest = home.lake.manifest()
    saved = home.state.get(STATE_KEY) or {}
    v = saved.get("v")
    seen = {(s, d): [e, i] for s, d, e, i in saved.get("seen", [])}
    if isinstance(v, int) and v <= manifest["version"]:
        delta = Delta(home, manifest, v)
    else:
        # No state, or a lake older than the one read (restored from a backup): start again from recent files,
        # never the whole history.
        seen = {}
        dates = sorted({m.group(1) for e in manifest["tables"].get("turns", []) if (m := _DATE.search(e["path"]))})
        first = (dt.date.fromisoformat(dates[-1]) - dt.timedelta(days=FIRST_RUN_DAYS)).isoformat() if dates else ""
        delta = Delta(home, scoped_manifest(manifest, first, dates[-1]) if dates else manifest, None)
    if delta.entries("turns"):
        con = memory_connection()
        try:
            delta.view(con, "turns")
            rows = con.execute(load_sql("alerts/turn_freshness.sql").sql).fetchall()
        finally:
            con.close()
        for source, deployment, event, ingest in rows:
            key = (source or "", deployment if deployment else None)  # '' is no deployment, as NULL is
            old = seen.get(key, [None, None])
            seen[key] = [_newest(old[0], iso(event)), _newest(old[1], iso(ingest))]
    if v != manifest["version"] or "seen" not in saved:
        home.state.put(STATE_KEY, {"v": manifest["version"],
                                   "seen": [[s, d, e, i] for (s, d), (e, i) in sorted(
                                       seen.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]})
    return seen


def _newest(*values: str | None) -> str | None:
    """The latest of some iso texts (None when there is none)."""
    values = [x for x in values if x]
    return max(values) if values else None


def _scopes(rule: Rule, seen: dict) -> list[_Scope]:
    """All traffic, then each deployment (when the rule asks), of the sources the rule watches."""
    def newest(values):
        return _newest(*values)

    mine = {k: v for k, v in seen.items() if fnmatch.fnmatchcase(k[0], rule.params["turn_source"])}
    if not mine:
        return []
    out = [_Scope(None, newest(v[0] for v in mine.values()), newest(v[1] for v in mine.values()))]
    # Deployments on their own when there are several (turns without one count as another): one deployment alone
    # is all traffic, and would only repeat its alert.
    if rule.params["per_deployment"] and len({d for _, d in mine}) > 1:
        for dep in sorted({d for _, d in mine if d}):
            vals = [v for (s, d), v in mine.items() if d == dep]
            out.append(_Scope(dep, newest(v[0] for v in vals), newest(v[1] for v in vals)))
    return out


@dataclass(frozen=True)
class Profile:
    """The traffic a silent scope expects: turns per hour for each hour of the week (168 slots, Monday 00:00 UTC
    first) or, with too little history for that, of the day (24 slots), and how much history it averages."""

    rate: list[float]
    weekly: bool
    history_weeks: float  # the span of the scope's turns it was learnt from, in weeks (at most the reference)


# (home, source glob, reference, deployment, until) -> profile. A silence is checked every minute while it lasts
# (a quiet night: hundreds of times) and its reference, the days before its last turn, does not change.
_PROFILES: dict[tuple, Profile] = {}


def traffic_profile(home, rule: Rule, deployment: str | None, until: dt.datetime) -> Profile:
    """The turns per hour a scope carries at each hour of the week (UTC), averaged over the `reference_weeks`
    before `until`, when its turns span at least `min_weeks` of them; else at each hour of the day, averaged over
    the `reference_days` before `until` (or over the days the scope has existed, if fewer)."""
    p = rule.params
    key = (str(home.root), p["turn_source"], p["reference_days"], p["reference_weeks"], p["min_weeks"], deployment,
           until)
    if key not in _PROFILES:
        if len(_PROFILES) > 1000:  # a bound, not a policy: a few scopes are silent at a time
            _PROFILES.clear()
        _PROFILES[key] = _traffic_profile(home, rule, deployment, until)
    return _PROFILES[key]


def _traffic_profile(home, rule: Rule, deployment: str | None, until: dt.datetime) -> Profile:
    weeks, history = rule.params["reference_weeks"], 0.0
    if weeks:
        start = until - weeks * WEEK
        rows = _hour_counts(home, rule, deployment, start, until)
        if rows:
            # A week-long pattern (busy on weekdays, silent at weekends) needs a few weeks to be told from one quiet
            # day; a younger scope is judged by the hours of the day, as it always was.
            begin = max(start, min(r[3] for r in rows))
            history = (until - begin) / WEEK
            if history >= rule.params["min_weeks"]:
                seen = [0] * 168  # how often each hour of the week occurred in the span read
                t = begin.replace(minute=0, second=0, microsecond=0)
                while t < until:
                    seen[_slot(t)] += 1
                    t += HOUR
                rate = [0.0] * 168
                for weekday, hour, turns, _ in rows:
                    slot = int(weekday) * 24 + int(hour)
                    rate[slot] = turns / max(seen[slot], 1)
                return Profile(rate, True, history)
    days = rule.params["reference_days"]
    start = until - dt.timedelta(days=days)
    rows = _hour_counts(home, rule, deployment, start, until)
    if not rows:
        return Profile([0.0] * 24, False, 0.0)
    # A scope younger than the reference is averaged over the days it has existed, counted whole (the first turn
    # after the reference's start is a few minutes late on a full reference, too).
    first = min(r[3] for r in rows)
    covered = min(days, max(1, math.ceil((until - max(start, first)) / DAY)))
    rate = [0.0] * 24
    for _, hour, turns, _ in rows:
        rate[int(hour)] += turns / covered
    return Profile(rate, False, history or (until - max(start, first)) / WEEK)


def _hour_counts(home, rule: Rule, deployment: str | None, start: dt.datetime, until: dt.datetime) -> list[tuple]:
    """(weekday, hour, turns, first turn) of the scope's turns in (start, until], from the files of those dates."""
    from monitor.db import memory_connection, quote_ident, scoped_manifest, view_select

    scoped = scoped_manifest(home.lake.manifest(), start.date().isoformat(), until.date().isoformat())
    con = memory_connection()
    try:
        con.execute(f"CREATE VIEW {quote_ident('turns')} AS {view_select(home, 'turns', scoped)}")
        return con.execute(load_sql("alerts/hourly_traffic.sql").sql, {
            "start": start, "end": until, "source": rule.params["turn_source"],
            "every": deployment is None, "deployment": deployment or ""}).fetchall()
    finally:
        con.close()


def _slot(t: dt.datetime, slots: int = 168) -> int:
    """The hour of the week (Monday 00:00-01:00 UTC is 0) or, for a 24-slot profile, of the day, of `t`."""
    return t.weekday() * 24 + t.hour if slots == 168 else t.hour


def expected_turns(rate: list[float], start: dt.datetime, end: dt.datetime) -> float:
    """The turns a profile (`rate`: turns per hour for each hour of the week, 168, or of the day, 24) expects in
    [start, end)."""
    total = 0.0
    if end - start > 7 * DAY:  # whole days beyond a week: an average day's traffic each (and no week-long loop)
        total += sum(rate) * 24 / len(rate) * ((end - start - 7 * DAY) / DAY)
        end = start + 7 * DAY
    t = start
    while t < end:
        nxt = min(end, t.replace(minute=0, second=0, microsecond=0) + HOUR)
        total += rate[_slot(t, len(rate))] * ((nxt - t) / HOUR)
        t = nxt
    return total


def busy_seconds(rate: list[float], start: dt.datetime, end: dt.datetime) -> float:
    """The seconds of [start, end) at hours a profile expects any traffic at: how long a silence has mattered (a
    weekday deployment silent since Friday 20:00 has missed 2 h of traffic at 10:00 on Monday, not 62 h)."""
    total = 0.0
    if end - start > 7 * DAY:  # whole days beyond a week: an average day's busy hours each
        total += sum(x > 0 for x in rate) * 24 / len(rate) * 3600 * ((end - start - 7 * DAY) / DAY)
        end = start + 7 * DAY
    t = start
    while t < end:
        nxt = min(end, t.replace(minute=0, second=0, microsecond=0) + HOUR)
        total += (nxt - t).total_seconds() if rate[_slot(t, len(rate))] > 0 else 0.0
        t = nxt
    return total


def busiest_hour(rate: list[float], start: dt.datetime, end: dt.datetime) -> tuple[str, float]:
    """The hour of [start, end) (its first week) whose missing traffic weighs most, spelt 'Tue 10:00 UTC' (weekly
    profile) or '10:00 UTC', and the profile's turns per hour then: the hour that made the silence count."""
    best, most, t = start, -1.0, start
    end = min(end, start + 7 * DAY)
    while t < end:
        nxt = min(end, t.replace(minute=0, second=0, microsecond=0) + HOUR)
        weight = rate[_slot(t, len(rate))] * ((nxt - t) / HOUR)
        if weight > most:
            best, most = t, weight
        t = nxt
    label = f"{best:%a %H}:00 UTC" if len(rate) == 168 else f"{best:%H}:00 UTC"
    return label, rate[_slot(best, len(rate))]


def _last_files(home) -> tuple[dict | None, dict | None]:
    """The input file ingested last (done), and the oldest one still being ingested, from `ingested_files`."""
    done = home.state.query("SELECT path, format, read, ingested, duplicates, quarantined, finished_at FROM "
                            "ingested_files WHERE status='done' ORDER BY finished_at DESC LIMIT 1")
    running = home.state.query("SELECT path, started_at FROM ingested_files WHERE status='running' "
                               "ORDER BY started_at LIMIT 1")
    return (done[0] if done else None), (running[0] if running else None)


# -- the checks ---------------------------------------------------------------------------------------------
class _Run:
    """What one evaluation builds: alerts, recovered series and the incidents opened or joined."""

    def __init__(self, home, now: dt.datetime, backfill: bool):
        self.home, self.now, self.backfill = home, now, backfill
        self.alerts = AlertList()
        self.new_incidents: dict[str, list[tuple[dt.datetime, str]]] = {}

    def recovered(self, series_key: str, at: dt.datetime) -> None:
        self.alerts.recovered.append((series_key, at))

    def emit(self, rule: Rule, series_key: str, ws: dt.datetime, severity: str, join: dt.timedelta,
             refresh=None, **fields) -> None:
        """Record a breach of one scope's episode starting at `ws`, unless it is already recorded as it is.

        `refresh(evidence) -> bool` says whether an open episode's recorded evidence is out of date (an update,
        not a new page)."""
        dedup = f"{series_key}|{iso(ws)}"
        cur = self.home.state.query("SELECT status, severity, incident_key, evidence FROM alerts WHERE dedup_key=?",
                                    (dedup,))
        ikey = None
        if cur:
            c = cur[0]
            # The episode is recorded: evaluated again, it changes nothing, unless its severity rises while open.
            stale = refresh is not None and c["status"] in OPEN and refresh(json.loads(c["evidence"] or "{}"))
            if not stale and (c["status"] not in OPEN or SEVERITY_RANK[severity] <= SEVERITY_RANK[c["severity"]]):
                return
            ikey = c["incident_key"]
        elif rule.kind == "quarantine_share" and self.home.state.query(
                f"SELECT 1 FROM alerts WHERE series_key=? AND status IN ({','.join('?' * len(OPEN))}) LIMIT 1",
                (series_key, *OPEN)):
            return  # a share measured over a sliding window: its open alert is the episode
        a = AlertRow(dedup_key=dedup, series_key=series_key, rule=rule.name, metric=rule.metric, model=None,
                     granularity=GRANULARITY, window_start=ws, window_end=self.now, ci_low=None, ci_high=None,
                     reference_n=None, p_value=None, severity=severity, backfill=self.backfill, **fields)
        a.incident_key = ikey or self._incident(rule, ws, join)
        self.alerts.append(a)

    def _incident(self, rule: Rule, ws: dt.datetime, join: dt.timedelta) -> str:
        """The open incident of the rule whose episodes started within `join` of `ws`, else a new one.

        A broken collector silences every deployment within minutes, a full disk fails several jobs at once: one
        problem, one message listing its scopes. A scope starting later joins it as an update.
        """
        candidates = [(_parse(r["start"]), r["incident_key"]) for r in self.home.state.query(
            f"SELECT incident_key, min(window_start) AS start FROM alerts WHERE rule=? AND incident_key IS NOT NULL "
            f"AND status IN ({','.join('?' * len(OPEN))}) GROUP BY incident_key", (rule.name, *OPEN))]
        candidates += self.new_incidents.get(rule.name, [])
        near = [(abs(start - ws), key) for start, key in candidates if abs(start - ws) <= join]
        if near:
            return min(near)[1]
        key = "|".join([rule.name, rule.metric, GRANULARITY, iso(ws), ""])
        self.new_incidents.setdefault(rule.name, []).append((ws, key))
        return key


def _no_data(run: _Run, rule: Rule, seen: dict) -> None:
    now, p = run.now, rule.params
    limit, critical = duration_s(rule, "max_silence"), duration_s(rule, "critical_after")
    scopes = _scopes(rule, seen)
    if not scopes:
        return  # nothing of these sources was ever seen: a new home is not silent, it is empty
    whole = scopes[0]
    last_file = running = None
    for sc in sorted(scopes, key=lambda s: (s.event or "", s.deployment or "")):
        last = _parse(sc.event if p["clock"] == "event" else sc.ingest)
        if last is None:
            continue
        key = _series_key(rule, sc.deployment)
        silence = max((now - last).total_seconds(), 0.0)
        if silence <= limit:
            run.recovered(key, last)
            continue
        expected = profile = None
        if p["min_expected"] > 0:
            profile = traffic_profile(run.home, rule, sc.deployment, _parse(sc.event) or last)
            expected = expected_turns(profile.rate, last, now)
            if expected < p["min_expected"]:
                run.recovered(key, last)  # the same hours are this quiet on other days: not a silence yet
                continue
        if last_file is None and running is None:
            last_file, running = _last_files(run.home)
        # Escalation counts the silence at hours that carry traffic: a weekday deployment silent since Friday is
        # missing two hours of traffic at 10:00 on Monday, a warning, not a 62-hour critical silence.
        busy = silence if profile is None else busy_seconds(profile.rate, last, now)
        severity = "critical" if critical is not None and busy >= critical else rule.severity
        expectation = _expectation(rule, profile, expected, last, now)
        message, hint = _no_data_message(rule, sc, whole, last, silence, expectation, last_file, running, now,
                                         severity)
        busiest = busiest_hour(profile.rate, last, now) if profile is not None else None
        evidence = {"kind": rule.kind, "clock": p["clock"], "turn_source": p["turn_source"], "last_event": sc.event,
                    "last_ingest": sc.ingest, "silence_s": round(silence), "busy_silence_s": round(busy),
                    "max_silence": p["max_silence"],
                    "critical_after": p["critical_after"], "expected_turns": None if expected is None else
                    round(expected, 1), "reference_days": p["reference_days"],
                    "profile": None if profile is None else "hour_of_week" if profile.weekly else "hour_of_day",
                    "history_weeks": None if profile is None else round(profile.history_weeks, 1),
                    "busiest_hour": None if busiest is None else busiest[0],
                    "busiest_rate": None if busiest is None else round(busiest[1], 1), "check": hint,
                    "last_file": last_file, "file_in_progress": running}
        run.emit(rule, key, last, severity, dt.timedelta(seconds=limit), deployment=sc.deployment, segment={},
                 value=round(silence / 3600, 3), n=None, reference=None if expected is None else round(expected, 1),
                 threshold=round(limit / 3600, 3), message=message, evidence=evidence)


def _expectation(rule: Rule, profile: Profile | None, expected: float | None, last: dt.datetime,
                 now: dt.datetime) -> str:
    """What the silence was judged against, for its message: the turns expected, from which profile and history,
    and the busiest hour of the silence (the one that made it count); '' when the silence alone decides."""
    if profile is None or expected is None:
        return ""
    p = rule.params
    label, rate = busiest_hour(profile.rate, last, now)
    weeks = round(profile.history_weeks, 1)
    if profile.weekly:
        return (f"; about {expected:,.0f} turns expected in that time from the same hours of the week over the "
                f"previous {weeks:g} weeks (busiest {label}: {rate:,.1f} an hour)")
    young = (f"; {weeks:g} week{'s' if weeks != 1 else ''} of history, a weekly profile needs {p['min_weeks']}"
             if p["reference_weeks"] else "")
    return (f"; about {expected:,.0f} turns expected in that time from the previous {p['reference_days']} days "
            f"by hour of the day (busiest {label}: {rate:,.1f} an hour{young})")


def _no_data_message(rule: Rule, sc: _Scope, whole: _Scope, last: dt.datetime, silence: float,
                     expectation: str, last_file: dict | None, running: dict | None, now: dt.datetime,
                     severity: str) -> tuple[str, str]:
    """The message of a silence, and the one-line hint of what to check."""
    p = rule.params
    who = f"deployment {sc.deployment}" if sc.deployment else "all deployments"
    what = "no new turn" if p["clock"] == "event" else "nothing ingested"
    bits = [f"{rule.metric}, {who}: {what} since {_hm(last)} ({_span(silence)}; limit {p['max_silence']}"
            + expectation + ")"]
    ingest = _parse(sc.ingest)
    whole_last = _parse(whole.event if p["clock"] == "event" else whole.ingest)
    if sc.deployment and whole_last is not None and (now - whole_last).total_seconds() <= duration_s(
            rule, "max_silence"):
        bits.append(f"other deployments still send turns (newest {_hm(whole_last, last)})")
        hint = f"check the logging and the traffic of deployment {sc.deployment}"
    else:
        if p["clock"] == "event" and ingest is not None and ingest > last and \
                (now - ingest).total_seconds() <= duration_s(rule, "max_silence"):
            bits.append(f"turns are still ingested (last at {_hm(ingest, last)}) but none newer: old logs (a "
                        "backfill, a replay) arrive, live traffic does not")
        if last_file is not None:
            done = _parse(last_file["finished_at"])
            counts = (f"{last_file['read'] or 0:,} records, all quarantined" if last_file["read"] and
                      last_file["quarantined"] == last_file["read"] else
                      f"{last_file['ingested'] or 0:,} new turns of {last_file['read'] or 0:,} records")
            bits.append(f"last input file {last_file['path']} (done {_hm(done, last)}, {counts})")
        if running is not None:
            bits.append(f"{running['path']} is being ingested since {_hm(_parse(running['started_at']), last)}")
        hint = "check the collector and the inbox folders (ingest.inbox_dirs), and that the worker runs (GET /readyz)"
    bits.append(hint)
    return "; ".join(bits) + f"; rule {rule.name} ({severity})", hint


def _job_failures(run: _Run, rule: Rule) -> None:
    from monitor.jobs import discover

    jobs = discover()
    names = sorted(n for n in jobs if fnmatch.fnmatchcase(n, rule.params["jobs"]))
    for name in names:
        key = _series_key(rule, segment={"job": name})
        last_ok = run.home.state.query("SELECT id, started_at FROM job_runs WHERE job=? AND status='ok' "
                                       "ORDER BY id DESC LIMIT 1", (name,))
        ok_id = last_ok[0]["id"] if last_ok else 0
        [streak] = run.home.state.query(
            "SELECT count(*) AS n, min(started_at) AS first_at, max(finished_at) AS last_at, max(id) AS last_id "
            "FROM job_runs WHERE job=? AND status='failed' AND id>?", (name, ok_id))
        if not streak["n"]:
            if last_ok:
                run.recovered(key, _parse(last_ok[0]["started_at"]))
            continue
        if streak["n"] < rule.params["failures"]:
            continue  # failing, not yet often enough: neither a breach nor a recovery
        [last] = run.home.state.query("SELECT message FROM job_runs WHERE id=?", (streak["last_id"],))
        first, latest = _parse(streak["first_at"]), _parse(streak["last_at"])
        skipped = _dependants(jobs, name)
        error = (last["message"] or "no message")[:200]
        hint = f"read the traceback in the worker log, fix the cause, then run it by hand: monitor jobs run {name}"
        message = (f"{rule.metric}, job={name}: job {name} failed its last {streak['n']:,} runs (first at "
                   f"{_hm(first)}, latest {_hm(latest, first)}): {error}"
                   + (f"; skipped while it fails: {', '.join(skipped)}" if skipped else "")
                   + f"; {hint}; rule {rule.name} ({rule.severity})")
        evidence = {"kind": rule.kind, "job": name, "failures": streak["n"], "first_failed_at": streak["first_at"],
                    "last_failed_at": streak["last_at"], "last_error": error, "skipped": skipped,
                    "last_success_at": last_ok[0]["started_at"] if last_ok else None, "check": hint}
        run.emit(rule, key, first, rule.severity, JOB_JOIN, deployment=None, segment={"job": name},
                 value=float(streak["n"]), n=None, reference=None, threshold=float(rule.params["failures"]),
                 message=message, evidence=evidence)


def _job_stuck(run: _Run, rule: Rule) -> None:
    from monitor.jobs import discover
    from monitor.worker.runs import running_jobs

    jobs = discover()
    names = sorted(n for n in jobs if fnmatch.fnmatchcase(n, rule.params["jobs"]))
    # The runs in progress and their limits, as GET /readyz judges them (monitor/worker/runs.py).
    running = running_jobs(run.home, run.now, names)
    for name in names:
        key = _series_key(rule, segment={"job": name})
        cur = running.get(name)
        if cur is None or not cur.stuck:
            run.recovered(key, run.now)  # no run, or one within its limit: an earlier stuck run has ended
            continue
        # An episode is one run: a run stuck before this one has ended (runs of a job never overlap).
        run.recovered(key, cur.started_at - dt.timedelta(seconds=1))
        waiting = _dependants(jobs, name)
        hint = (f"see what it is doing (the worker log; `py-spy dump` of the worker's process), then restart the "
                f"worker: a run killed with its process ends its episode; or raise worker.max_run_s.{name} if "
                "such runs are expected")
        message = (f"{rule.metric}, job={name}: job {name} has been running for {_span(cur.running_s)} (since "
                   f"{_hm(cur.started_at)}; limit {_span(cur.limit_s)}: {cur.basis})"
                   + (f"; waiting for it: {', '.join(waiting)}" if waiting else "")
                   + "; the worker runs one job at a time, so only the health checks and notifications run meanwhile"
                   + f"; {hint}; rule {rule.name} ({rule.severity})")
        evidence = {"kind": rule.kind, "job": name, "run_id": cur.run_id, "since": iso(cur.started_at),
                    "running_s": round(cur.running_s, 3), "limit_s": round(cur.limit_s, 3), "limit_basis": cur.basis,
                    "waiting": waiting, "check": hint}
        run.emit(rule, key, cur.started_at, rule.severity, JOB_JOIN, deployment=None, segment={"job": name},
                 value=round(cur.running_s / 3600, 3), n=None, reference=None,
                 threshold=round(cur.limit_s / 3600, 3), message=message, evidence=evidence)


def _dependants(jobs: dict, name: str) -> list[str]:
    """The jobs skipped while `name` fails: those depending on it, directly or through another, in run order."""
    from monitor.jobs import ordered

    out = {name}
    for job in ordered(jobs):  # dependencies come first, so one pass finds every dependant
        if any(d in out for d in job.depends_on):
            out.add(job.name)
    return [j.name for j in ordered(jobs) if j.name in out and j.name != name]


def _quarantine_share(run: _Run, rule: Rule) -> None:
    now = run.now
    window = dt.timedelta(seconds=duration_s(rule, "window"))
    files = run.home.state.query(
        "SELECT path, format, read, quarantined, finished_at FROM ingested_files WHERE status='done' "
        "AND finished_at>? AND finished_at<=? ORDER BY finished_at", (iso(now - window), iso(now)))
    formats = sorted({f["format"] or "" for f in files})
    scopes = [None] + (formats if len(formats) > 1 else [])
    for fmt in scopes:
        segment = {} if fmt is None else {"format": fmt}
        key = _series_key(rule, segment=segment)
        # After a hand resolve ("fixed"), only what was read since counts: the old bad files must not page again.
        [r] = run.home.state.query("SELECT max(resolved_at) AS at FROM alerts WHERE series_key=? AND "
                                   "status='resolved' AND resolved_by!='worker'", (key,))
        since = max(now - window, _parse(r["at"]) or now - window)
        mine = [f for f in files if (fmt is None or (f["format"] or "") == fmt) and f["finished_at"] > iso(since)]
        read = sum(f["read"] or 0 for f in mine)
        bad = sum(f["quarantined"] or 0 for f in mine)
        if read < rule.min_n or read == 0:
            continue  # too few records to judge: neither a breach nor a recovery
        share = bad / read
        if share <= rule.params["max_share"]:
            run.recovered(key, now)
            continue
        reasons = _reasons(run.home, since, now, fmt)
        worst = max((f for f in mine if f["quarantined"]), key=lambda f: f["finished_at"])
        hint = ("a log format changed upstream? `monitor quarantine list` shows the records; once the collector or "
                "the format is fixed, `monitor quarantine retry --all`")
        where = "all input" if fmt is None else f"format {fmt}"
        message = (f"{rule.metric}, {where}: {share:.0%} of the {read:,} input records read since {_hm(since)} "
                   f"were quarantined ({bad:,}; limit {rule.params['max_share']:.0%}; {len(mine):,} file(s))"
                   + ("; most often: " + ", ".join(
                       f"{(x['field'] + ': ') if x['field'] else ''}{x['reason']} ({x['records']:,})" for x in reasons)
                      if reasons else "")
                   + f"; latest: {worst['path']} ({worst['quarantined']:,} of {worst['read']:,} quarantined)"
                   + f"; {hint}; rule {rule.name} ({rule.severity})")
        evidence = {"kind": rule.kind, "since": iso(since), "read": read, "quarantined": bad, "files": len(mine),
                    "window": rule.params["window"], "reasons": reasons, "latest_file": worst, "check": hint}
        run.emit(rule, key, since, rule.severity, window, deployment=None, segment=segment, value=share, n=read,
                 reference=None, threshold=rule.params["max_share"], message=message, evidence=evidence)


def _reasons(home, since: dt.datetime, now: dt.datetime, fmt: str | None) -> list[dict]:
    """The most common quarantine reasons since `since`, read from the quarantine dates from then on only."""
    from monitor.db import memory_connection, quote_ident, scoped_manifest, view_select

    scoped = scoped_manifest(home.lake.manifest(), since.date().isoformat(), "9999-12-31")
    con = memory_connection()
    try:
        con.execute(f"CREATE VIEW {quote_ident('quarantine')} AS {view_select(home, 'quarantine', scoped)}")
        rows = con.execute(load_sql("alerts/quarantine_reasons.sql").sql,
                           {"since": since, "every": fmt is None, "format": fmt or ""}).fetchall()
    finally:
        con.close()
    return [{"field": f, "reason": r, "records": n} for f, r, n in rows]


# -- entry points -------------------------------------------------------------------------------------------
def _config_invalid(run: _Run, rule: Rule) -> None:
    """The worker found its configuration file broken at a run and runs on the last one that passed
    (monitor/worker/config_guard.py); one episode per broken stretch, resolved when the file passes again."""
    from monitor.worker.config_guard import PROBLEM_KEY

    key = _series_key(rule)
    entry = run.home.state.get(PROBLEM_KEY)
    if entry is None:
        run.recovered(key, run.now)
        return
    since = _parse(entry.get("since")) or run.now
    hint = (f"{entry.get('hint') + '; ' if entry.get('hint') else ''}check the file with `monitor config check` "
            "before the next run reads it")
    message = (f"{rule.metric}: {entry.get('error')}; the worker runs on the configuration it read at "
               f"{_hm(_parse(entry.get('running_on_config_read_at')) or since)} until the file is fixed, so this "
               f"edit is not in force (invalid since {_hm(since)}); {hint}; rule {rule.name} ({rule.severity})")
    evidence = {"kind": rule.kind, "file": entry.get("file"), "error": entry.get("error"), "since": entry.get("since"),
                "running_on_config_read_at": entry.get("running_on_config_read_at"), "check": hint}
    # Another mistake in the same broken stretch (the first fixed, a second made): the alert says the current one.
    run.emit(rule, key, since, rule.severity, JOB_JOIN, refresh=lambda ev: ev.get("error") != entry.get("error"),
             deployment=None, segment={}, value=1.0, n=None, reference=None, threshold=None, message=message,
             evidence=evidence)


CHECKS = {"no_data": _no_data, "job_failures": _job_failures, "job_stuck": _job_stuck,
          "quarantine_share": _quarantine_share, "config_invalid": _config_invalid}


def evaluate(home, now: dt.datetime, backfill: bool = False,
             rules: list[Rule] | None = None) -> tuple[AlertList, list[tuple[str, Exception]]]:
    """Run every pipeline-health rule at `now`: the alerts to record, the series that recovered, and the rules
    whose check failed (each check runs on its own: a broken lake must not stop the job-failure check)."""
    rules = [r for r in (effective_rules(home.config) if rules is None else rules) if r.kind in PIPELINE_KINDS]
    run = _Run(home, now, backfill)
    errors: list[tuple[str, Exception]] = []
    seen = None
    for rule in rules:
        try:
            if rule.kind == "no_data":
                seen = turn_freshness(home) if seen is None else seen
                _no_data(run, rule, seen)
            else:
                CHECKS[rule.kind](run, rule)
        except Exception as e:  # recorded and raised after the other checks applied their alerts
            log.exception("pipeline check %s failed", rule.name)
            errors.append((rule.name, e))
    return run.alerts, errors


def check(home, now: dt.datetime, backfill: bool = False) -> ApplyResult:
    """Evaluate the pipeline-health rules and record their alerts (lifecycle, incidents, notifications)."""
    alerts, errors = evaluate(home, now, backfill)
    res = apply(home, alerts, now, pipeline=True)
    if errors:
        name, e = errors[0]
        raise JobError(f"pipeline check {name} failed: {type(e).__name__}: {e}"
                       + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
                       "the other checks ran; see the worker log for the traceback") from e
    return res


def scope_label(alert: dict) -> str:
    """A pipeline alert's scope in a few words: 'all deployments', 'deployment web', 'job=score', 'all input'."""
    if alert.get("deployment"):
        return f"deployment {alert['deployment']}"
    seg = alert.get("segment") or {}
    seg = json.loads(seg) if isinstance(seg, str) else seg
    if seg:
        return segment_label(seg)
    return {"turn_freshness": "all deployments", "quarantine_share": "all input",
            "config_invalid": "configuration file"}.get(alert.get("metric"), "")
