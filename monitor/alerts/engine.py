"""Evaluate the alert rules over the metric history, then record the resulting alerts and their lifecycle.

`evaluate` is a pure read: metric rows in, `AlertRow`s (with their evidence and message) out. `apply` is the
only writer: it upserts alerts by `dedup_key`, resolves alerts whose series recovered (in a later window, or in the
alert's own window recomputed with more data), ends expired silences, audits every change and puts notifications
in the outbox (never for backfill or silenced alerts, and for an ongoing incident only when its severity rises),
one message per incident: the alerts of one rule and metric in one window and direction (`incident_key`).

A *series* is one (rule, metric, granularity, model, deployment, segment); an alert is one window of a series
that breached. A new breaching window of a series that already has an open alert is recorded (with the
acknowledgement or silence carried over) but pages nobody unless its severity is higher.
"""
from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson

from monitor.alerts.rules import PIPELINE_KINDS, SEVERITY_RANK, Rule, effective_rules, segment_label
from monitor.resources import load_sql
from monitor.state import iso

OPEN = ("firing", "acknowledged", "silenced")
# orjson turns integers beyond 64 bits into floats where json keeps them exact: text with a run of 20 digits
# (found by mapping every digit to 0, much cheaper than a regex) goes to json instead.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20
# Evidently's p-value statistical tests: drift when the score is *below* the threshold. Any other method is a
# distance (Wasserstein, Jensen-Shannon, PSI, ...): drift when the score is at or above it.
P_VALUE_METHODS = {"ks", "chisquare", "z", "fisher_exact", "g_test", "anderson", "cramer_von_mises", "mannw",
                   "epps_singleton", "t_test", "empirical_mmd", "mann_whitney", "kolmogorov_smirnov", "chi2"}


@dataclass
class AlertRow:
    """One breaching window of one series, with the evidence and the message to show."""

    dedup_key: str
    series_key: str
    rule: str
    metric: str
    model: str | None
    deployment: str | None
    segment: dict
    granularity: str
    window_start: dt.datetime
    window_end: dt.datetime
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    reference: float | None
    reference_n: int | None
    threshold: float | None
    p_value: float | None
    severity: str
    message: str
    evidence: dict = field(default_factory=dict)
    backfill: bool = False
    incident_key: str = ""


def incident_key(rule: str, metric: str, granularity: str, window_start: str, evidence: dict) -> str:
    """The incident an alert belongs to: rule | metric | granularity | window start | direction.

    The alerts of one regression (all models, the model, a deployment, each segment) share it, and are notified as
    one message. The direction keeps a rise and a fall of one metric apart (a two-sided rule); flags have none.
    sql/state/050_incidents.sql computes the same key for alerts stored before it.
    """
    direction = evidence.get("direction") or {">": "up", ">=": "up", "<": "down", "<=": "down"}.get(
        evidence.get("op"), "")
    return "|".join([rule, metric, granularity, window_start, direction])


class AlertList(list):
    """The alerts of one evaluation plus `recovered`: (series_key, window_start) of series whose latest window is fine."""

    def __init__(self, items=(), recovered=()):
        super().__init__(items)
        self.recovered: list[tuple[str, dt.datetime]] = list(recovered)


@dataclass
class _Point:
    row: dict
    v: float | None
    lo: float | None
    hi: float | None
    n: int | None
    k: float | None
    evaluable: bool


@dataclass
class _Verdict:
    breach: bool
    reference: float | None = None
    reference_n: int | None = None
    threshold: float | None = None
    p_value: float | None = None
    severity: str | None = None
    evidence: dict = field(default_factory=dict)


# -- reading ----------------------------------------------------------------------------------------------
def load_history(home, since: dt.datetime | None = None, metrics=None) -> list[dict]:
    """Every latest metric row (view `metrics`) as dicts, series after series, of the metrics `metrics` keeps.

    `metrics` is None (all), a list of names, or a predicate on a name: rows of metrics no rule watches are
    then never read (most of the history is per-dimension value means no default rule looks at).
    """
    from monitor.db import connect

    sql = load_sql("alerts/metric_history.sql").sql
    con = connect(home)
    try:
        if metrics is None or callable(metrics):
            names = [r[0] for r in con.execute(load_sql("alerts/metric_names.sql").sql).fetchall()]
            metrics = [m for m in names if metrics is None or metrics(m)]
        if not metrics:
            return []
        cur = con.execute(sql, {"since": since or dt.datetime(1970, 1, 1), "metrics": sorted(set(metrics))})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


# Segment text -> its canonical text, kept across runs: a long-running worker meets the same few thousand segment
# texts every run (parsing and dumping them was a tenth of an incremental alerts run at 140k turns).
_SEGMENT_TEXTS: dict[str, str] = {}


def _segment_memo() -> dict[str, str]:
    if len(_SEGMENT_TEXTS) > 200_000:  # a bound, not a cache policy: texts come from a finite set of segments
        _SEGMENT_TEXTS.clear()
    return _SEGMENT_TEXTS


def _canonical_segment(seg: Any, memo: dict[str, str] | None = None) -> str:
    """The segment as sorted-key JSON text, parsing each distinct text once when a memo is given."""
    if not isinstance(seg, str):
        return json.dumps(seg or {}, sort_keys=True)
    if memo is None:
        return json.dumps(json.loads(seg or "{}"), sort_keys=True)
    out = memo.get(seg)
    if out is None:
        # The jobs do not all write sorted keys (disparity pairs), so the text is normalised, not trusted.
        out = memo[seg] = json.dumps(json.loads(seg or "{}"), sort_keys=True)
    return out


class _IsoText(dict):
    """Window start -> its `iso` text, computed once per distinct start (a run meets thousands of rows, ~30 starts)."""

    def __missing__(self, ts):
        out = self[ts] = iso(ts)
        return out


def group_series(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    memo = _segment_memo()
    for r in rows:
        sid = (r["metric"], r["granularity"], r["model"], r["deployment"], _canonical_segment(r["segment"], memo))
        rs = out.get(sid)
        if rs is None:
            out[sid] = [r]
        else:
            rs.append(r)
    for rs in out.values():
        rs.sort(key=lambda r: r["window_start"])
    return out


# -- evaluation -------------------------------------------------------------------------------------------
def evaluate(home, now: dt.datetime, backfill: bool = False, rules: list[Rule] | None = None,
             rows: list[dict] | None = None) -> AlertList:
    """Run every effective rule over the metric history and return the alert rows (empty means all is well)."""
    return _evaluate_full(home, now, backfill, rules, rows)[0]


def watching_metrics(rules: list[Rule]) -> list[Rule]:
    """The rules evaluated over metric rows: all but the pipeline-health ones (monitor/alerts/pipeline.py)."""
    return [r for r in rules if r.kind not in PIPELINE_KINDS]


def _watcher(rules: list[Rule]):
    watched: dict[str, bool] = {}

    def is_watched(metric: str) -> bool:
        if metric not in watched:
            watched[metric] = any(rule.matches_metric(metric) for rule in rules)
        return watched[metric]

    return is_watched


def _since(cfg, now: dt.datetime) -> dt.datetime | None:
    # Only the last `alerts.history_days` of every series: a run then costs the same however long the history.
    return now - dt.timedelta(days=cfg.alerts.history_days) if cfg.alerts.history_days else None


def _rule_watches(rule: Rule, sid: tuple, segment: dict) -> bool:
    metric, gran, model = sid[0], sid[1], sid[2]
    return (rule.matches_metric(metric) and rule.matches_model(model) and rule.matches_segment(segment)
            and not (rule.granularity and rule.granularity != gran))


def _series_key(rule: Rule, sid: tuple) -> str:
    metric, gran, model, deployment, seg_json = sid
    return "|".join([rule.name, metric, gran, model or "*", deployment or "*", seg_json])


def _evaluate_full(home, now: dt.datetime, backfill: bool, rules: list[Rule] | None, rows: list[dict] | None,
                   tails: dict | None = None) -> tuple[AlertList, bool]:
    """Every rule over every series; fills `tails` (when given) and says whether rows of future windows exist."""
    cfg = home.config
    rules = watching_metrics(effective_rules(cfg) if rules is None else rules)
    is_watched = _watcher(rules)
    # Series of metrics no rule watches can raise nothing, so they are neither read nor grouped.
    since = _since(cfg, now)
    rows = load_history(home, since=since, metrics=is_watched) if rows is None else \
        [r for r in rows if is_watched(r["metric"]) and (since is None or r["window_start"] >= since)]
    future = any(r["window_start"] > now for r in rows)
    series = group_series([r for r in rows if r["window_start"] <= now])  # windows of the future are not in yet
    parsed = {sid[4]: json.loads(sid[4]) for sid in series}
    alerts, recovered = [], []
    texts = _IsoText()
    for rule in rules:
        for sid, srows in series.items():
            if not _rule_watches(rule, sid, parsed[sid[4]]):
                continue
            points = [_point(rule, r) for r in srows]
            found, codes, runs = _walk(rule, sid, points, 0, (), 0, now, backfill, cfg)
            alerts.extend(found)
            last = _last_evaluated(codes)
            if last is not None and codes[last] == OK:
                recovered.append((_series_key(rule, sid), points[last].row["window_start"]))
            if tails is not None:
                entries = _entries(rule, points, codes, runs, texts)
                tails[_tail_id(rule, sid)] = _new_tail(rule, entries, True, entries[0][0], None)
    return AlertList(alerts, recovered), future


# Verdict codes kept in a tail: not evaluated (too small, no reference, warm-up), evaluated fine, breached.
SKIP, OK, BREACH = 0, 1, 2


def _last_evaluated(codes: list[int]) -> int | None:
    for i in range(len(codes) - 1, -1, -1):
        if codes[i] != SKIP:
            return i
    return None


def _walk(rule: Rule, sid: tuple, points: list[_Point], start: int, prior, run: int, now: dt.datetime,
          backfill: bool, cfg) -> tuple[list[AlertRow], list[int], list[int]]:
    """The alerts of `points[start:]` of one series, with their verdict codes and consecutive-breach counts.

    `prior` holds the verdicts of `points[:start]` (from an earlier run) and `run` the breach count after them.
    """
    metric, gran, model, deployment, seg_json = sid
    series_key = _series_key(rule, sid)
    horizon = cfg.alerts.paging_horizon_windows
    verdicts = _run(rule, points, start, prior)
    alerts, codes, runs = [], [], []
    segment = None
    for i in range(start, len(points)):
        p, verdict = points[i], verdicts[i]
        if verdict is None:
            codes.append(SKIP)
            runs.append(run)
            continue
        run = run + 1 if verdict.breach else 0
        codes.append(BREACH if verdict.breach else OK)
        runs.append(run)
        if not verdict.breach or run < rule.consecutive:
            continue
        if segment is None:
            segment = json.loads(seg_json)  # each (rule, series) hands its alerts a dict of their own
        ws, we = p.row["window_start"], p.row["window_end"]
        old = backfill or we <= now - horizon * (we - ws)
        a = AlertRow(
            dedup_key=f"{series_key}|{iso(ws)}", series_key=series_key, rule=rule.name, metric=metric,
            model=model, deployment=deployment, segment=segment, granularity=gran, window_start=ws,
            window_end=we, value=p.v, ci_low=p.lo, ci_high=p.hi, n=p.n, reference=verdict.reference,
            reference_n=verdict.reference_n, threshold=verdict.threshold, p_value=verdict.p_value,
            severity=verdict.severity or rule.severity, message="",
            evidence={"kind": rule.kind, "consecutive": run, **verdict.evidence}, backfill=bool(old),
        )
        a.message = message(a, rule, cfg.metrics.confidence)
        a.incident_key = incident_key(rule.name, metric, gran, iso(ws), a.evidence)
        alerts.append(a)
    return alerts, codes, runs


# -- incremental evaluation -------------------------------------------------------------------------------
# What the last evaluation left behind, in `kv`: the manifest version of metrics_log it read, its `now` and
# `since`, a fingerprint of everything besides metric rows that decides an alert (rules, settings), and for every
# (rule, series) a *tail*: the verdict codes and consecutive-breach counts of its last windows, enough to evaluate a
# changed window without walking the series again (docs/alerts.md, "Incremental evaluation").
STATE_KEY = "alerts.evaluation"
STATE_VERSION = 3  # bump when the evaluation or the state's shape changes: the next run is then a full one
SEQUENTIAL = ("cusum", "page_hinkley")
_EPOCH = dt.datetime(1970, 1, 1)


def fingerprint(cfg, rules: list[Rule]) -> str:
    """A digest of everything besides metric rows that decides the alerts and their text."""
    blob = json.dumps({"version": STATE_VERSION, "rules": [r.to_dict() for r in rules],
                       "confidence": cfg.metrics.confidence, "history_days": cfg.alerts.history_days,
                       "horizon": cfg.alerts.paging_horizon_windows, "url": cfg.alerts.dashboard_url},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _lookback(rule: Rule) -> int:
    """How many earlier windows the verdict of a window depends on (with their verdicts)."""
    if rule.kind in ("relative", "test"):
        return 2 * rule.params["reference_windows"]  # see _reference: at most twice the reference back
    return 1  # threshold and flag: only the breach count of the window before


def _tail_id(rule: Rule, sid: tuple) -> str:
    # Unit separators, NUL for a missing model or deployment: cheaper than JSON for thousands of series a run.
    return "\x1f".join([rule.name, *("\x00" if x is None else x for x in sid)])


def _parse_tail_id(tid: str) -> tuple[str, tuple]:
    name, *sid = tid.split("\x1f", 5)
    return name, tuple(None if x == "\x00" else x for x in sid)


def _new_tail(rule: Rule, entries: list[list], start: bool, first: str, old_reset: str | None) -> dict:
    """The tail kept for one (rule, series) from its `entries` ([window start, code, run], oldest first).

    `start`: the entries begin with the series' first window; `first`: no window of the series starts before it;
    `r`: the latest window evaluated fine, where the consecutive-breach count restarted (None: never in reach).
    """
    reset = next((e[0] for e in reversed(entries) if e[1] == OK), None)
    if reset is None and not start and old_reset is not None and old_reset < entries[0][0]:
        reset = old_reset
    keep = _lookback(rule) + 1
    return {"e": entries[-keep:], "s": start and len(entries) <= keep, "f": first, "r": reset}


def _stub(code: int) -> _Verdict | None:
    return None if code == SKIP else _Verdict(code == BREACH)


def _entries(rule: Rule, points: list[_Point], codes: list[int], runs: list[int], texts: _IsoText) -> list[list]:
    """Tail entries of `points`: [window start, code, run], and for relative and test rules also [k, n, evaluable].

    What a later window pools from its reference windows is kept, so a change after them is evaluated without
    reading them again (see `_remembered`).
    """
    if rule.kind in ("relative", "test"):
        return [[texts[p.row["window_start"]], c, r, p.k, p.n, p.evaluable] for p, c, r in zip(points, codes, runs)]
    return [[texts[p.row["window_start"]], c, r] for p, c, r in zip(points, codes, runs)]


def _remembered(entry: list) -> _Point:
    """A reference window rebuilt from its tail entry: all `_reference`, `_pooled` and `_dispersion` read of it."""
    return _Point({"window_start": _parse_iso(entry[0])}, None, None, None, entry[4], entry[3], entry[5])


def _can_continue(saved, fp: str, manifest: dict, now: dt.datetime, since: str | None) -> bool:
    """Whether the saved state can be carried forward (else the run is a full evaluation)."""
    if not isinstance(saved, dict) or saved.get("fingerprint") != fp or saved.get("future"):
        return False
    v = saved.get("v")
    if not isinstance(v, int) or v > manifest["version"] or not isinstance(saved.get("tails"), dict):
        return False  # a lake older than the one evaluated (restored from a backup) is not a continuation
    try:
        if dt.datetime.fromisoformat(saved["now"]) > now:
            return False  # time went backwards (a replay): windows could leave the evaluated history at its end
    except (KeyError, TypeError, ValueError):
        return False
    return (since is None) == (saved.get("since") is None) and (since is None or since >= saved["since"])


def _plan(rule: Rule, tail: dict | None, changed: str | None, since: str | None):
    """Where to evaluate one (rule, series) from: None for its whole history, else (s, j) into its tail: load
    the windows from tail entry s on (or the changed one, if earlier), keep the verdicts of entries before j,
    evaluate from j on; "keep" when nothing changed."""
    if tail is None and changed is not None:
        # Every (rule, series) with a window in the history has a tail: this series' windows are all new.
        return (0, 0, changed)
    if tail is None or rule.kind in SEQUENTIAL:
        return None
    e = tail["e"]
    if since is not None:
        if e[0][0] < since:
            return None  # windows the tail relies on left the history
        if tail["f"] < since and (rule.kind in ("relative", "test") or tail["s"] or tail["r"] is None
                                  or tail["r"] < since):
            # Earlier windows left the history: references and breach counts of later windows may change.
            return None
    if changed is None:
        return "keep"
    j = next((i for i, x in enumerate(e) if x[0] >= changed), len(e))
    if j - _lookback(rule) < 0 and not tail["s"]:
        return None
    # A threshold or flag verdict needs no earlier window: only the breach count, kept in the tail.
    s = max(0, j - _lookback(rule)) if rule.kind in ("relative", "test") else j
    return (s, j, changed)


def _light_connection(home, manifest: dict):
    """A DuckDB connection with only the views `metrics_log` and `metrics` (no state tables copied in)."""
    from monitor.db import _table_select, memory_connection
    from monitor.schema import TABLES

    con = memory_connection()
    table = TABLES["metrics_log"]
    con.execute(f"CREATE VIEW metrics_log AS {_table_select(table, home.lake.files(table.name, manifest))}")
    con.execute(load_sql("views/010_metrics.sql").sql)
    return con


def _load_series(con, wanted: dict[tuple, dt.datetime]) -> dict[tuple, list[dict]]:
    """The rows of the (metric, granularity, model, deployment) groups in `wanted`, each from its window on."""
    import pyarrow as pa

    if not wanted:
        return {}
    keys = list(wanted)
    table = pa.table({"metric": [k[0] for k in keys], "granularity": [k[1] for k in keys],
                      "model": pa.array([k[2] for k in keys], pa.string()),
                      "deployment": pa.array([k[3] for k in keys], pa.string()),
                      "from_ws": pa.array([wanted[k] for k in keys], pa.timestamp("us"))})
    con.register("alert_series_wanted", table)
    try:
        params = {"since": min(wanted.values()), "metrics": sorted({k[0] for k in keys})}
        runs = [r[0] for r in con.execute(load_sql("alerts/series_runs.sql").sql, params).fetchall()]
        params.update(runs=[r for r in runs if r is not None], null_run=None in runs)
        cur = con.execute(load_sql("alerts/series_history.sql").sql, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.unregister("alert_series_wanted")
    return group_series(rows)


def _series_order(sid: tuple, rows: list[dict]) -> tuple:
    """Where the series comes in sql/alerts/metric_history.sql's order, so alerts are written in the same order."""
    metric, gran, model, deployment, _ = sid
    return (metric, gran, model is not None, model or "", deployment is not None, deployment or "",
            min(r["segment"] if isinstance(r["segment"], str) else "" for r in rows))


def evaluate_incremental(home, now: dt.datetime, backfill: bool = False) -> tuple[AlertList, dict]:
    """The alerts a full evaluation would add or change, and the state to keep for the next run.

    Only the series with metric rows committed since the last run are evaluated, each from its first changed
    window on; with no usable state (first run, rules or settings changed, time going backwards) this is `evaluate`.
    Apply the result with `apply(..., remember=state)` so alerts and state are written together.
    """
    from monitor.incremental import Delta

    cfg = home.config
    rules = watching_metrics(effective_rules(cfg))  # a pipeline rule changed does not make this a full evaluation
    fp = fingerprint(cfg, rules)
    manifest = home.lake.manifest()
    since = _since(cfg, now)
    # Windows start on whole seconds (iso text keeps no fraction), so `since` rounded up admits the same ones.
    since_s = iso(since + dt.timedelta(microseconds=(1_000_000 - since.microsecond) % 1_000_000)) if since else None
    saved = home.state.get(STATE_KEY)
    state = {"fingerprint": fp, "v": manifest["version"], "since": since_s, "now": now.isoformat()}
    if not _can_continue(saved, fp, manifest, now, since_s):
        tails: dict = {}
        alerts, future = _evaluate_full(home, now, backfill, rules, None, tails)
        return alerts, {**state, "future": future, "full": True, "evaluated": len(tails), "tails": tails}

    tails = saved["tails"]
    by_name = {r.name: (i, r) for i, r in enumerate(rules)}
    is_watched = _watcher(rules)
    delta = Delta(home, manifest, saved["v"])
    con = _light_connection(home, manifest)
    try:
        changed: dict[tuple, str] = {}  # series -> first window with a new row
        future = False
        if delta.entries("metrics_log"):
            delta.view(con, "metrics_log")
            memo = _segment_memo()
            texts = _IsoText()
            for metric, gran, model, dep, seg, first, last in con.execute(
                    load_sql("alerts/changed_series.sql").sql, {"since": since or _EPOCH}).fetchall():
                if not is_watched(metric):
                    continue
                future = future or last > now
                if first > now:
                    continue
                sid = (metric, gran, model, dep, _canonical_segment(seg, memo))
                f = texts[first]
                if sid not in changed or f < changed[sid]:
                    changed[sid] = f
        fresh = _new_series(con, since, {sid[0] for sid in changed}) if changed else None

        plans: dict[str, tuple] = {}  # tail id -> (rule index, rule, sid, plan)
        segments: dict[str, dict] = {}
        metric_rules: dict[str, list] = {}
        for sid, first in changed.items():
            segment = segments.get(sid[4])
            if segment is None:
                segment = segments[sid[4]] = json.loads(sid[4])
            candidates = metric_rules.get(sid[0])
            if candidates is None:
                candidates = metric_rules[sid[0]] = [(i, r) for i, r in enumerate(rules) if r.matches_metric(sid[0])]
            for i, rule in candidates:
                if _rule_watches(rule, sid, segment):
                    tid = _tail_id(rule, sid)
                    plans[tid] = (i, rule, sid, _plan(rule, tails.get(tid), first, since_s))
        if since is not None and since_s > saved["since"]:
            for tid, tail in tails.items():
                if tid in plans or tail["f"] >= since_s:
                    continue
                name, sid = _parse_tail_id(tid)
                i, rule = by_name[name]
                plan = _plan(rule, tail, None, since_s)
                if plan == "keep":
                    tail["f"] = since_s  # no window before `since` counts any more; which ones remain is unknown
                else:
                    plans[tid] = (i, rule, sid, plan)

        results: list[tuple] = []
        retry = _evaluate_plans(con, plans, tails, since, since_s, now, backfill, cfg, results, fresh)
        if retry:
            _evaluate_plans(con, {tid: (*plans[tid][:3], None) for tid in retry}, tails, since, since_s, now,
                            backfill, cfg, results, None)
    finally:
        con.close()
    results.sort(key=lambda x: x[0])
    alerts = [a for _, found, _ in results for a in found]
    recovered = [rec for _, _, rec in results if rec is not None]
    if since is not None:  # series that left the history entirely: a new row starts them from scratch
        tails = {tid: t for tid, t in tails.items() if t["e"][-1][0] >= since_s}
    return AlertList(alerts, recovered), {**state, "future": future, "full": False, "evaluated": len(plans),
                                          "tails": tails}


def _new_series(con, since: dt.datetime | None, metrics: set[str]) -> dict[tuple, list[dict]] | None:
    """The latest new rows of `metrics` by series when they are the latest of the whole log (None when not sure).

    Series whose segment is spelt more than one way since `since` are left out: an older spelling's row of the same
    window may still be a latest row, in a file the new rows do not cover.
    """
    [(newest,)] = con.execute(load_sql("alerts/new_rows_newest.sql").sql).fetchall()  # fetched to the end
    if not newest:
        return None
    params = {"since": since or _EPOCH, "metrics": sorted(metrics)}
    memo = _segment_memo()
    spelling: dict[tuple, Any] = {}
    ambiguous = set()
    for metric, seg in con.execute(load_sql("alerts/segment_spellings.sql").sql, params).fetchall():
        key = (metric, _canonical_segment(seg, memo))
        if spelling.setdefault(key, seg) != seg:
            ambiguous.add(key)
    cur = con.execute(load_sql("alerts/new_series_history.sql").sql, params)
    names = [d[0] for d in cur.description]
    series = group_series([dict(zip(names, r)) for r in cur.fetchall()])
    return {sid: rows for sid, rows in series.items() if (sid[0], sid[4]) not in ambiguous}


def _from_new_rows(tail: dict | None, plan, rows: list[dict] | None, texts: "_IsoText") -> bool:
    """Whether a planned (rule, series) can be evaluated from its new rows and its tail alone.

    Every window from the first changed one on must have a new row (the tail lists the windows there were), and
    the windows before it that the plan re-reads must be remembered with what a reference pools. A series without
    a tail had no window in the evaluated history (its tail would have been kept): all its windows are new.
    """
    if rows is None or not isinstance(plan, tuple):
        return False
    s, j, changed = plan
    have = {texts[r["window_start"]] for r in rows}
    if changed not in have:
        return False
    if tail is None:
        return s == j == 0
    e = tail["e"]
    return all(len(x) == 6 for x in e[s:j]) and all(x[0] in have for x in e[j:])


def _evaluate_plans(con, plans: dict, tails: dict, since, since_s, now, backfill, cfg, results: list,
                    fresh: dict | None) -> list[str]:
    """Evaluate the planned (rule, series); returns the tail ids whose tail did not fit (to do in full).

    `fresh` (from `_new_series`) gives the new rows of series that need no older file: a series is read from the
    log only when its plan or tail does not allow that.
    """
    wanted: dict[tuple, dt.datetime] = {}
    froms: dict[str, dt.datetime] = {}
    texts = _IsoText()
    by_new: set[str] = set()
    for tid, (_, rule, sid, plan) in plans.items():
        if plan == "keep":
            continue
        if fresh is not None and _from_new_rows(tails.get(tid), plan, fresh.get(sid), texts):
            by_new.add(tid)
            continue
        if plan is None:
            frm = since_s
        else:
            s, j, changed = plan
            frm = tails[tid]["e"][s][0] if s < j else changed  # an earlier window, or the first changed one
        at = froms[tid] = _parse_iso(frm) if frm is not None else _EPOCH
        g = sid[:4]
        if g not in wanted or at < wanted[g]:
            wanted[g] = at
    series = _load_series(con, wanted)
    starts: dict[tuple, list[dt.datetime]] = {}  # series -> its window starts, sorted as its rows are
    new_starts: dict[tuple, list[dt.datetime]] = {}
    retry = []
    for tid, (ri, rule, sid, plan) in plans.items():
        if plan == "keep":
            continue
        if tid in by_new:
            # The windows before the change come back from the tail, the changed ones from the new rows.
            s, j, changed = plan
            rows = fresh[sid]
            ws = new_starts.get(sid)
            if ws is None:
                ws = new_starts[sid] = [r["window_start"] for r in rows]
            srows = rows[bisect.bisect_left(ws, _parse_iso(changed)):bisect.bisect_right(ws, now)]
            points = [_remembered(x) for x in tails[tid]["e"][s:j]] if s < j else []
            points += [_point(rule, r) for r in srows]
        else:
            frm = froms[tid]
            if since is not None and frm < since:
                frm = since
            rows = series.get(sid, ())
            ws = starts.get(sid)
            if ws is None:
                ws = starts[sid] = [r["window_start"] for r in rows]
            srows = rows[bisect.bisect_left(ws, frm):bisect.bisect_right(ws, now)]  # the windows from `frm` to `now`
            if not srows:
                if plan is not None and tid in tails:
                    retry.append(tid)  # the remembered windows are gone
                else:
                    tails.pop(tid, None)  # no window of the series is in the history now
                continue
            points = [_point(rule, r) for r in srows]
        series_key = _series_key(rule, sid)
        if plan is None or tid not in tails:
            found, codes, runs = _walk(rule, sid, points, 0, (), 0, now, backfill, cfg)
            entries = _entries(rule, points, codes, runs, texts)
            tails[tid] = _new_tail(rule, entries, True, entries[0][0], None)
            last = _last_evaluated(codes)
            rec = (series_key, points[last].row["window_start"]) if last is not None and codes[last] == OK else None
        else:
            tail = tails[tid]
            s, j, _ = plan
            e = tail["e"]
            if [texts[p.row["window_start"]] for p in points[:j - s]] != [x[0] for x in e[s:j]]:
                retry.append(tid)  # the windows before the change are not the ones remembered
                continue
            found, codes, runs = _walk(rule, sid, points, j - s, [_stub(x[1]) for x in e[s:j]],
                                       e[j - 1][2] if j > 0 else 0, now, backfill, cfg)
            new = _entries(rule, points[j - s:], codes, runs, texts)
            entries = e[:j] + new
            last = _last_evaluated([x[1] for x in entries])
            if last is None:
                if any(x[1] != SKIP for x in e[j:]):
                    retry.append(tid)  # the latest evaluated window moved back out of the tail
                    continue
                rec = None  # the same latest evaluated window as last time: its recovery is already applied
            elif entries[last][1] == OK:
                rec = (series_key, _parse_iso(entries[last][0]))
            else:
                rec = None
            first = tail["f"] if since_s is None else max(tail["f"], since_s)
            tails[tid] = _new_tail(rule, entries, tail["s"], min(first, entries[0][0]), tail["r"])
        results.append(((ri, _series_order(sid, srows)), found, rec))
    return retry


@functools.lru_cache(maxsize=4096)  # the same few window starts come back for thousands of series
def _parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text[:-1] if text.endswith("Z") else text)


def _point(rule: Rule, row: dict) -> _Point:
    use = rule.use or ("corrected" if row.get("corrected") is not None else "value")
    if use == "corrected":
        v, lo, hi = row.get("corrected"), row.get("corrected_ci_low"), row.get("corrected_ci_high")
    else:
        v, lo, hi = row.get("value"), row.get("ci_low"), row.get("ci_high")
    n = row.get("n")
    n = int(n) if n is not None else None
    k = None
    if v is not None and n is not None:
        num = row.get("numerator")
        k = float(num) if use == "value" and num is not None else v * n
    ok = v is not None and not (isinstance(v, float) and math.isnan(v))
    ok = ok and (n is None or n >= rule.min_n) and not row.get("small_sample")
    return _Point(row, v, lo, hi, n, k, ok)


def _run(rule: Rule, points: list[_Point], start: int = 0, prior=()) -> list[_Verdict | None]:
    """The verdict of every point from `start` on; `prior` gives those before it (a sequential rule starts at 0)."""
    if rule.kind in ("cusum", "page_hinkley"):
        assert start == 0, "a sequential rule is always run over its whole series"
        return _sequential(rule, points)
    out: list[_Verdict | None] = list(prior)
    for i in range(start, len(points)):
        p = points[i]
        if not p.evaluable:
            out.append(None)
        elif rule.kind == "threshold":
            out.append(_threshold(rule, p))
        elif rule.kind == "flag":
            out.append(_flag(rule, p))
        else:
            out.append(_compare(rule, p, _reference(rule, points, out, i)))
    return out


def _reference(rule: Rule, points: list[_Point], verdicts: list, i: int) -> list[_Point]:
    """The previous `reference_windows` windows that did not breach, looking back at most twice as far.

    Leaving breaching windows out keeps an ongoing incident from becoming its own baseline (otherwise the day
    after a doubling looks normal and the alert would resolve itself). When a shift has lasted so long that too
    few normal windows remain in reach, the plain previous windows are used: the new level has become normal.
    """
    w = rule.params["reference_windows"]
    # Windows too small to evaluate (below min_n) are left out too: they were never checked, so an incident-level
    # quiet day must not slip into the baseline as "clean".
    clean = [points[j] for j in range(max(0, i - 2 * w), i)
             if points[j].evaluable and not (verdicts[j] is not None and verdicts[j].breach)][-w:]
    if len(clean) >= rule.params["min_reference_windows"]:
        return clean
    return [q for q in points[max(0, i - w):i] if q.evaluable]


def _cmp(op: str, a: float, b: float) -> bool:
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


def _threshold(rule: Rule, p: _Point) -> _Verdict:
    op, thr = rule.params["op"], rule.params["value"]
    breach = _cmp(op, p.v, thr)
    if breach and rule.params["require_ci"]:
        bound = p.lo if op in (">", ">=") else p.hi
        breach = bound is not None and _cmp(op, bound, thr)
    crit = rule.params.get("critical_value")
    sev = "critical" if breach and crit is not None and _cmp(op, p.v, crit) else None
    return _Verdict(breach, threshold=thr, severity=sev, evidence={"op": op})


def _pooled(previous: list[_Point]) -> tuple[float, float]:
    k = sum(q.k for q in previous if q.k is not None and q.n)
    n = sum(q.n for q in previous if q.k is not None and q.n)
    return k, n


def _compare(rule: Rule, p: _Point, previous: list[_Point]) -> _Verdict | None:
    """Relative change or statistical test of one window against the pooled previous windows of its series."""
    prm = rule.params
    K, N = _pooled(previous)
    used = [q for q in previous if q.k is not None and q.n]
    if N < prm["min_reference_n"] or len(used) < prm["min_reference_windows"] or p.n is None or p.k is None \
            or N <= 0:
        return None
    ref = K / N
    direction = prm["direction"]
    if direction == "both":
        direction = "up" if p.v >= ref else "down"
    hi_, lo_ = (p.v, ref) if direction == "up" else (ref, p.v)
    ratio = hi_ / lo_ if lo_ > 0 else math.inf
    delta = hi_ - lo_
    max_ratio = prm.get("max_ratio") if rule.kind == "relative" else prm.get("min_ratio")
    breach = (max_ratio is None or ratio >= max_ratio) and (prm["min_delta"] is None or delta >= prm["min_delta"])
    if prm["require_ci"]:
        breach = breach and (p.lo is not None and p.lo > ref if direction == "up" else
                             p.hi is not None and p.hi < ref)
    pval = None
    if rule.kind == "test":
        phi = _dispersion(used, ref) if prm["overdispersion"] and prm["test"] != "fisher" else 1.0
        pval = _p_value(prm["test"], p.k, p.n, K, N, prm["direction"] if prm["direction"] == "both" else direction,
                        phi, N / len(used))
        breach = breach and pval < prm["alpha"]
    if direction == "up":
        thr = max(ref * (max_ratio or 1.0), ref + (prm["min_delta"] or 0.0))
    else:
        thr = min(ref / (max_ratio or 1.0), ref - (prm["min_delta"] or 0.0))
    crit = prm.get("critical_ratio")
    sev = "critical" if breach and crit is not None and ratio >= crit else None
    ev = {"ratio": None if math.isinf(ratio) else round(ratio, 4), "delta": round(delta, 6), "direction": direction,
          "reference_windows": len(previous),
          "reference_from": iso(previous[0].row["window_start"]) if previous else None}
    if pval is not None:
        ev["test"] = prm["test"]
        ev["dispersion"] = round(phi, 3)
    return _Verdict(breach, reference=ref, reference_n=int(N), threshold=thr, p_value=pval, severity=sev,
                    evidence=ev)


def _beta_binomial_p(k: float, n: int, K: float, N: float, direction: str, phi: float, m: float) -> float:
    """Exact tail of the window's count under the beta-binomial predictive built from the reference windows.

    The reference rate is uncertain (Beta(K + 1/2, N - K + 1/2) after N reference turns) and may vary from window
    to window beyond binomial noise (dispersion `phi` at the reference's typical window size); both widen the
    predictive distribution of today's count. Exact tails, unlike the z-test, stay honest at small counts
    (8 compliances out of 270 harmful prompts).
    """
    ref = K / N
    conc = N
    if phi > 1:
        rho = (phi - 1) / max(m - 1, 1)  # phi = 1 + (m - 1) * rho at the typical reference window size m
        conc = min(N, max((1 - rho) / rho, 1.0))
    a, b = ref * conc + 0.5, (1 - ref) * conc + 0.5
    kk, nn = int(round(k)), int(n)
    up = _betabinom_sf(kk - 1, nn, a, b) if direction != "down" else None
    down = _betabinom_cdf(kk, nn, a, b) if direction != "up" else None
    if direction == "up":
        return up
    if direction == "down":
        return down
    return min(1.0, 2 * min(up, down))


def _betabinom_pmf(upto: int, n: int, a: float, b: float):
    """`scipy.stats.betabinom.pmf` of 0..upto, computed the way scipy computes it (same operations, same bits)."""
    from scipy.special import betaln

    m = np.arange(0, upto + 1)
    nn, aa, bb = np.asarray([n]), np.asarray([a]), np.asarray([b])  # scipy reduces its arguments to 1-d arrays
    k = np.floor(m)
    combiln = -np.log(nn + 1) - betaln(nn - k + 1, k + 1)
    return np.exp(combiln + betaln(k + aa, nn - k + bb) - betaln(aa, bb))


def _betabinom_cdf(k: int, n: int, a: float, b: float) -> float:
    """`float(scipy.stats.betabinom.cdf(k, n, a, b))` without scipy's per-call argument machinery (the hot path)."""
    if n < 0 or not (a > 0 and b > 0):
        return math.nan
    if k >= n:
        return 1.0
    if k < 0:
        return 0.0
    return float(np.clip(np.sum(_betabinom_pmf(k, n, a, b), axis=0), 0, 1))


def _betabinom_sf(k: int, n: int, a: float, b: float) -> float:
    """`float(scipy.stats.betabinom.sf(k, n, a, b))`: one minus the summed pmf, as scipy does it."""
    if n < 0 or not (a > 0 and b > 0):
        return math.nan
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    return float(np.clip(1.0 - np.sum(_betabinom_pmf(k, n, a, b), axis=0), 0, 1))


def _dispersion(windows: list[_Point], ref: float) -> float:
    """Pearson estimate of extra-binomial variation across the reference windows (>= 1; 1 = plain binomial).

    Real traffic varies from day to day more than coin flips do (the topic mix changes), so a plain binomial
    test against a big pooled reference fires on ordinary days; scaling its variance by this factor
    (quasi-binomial) keeps the false-alarm rate near alpha.
    """
    if len(windows) < 3 or not 0 < ref < 1:
        return 1.0
    chi2 = sum((q.k - q.n * ref) ** 2 / (q.n * ref * (1 - ref)) for q in windows)
    return max(1.0, chi2 / (len(windows) - 1))


def _p_value(test: str, k: float, n: int, K: float, N: float, direction: str, phi: float = 1.0,
             m: float | None = None) -> float:
    """One-sided (up/down) or two-sided p-value of the window's rate against the reference rate."""
    if test == "beta_binomial":
        return _beta_binomial_p(k, n, K, N, direction, phi, m or N)
    if test == "fisher":
        from scipy.stats import fisher_exact

        ki, Ki, ni, Ni = round(k), round(K), int(n), int(round(N))
        alt = {"up": "greater", "down": "less", "both": "two-sided"}[direction]
        return float(fisher_exact([[ki, ni - ki], [Ki, Ni - Ki]], alternative=alt)[1])
    from scipy.stats import norm

    pooled = (k + K) / (n + N)
    se = math.sqrt(phi * max(pooled * (1 - pooled), 1e-12) * (1 / n + 1 / N))
    z = (k / n - K / N) / se
    if direction == "up":
        return float(norm.sf(z))
    if direction == "down":
        return float(norm.cdf(z))
    return float(2 * norm.sf(abs(z)))


def _details(p: _Point) -> dict:
    d = p.row.get("details")
    if isinstance(d, str) and d:
        if _TWENTY_DIGITS not in d.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ZERO):
            try:
                return orjson.loads(d)  # the hot path: one parse per evaluated flag window, ~2x faster than json
            except orjson.JSONDecodeError:
                pass  # NaN and Infinity are JSON to Python's parser only: let it decide
        try:
            return json.loads(d)
        except json.JSONDecodeError:
            return {}
    return d if isinstance(d, dict) else {}


def _flag(rule: Rule, p: _Point) -> _Verdict | None:
    d = _details(p)
    if d.get("min_n_ok") is False:
        return None
    key = rule.params["flag"] or ("significant" if "significant" in d else "drift_detected")
    breach = bool(d.get(key))
    ev: dict[str, Any] = {"flag": key}
    for name in ("dimension", "statistic", "method", "threshold", "attribute", "group", "gap", "ratio",
                 "q_value", "four_fifths_flag"):
        if name in d:
            ev[name] = d[name]
    pval = d.get("p_value")
    method = str(d.get("method") or "").lower()
    stat = d.get("statistic")
    if pval is None and method in P_VALUE_METHODS and isinstance(stat, (int, float)):
        pval = float(stat)
    prm = rule.params
    if prm["p_max"] is not None and pval is not None:
        breach = breach and pval <= prm["p_max"]
    if prm["min_statistic"] is not None and method and method not in P_VALUE_METHODS \
            and isinstance(stat, (int, float)):
        breach = breach and stat >= prm["min_statistic"]
    if prm["q_max"] is not None:
        q = d.get("q_value", pval)
        breach = breach and q is not None and q <= prm["q_max"]
    if prm["min_abs_gap"] is not None:
        gap = d.get("gap")
        breach = breach and gap is not None and abs(gap) >= prm["min_abs_gap"]
    ref = d.get("reference") if isinstance(d.get("reference"), (int, float)) else None
    thr = d.get("threshold") if isinstance(d.get("threshold"), (int, float)) else None
    return _Verdict(breach, reference=ref, threshold=thr, p_value=pval, evidence=ev)


def _sequential(rule: Rule, points: list[_Point]) -> list[_Verdict | None]:
    """CUSUM on standardised values, or Page-Hinkley on raw values, after a warm-up that sets the baseline."""
    prm = rule.params
    out: list[_Verdict | None] = []
    warm: list[_Point] = []
    s_up = s_dn = 0.0
    mean, count, m_up, m_dn, min_up, min_dn = 0.0, 0, 0.0, 0.0, 0.0, 0.0
    mu0 = sigma = None
    for p in points:
        if not p.evaluable:
            out.append(None)
            continue
        if rule.kind == "page_hinkley":
            count += 1
            mean += (p.v - mean) / count
        if len(warm) < prm["warmup"]:
            warm.append(p)
            out.append(None)
            if rule.kind == "page_hinkley":
                m_up += p.v - mean - prm["delta"]
                m_dn += mean - p.v - prm["delta"]
                min_up, min_dn = min(min_up, m_up), min(min_dn, m_dn)
            continue
        if mu0 is None:
            vals = [q.v for q in warm]
            mu0 = statistics.fmean(vals)
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            ns = [q.n for q in warm if q.n]
            if ns and 0 <= mu0 <= 1:  # a rate: never trust a spread below binomial noise at the typical n
                sd = max(sd, math.sqrt(max(mu0 * (1 - mu0), 1e-9) / statistics.median(ns)))
            sigma = max(sd, 1e-9)
        if rule.kind == "cusum":
            z = (p.v - mu0) / sigma
            s_up = max(0.0, s_up + z - prm["k"])
            s_dn = max(0.0, s_dn - z - prm["k"])
            stat = {"up": s_up, "down": s_dn, "both": max(s_up, s_dn)}[prm["direction"]]
            breach = stat > prm["h"]
            ev = {"cusum": round(stat, 3), "k": prm["k"], "h": prm["h"], "baseline_sd": sigma,
                  "direction": prm["direction"]}
            out.append(_Verdict(breach, reference=mu0, threshold=prm["h"], evidence=ev))
        else:
            m_up += p.v - mean - prm["delta"]
            m_dn += mean - p.v - prm["delta"]
            min_up, min_dn = min(min_up, m_up), min(min_dn, m_dn)
            ph_up, ph_dn = m_up - min_up, m_dn - min_dn
            stat = {"up": ph_up, "down": ph_dn, "both": max(ph_up, ph_dn)}[prm["direction"]]
            breach = stat > prm["lambda"]
            ev = {"page_hinkley": round(stat, 6), "delta": prm["delta"], "lambda": prm["lambda"],
                  "direction": prm["direction"]}
            out.append(_Verdict(breach, reference=mu0, threshold=prm["lambda"], evidence=ev))
    return out


# -- wording ----------------------------------------------------------------------------------------------
def fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v == 0 or abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}" if abs(v) < 0.001 else f"{v:.3f}"


def p_text(p: float) -> str:
    return "p<1e-12" if p < 1e-12 else f"p={p:.2g}"


def window_label(ws: dt.datetime, granularity: str) -> str:
    """A window start as text: the day, the hour, or (a pipeline-health alert's start) the minute."""
    if granularity == "day":
        return ws.strftime("%Y-%m-%d")
    return ws.strftime("%Y-%m-%d %H:00Z") if granularity == "hour" else ws.strftime("%Y-%m-%d %H:%MZ")


def message(a: AlertRow, rule: Rule, confidence: float = 0.95) -> str:
    """The one-paragraph evidence a person paged at night can act on (the dashboard link is added on insert)."""
    where = [a.metric, f"model {a.model}" if a.model else "all models"]
    if a.deployment:
        where.append(f"deployment {a.deployment}")
    where.append(segment_label(a.segment))
    head = ", ".join(where) + f", {window_label(a.window_start, a.granularity)}: "
    ev = a.evidence
    if rule.kind == "flag":
        bits = []
        if "dimension" in ev:
            bits.append(f"dimension {ev['dimension']}")
        if "attribute" in ev:
            bits.append(f"{ev['attribute']}={ev.get('group')}")
        if "gap" in ev:
            bits.append(f"gap {fmt(ev['gap'])}")
        if "statistic" in ev:
            bits.append(f"statistic {fmt(ev['statistic'])} ({ev.get('method', '?')}, threshold "
                        f"{fmt(ev.get('threshold'))})")
        if a.value is not None:
            bits.append(f"value {fmt(a.value)}" + (f" (n={a.n:,})" if a.n is not None else ""))
        if a.p_value is not None:
            bits.append(p_text(a.p_value))
        if "q_value" in ev:
            bits.append(f"q={ev['q_value']:.2g}")
        body = ("; ".join(bits) or "flagged") + f"; {ev.get('flag', 'flag')}"
    else:
        ci = f"{confidence * 100:g}% CI {fmt(a.ci_low)}-{fmt(a.ci_high)}, " if a.ci_low is not None else ""
        body = f"{fmt(a.value)} ({ci}n={a.n:,})" if a.n is not None else fmt(a.value)
        if rule.kind in ("relative", "test"):
            body += f" vs reference {fmt(a.reference)} (n={a.reference_n:,})"
            if a.p_value is not None:
                body += f", {p_text(a.p_value)}"
        elif rule.kind == "threshold":
            body += f" {ev.get('op')} {fmt(a.threshold)}"
        else:
            stat = ev.get("cusum", ev.get("page_hinkley"))
            body += f" vs baseline {fmt(a.reference)}; {rule.kind} {fmt(stat)} > {fmt(a.threshold)}"
    tail = f"; rule {a.rule} ({a.severity})"
    if a.backfill:
        tail += "; backfill"
    return head + body + tail


# -- writing ----------------------------------------------------------------------------------------------
@dataclass
class ApplyResult:
    new: int = 0
    updated: int = 0
    escalated: int = 0
    resolved: int = 0
    unsilenced: int = 0
    notifications: int = 0
    ids: list[int] = field(default_factory=list)


def alert_link(dashboard_url: str, alert_id: int) -> str:
    return f"{dashboard_url.rstrip('/')}/alerts?alert_id={alert_id}"


def apply(home, alerts: list[AlertRow], now: dt.datetime, actor: str = "worker",
          remember: dict | None = None, pipeline: bool = False) -> ApplyResult:
    """Upsert alerts by dedup key, auto-resolve recovered series, end expired silences, audit and enqueue.

    `remember` is the state of `evaluate_incremental`, saved in the same transaction; without it the saved state
    is dropped (the alerts no longer follow from it), so the next incremental run evaluates everything. Alerts of
    the pipeline-health rules (`pipeline=True`, monitor/alerts/pipeline.py) leave that state alone: no metric rule
    raises or resolves them.
    Notifications are decided per alert, then queued per incident (`monitor.notify.outbox.enqueue_incidents`):
    the scopes of one regression become one message.
    """
    from monitor.notify.outbox import enqueue_incidents, load_channels

    channels = load_channels(home)
    pages: list[tuple[dict, str]] = []  # (alert row as paged, kind), queued per incident before the commit
    res = ApplyResult()
    now_s = iso(now)
    url = home.config.alerts.dashboard_url
    recovered_at: dict[str, dt.datetime] = {}
    for series_key, ws in getattr(alerts, "recovered", []):
        recovered_at[series_key] = max(ws, recovered_at.get(series_key, ws))
    with home.state.tx() as con:
        for a in alerts:
            cur = con.execute("SELECT * FROM alerts WHERE dedup_key=?", (a.dedup_key,)).fetchone()
            if cur is None:
                _insert(home, con, a, now_s, url, pages, res, actor)
            else:
                _update(home, con, dict(cur), a, now_s, url, pages, res, actor, recovered_at.get(a.series_key))
        # Thousands of series recover every run, almost none with an open alert: ask only about those that have one
        # (resolving below only closes alerts, so no other series gains one meanwhile).
        open_series = {r[0] for r in con.execute(
            f"SELECT DISTINCT series_key FROM alerts WHERE status IN ({','.join('?' * len(OPEN))})", OPEN)}
        for series_key, ws in getattr(alerts, "recovered", []):
            if series_key not in open_series:
                continue
            # `<=`: the latest window itself may be the alert's, recomputed with more data (a partial day that
            # breached on its first 100 turns and is fine on the full day), and must not stay firing on stale values.
            for r in con.execute(
                f"SELECT id, status FROM alerts WHERE series_key=? AND window_start<=? AND status IN "
                f"({','.join('?' * len(OPEN))})", (series_key, iso(ws), *OPEN)).fetchall():
                con.execute("UPDATE alerts SET status='resolved', resolved_at=?, resolved_by=?, updated_at=? "
                            "WHERE id=?", (now_s, actor, now_s, r["id"]))
                home.state.audit(con, actor, "alert.resolve", f"alert:{r['id']}",
                                 {"auto": True, "from": r["status"], "recovered_window": iso(ws)})
                res.resolved += 1
        ended: set[str] = set()
        for r in con.execute("SELECT id, series_key FROM alerts WHERE status='silenced' AND silenced_until<=?",
                             (now_s,)).fetchall():
            con.execute("UPDATE alerts SET status='firing', updated_at=? WHERE id=?", (now_s, r["id"]))
            home.state.audit(con, actor, "alert.unsilence", f"alert:{r['id']}", {"reason": "silence expired"})
            res.unsilenced += 1
            ended.add(r["series_key"])
        for series_key in sorted(ended):
            _page_after_silence(con, series_key, pages)
        res.notifications += enqueue_incidents(home, con, channels, pages, now_s)
        if remember is not None:
            home.state.put(STATE_KEY, remember, con=con)
        elif not pipeline:
            con.execute("DELETE FROM kv WHERE key=?", (STATE_KEY,))
    return res


def _page_after_silence(con, series_key: str, pages: list) -> None:
    """A silence ended on a series that has not recovered: page its latest window once, as it fires again."""
    row = con.execute(f"SELECT * FROM alerts WHERE series_key=? AND status IN ({','.join('?' * len(OPEN))}) "
                      "ORDER BY window_start DESC LIMIT 1", (series_key, *OPEN)).fetchone()
    if row is None or row["status"] != "firing" or row["backfill"]:
        return  # someone acknowledged a later window meanwhile, or the incident was only ever backfill
    pages.append((dict(row), "unsilenced"))
    con.execute("UPDATE alerts SET notified_severity=? WHERE id=?", (row["severity"], row["id"]))


_COLUMNS = ("dedup_key", "series_key", "rule", "metric", "model", "deployment", "segment", "granularity",
            "window_start", "window_end", "value", "ci_low", "ci_high", "n", "reference", "reference_n",
            "threshold", "p_value", "severity", "message", "evidence", "backfill", "incident_key")


def _values(a: AlertRow) -> dict:
    d = asdict(a)
    d["segment"] = json.dumps(a.segment, sort_keys=True)
    d["evidence"] = json.dumps(a.evidence, default=str, sort_keys=True)
    d["window_start"], d["window_end"] = iso(a.window_start), iso(a.window_end)
    d["backfill"] = int(a.backfill)
    return {k: d[k] for k in _COLUMNS}


def _insert(home, con, a: AlertRow, now_s: str, url: str, pages: list, res: ApplyResult, actor: str) -> None:
    prev = con.execute(
        f"SELECT * FROM alerts WHERE series_key=? AND window_start<? AND status IN ({','.join('?' * len(OPEN))}) "
        "ORDER BY window_start DESC LIMIT 1", (a.series_key, iso(a.window_start), *OPEN)).fetchone()
    vals = _values(a)
    status, carry = "firing", {}
    if prev is not None and prev["status"] in ("acknowledged", "silenced"):
        # The incident continues: whoever acknowledged or silenced it has already seen it.
        status = prev["status"]
        carry = {k: prev[k] for k in ("acknowledged_by", "ack_note", "silenced_until", "assigned_to")}
    joined = None
    if status == "firing" and not a.backfill:
        # A scope joining an incident whose every open alert is silenced is silenced with them: whoever silenced
        # the incident does not want its next scope paged either. (An acknowledged incident still gets an update.)
        others = con.execute(f"SELECT status, silenced_until FROM alerts WHERE incident_key=? AND status IN "
                             f"({','.join('?' * len(OPEN))})", (a.incident_key, *OPEN)).fetchall()
        if others and all(o["status"] == "silenced" for o in others):
            status, joined = "silenced", a.incident_key
            carry = {"silenced_until": max(o["silenced_until"] for o in others)}
    cols = list(vals) + ["status", "created_at", "updated_at"] + list(carry)
    params = list(vals.values()) + [status, now_s, now_s] + list(carry.values())
    aid = con.execute(f"INSERT INTO alerts ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                      params).lastrowid
    msg = f"{a.message}; {alert_link(url, aid)}"
    con.execute("UPDATE alerts SET message=? WHERE id=?", (msg, aid))
    home.state.audit(con, actor, "alert.fire", f"alert:{aid}",
                     {"rule": a.rule, "severity": a.severity, "backfill": a.backfill, "status": status,
                      "continues": prev["id"] if prev is not None else None,
                      **({"joins_silenced_incident": joined} if joined else {})})
    res.new += 1
    res.ids.append(aid)
    already = prev["notified_severity"] if prev is not None else None
    if already is not None:  # the incident's paged severity travels with it from window to window
        con.execute("UPDATE alerts SET notified_severity=? WHERE id=?", (already, aid))
    if a.backfill or status == "silenced":
        return
    if already is not None and SEVERITY_RANK[a.severity] <= SEVERITY_RANK[already]:
        return  # an ongoing incident pages once; only a rise in severity pages again
    row = dict(con.execute("SELECT * FROM alerts WHERE id=?", (aid,)).fetchone())
    pages.append((row, "escalation" if already is not None else "alert"))
    con.execute("UPDATE alerts SET notified_severity=? WHERE id=?", (a.severity, aid))


def _resolved_by_own_window(con, alert: dict) -> bool:
    """Whether the alert was last resolved automatically by its own window evaluating fine (not a later one's)."""
    row = con.execute("SELECT details FROM audit_log WHERE target=? AND action='alert.resolve' ORDER BY id DESC "
                      "LIMIT 1", (f"alert:{alert['id']}",)).fetchone()
    details = json.loads(row["details"]) if row is not None else {}
    return bool(details.get("auto")) and details.get("recovered_window") == alert["window_start"]


def _update(home, con, cur: dict, a: AlertRow, now_s: str, url: str, pages: list, res: ApplyResult,
            actor: str, recovered_at: dt.datetime | None = None) -> None:
    vals = _values(a)
    text = a.message
    if a.backfill and not cur["backfill"] and text.endswith("; backfill"):
        text = text[: -len("; backfill")]  # it was live when first seen; time passing does not make it backfill
    vals["message"] = f"{text}; {alert_link(url, cur['id'])}"
    # Backfill is decided when the alert is first seen: a live alert re-evaluated days later stays live.
    vals["backfill"] = cur["backfill"]
    # The evidence and incident key follow the values: an alert stored before incidents existed gets its key here
    # without counting as a change.
    changed = {k: v for k, v in vals.items() if cur.get(k) != v and k not in ("evidence", "incident_key")}
    if cur.get("incident_key") != vals["incident_key"]:
        con.execute("UPDATE alerts SET incident_key=? WHERE id=?", (vals["incident_key"], cur["id"]))
    if not changed:
        return
    # Its window, recomputed, breaches again after it resolved itself on an earlier recomputation (a partial day
    # going over, under, over the line), and no later window has recovered: the incident is open again. It was
    # paged already, so it pages again only on escalation (below).
    if cur["status"] == "resolved" and (recovered_at is None or recovered_at < a.window_start) \
            and cur["resolved_by"] == actor and _resolved_by_own_window(con, cur):
        changed.update(status="firing", resolved_at=None, resolved_by=None)
        home.state.audit(con, actor, "alert.reopen", f"alert:{cur['id']}", {"reason": "its window breaches again"})
    sets = ", ".join(f"{k}=?" for k in changed)
    con.execute(f"UPDATE alerts SET {sets}, updated_at=? WHERE id=?", (*changed.values(), now_s, cur["id"]))
    con.execute("UPDATE alerts SET evidence=? WHERE id=?", (vals["evidence"], cur["id"]))
    old_sev, new_sev = cur["severity"], a.severity
    escalated = SEVERITY_RANK[new_sev] > SEVERITY_RANK[old_sev]
    home.state.audit(con, actor, "alert.escalate" if escalated else "alert.update", f"alert:{cur['id']}",
                     {k: [cur.get(k), v] for k, v in changed.items() if k != "message"})
    res.updated += 1
    notified, status = cur.get("notified_severity"), changed.get("status", cur["status"])
    if escalated and not cur["backfill"] and status in ("firing", "acknowledged") and (
            notified is None or SEVERITY_RANK[new_sev] > SEVERITY_RANK[notified]):
        res.escalated += 1
        row = dict(con.execute("SELECT * FROM alerts WHERE id=?", (cur["id"],)).fetchone())
        pages.append((row, "escalation"))
        con.execute("UPDATE alerts SET notified_severity=? WHERE id=?", (new_sev, cur["id"]))
