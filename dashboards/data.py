"""Data functions of the dashboard: each runs one SQL file from `sql/dashboard/` and returns a DataFrame.

Lake reads are cached with `st.cache_data`, keyed by the home's path and the lake manifest version, so a new
commit (ingest, a job run) shows up on the next rerun and an unchanged lake is never queried twice. State reads
(alerts, labels, audit) are small SQLite queries and are not cached, so an action shows at once.
"""
from __future__ import annotations

import datetime as dt
import importlib
import json
import re
from functools import lru_cache
from typing import Any

import orjson
import pandas as pd
import streamlit as st

from monitor.db import connect
from monitor.errors import QueryError
from monitor.home import Home
from monitor.resources import load_sql

TTL = 600
REFUSAL_METRICS = ("refusal_rate", "over_refusal_rate", "under_refusal_rate", "partial_refusal_share")
FEEDBACK_METRICS = ("thumbs_down_rate",)
VALUE_METRICS = ("value_mean", "value_coverage", "value_drift")
MIX_METRICS = ("topic_drift", "prompt_mix_drift")
# The label estimate of each classifier rate's unscored part (monitor/jobs/refusal_metrics.py, LABEL_METRICS).
LABELLED_METRICS = {"refusal_rate": "labelled_refusal_rate", "over_refusal_rate": "labelled_over_refusal_rate",
                    "under_refusal_rate": "labelled_under_refusal_rate"}


@lru_cache(maxsize=8)
def get_home(root: str) -> Home:
    """The Home at `root`, opened once per process; a folder that is not a home is an error, not a new home (a
    misspelt MONITOR_HOME must not show an empty dashboard)."""
    return Home.open(root, create=False)


def lake_version(root: str) -> int:
    """The lake manifest version: the cache key that changes whenever anything is committed."""
    return int(get_home(root).lake.manifest().get("version", 0))


@st.cache_resource(max_entries=2, show_spinner=False)
def _database(root: str, version: int):
    """One in-memory DuckDB over this lake version: building the views costs ~0.3 s on a large lake, so it is
    built once per manifest version and every query runs on its own cursor (thread-safe, same views).
    Lake tables only are read through it; state (labels, alerts) is read fresh from SQLite."""
    con = connect(get_home(root))
    # Keep Parquet footers between queries: every page's freshness query alone opens hundreds of files (halves
    # its time on a 980k-turn home). Lake files are never rewritten in place (a rewrite is a new file name).
    con.execute("SET parquet_metadata_cache = true")
    return con


def _run(root: str, sql_file: str, params: dict | None = None) -> pd.DataFrame:
    sql = load_sql(f"dashboard/{sql_file}").sql
    cur = _database(root, lake_version(root)).cursor()
    try:
        return cur.execute(sql, params or {}).df()
    except Exception as e:  # duckdb errors: name the file so a broken view is easy to find
        raise QueryError(f"dashboard query sql/dashboard/{sql_file} failed: {e}") from e
    finally:
        cur.close()


def module_available(name: str) -> bool:
    """Whether an optional pipeline module (written by another stage) is importable."""
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


# -- lake reads (cached) ----------------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, show_spinner=False)
def freshness(root: str, version: int) -> dict[str, Any]:
    """Newest event, ingest and metric times, turn and quarantine counts, and the last job runs."""
    # read before the query: the database it runs on is at this manifest's version or newer, so the dates exist
    manifest = get_home(root).lake.manifest()
    event_dates, ingest_dates = _freshness_dates(manifest)
    row = _run(root, "freshness.sql", {"event_dates": event_dates, "ingest_dates": ingest_dates}).iloc[0].to_dict()
    # counts from the manifest's per-file row counts: `count(*)` over the views would open every file
    tables = manifest.get("tables", {})
    row["turns"] = sum(e["rows"] for e in tables.get("turns", []))
    row["quarantined"] = sum(e["rows"] for e in tables.get("quarantine", []))
    if row["turns"] and (pd.isna(row["latest_event"]) or pd.isna(row["latest_ingest"])):
        # the pruned read found nothing (those files were rewritten away meanwhile): read every date once
        row |= _run(root, "freshness.sql", {"event_dates": [], "ingest_dates": []}).iloc[0].to_dict()
    row = {k: (None if pd.isna(v) else v) for k, v in row.items()}
    row["first_event_date"] = _first_event_date(manifest)
    row["manifest_version"] = version
    row["last_jobs"] = get_home(root).state.query(
        "SELECT job, status, finished_at FROM job_runs WHERE id IN (SELECT max(id) FROM job_runs GROUP BY job) "
        "ORDER BY job")
    return row


def _freshness_dates(manifest: dict) -> tuple[list[str], list[str]]:
    """The newest event date of `turns`, and the event dates of the files its newest commit added (manifest only)."""
    entries = manifest.get("tables", {}).get("turns", [])
    # path 'turns/date=2026-11-14/part-....parquet': the hive partition value is the event date
    dated = [(part[5:], e.get("v", 0)) for e in entries for part in e["path"].split("/") if part.startswith("date=")]
    if not dated:
        return [], []
    newest_v = max(v for _, v in dated)
    return [max(d for d, _ in dated)], sorted({d for d, v in dated if v == newest_v})


def _first_event_date(manifest: dict) -> dt.date | None:
    """The oldest event date of `turns` (its oldest `date=` partition), from the manifest only."""
    dates = [part[5:] for e in manifest.get("tables", {}).get("turns", []) for part in e["path"].split("/")
             if part.startswith("date=")]
    try:
        return dt.date.fromisoformat(min(dates)) if dates else None
    except ValueError:
        return None


@st.cache_data(ttl=TTL, show_spinner=False)
def models(root: str, version: int) -> list[str]:
    """Every model name in the metric rollups, sorted (the order fixes each model's colour)."""
    return _run(root, "models.sql")["model"].tolist()


@st.cache_data(ttl=TTL, show_spinner=False)
def metric_families(root: str, version: int) -> dict[str, tuple]:
    """Each metric name in the rollups with the `metrics_log` partitions (families) holding its rows."""
    df = _run(root, "metric_families.sql")
    out: dict[str, tuple] = {}
    for metric, family in zip(df["metric"], df["family"]):
        out[metric] = out.get(metric, ()) + (None if pd.isna(family) else family,)
    return out


def _families(root: str, version: int, metrics: tuple[str, ...], pattern: str) -> list[str] | None:
    """The partitions to read for these metrics (None = every partition); a metric without rows needs none."""
    known = metric_families(root, version)
    names = set(metrics)
    if pattern:
        # LIKE semantics ('%' any run, '_' one character), the same test metric_series.sql applies
        like = re.compile("".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern),
                          re.DOTALL)
        names |= {m for m in known if like.fullmatch(m)}
    fams = {f for m in names for f in known.get(m, ())}
    return None if None in fams else sorted(fams)


@st.cache_data(ttl=TTL, show_spinner=False)
def metric_rows(root: str, version: int, metrics: tuple[str, ...], start: dt.datetime, end: dt.datetime,
                pattern: str = "", granularity: str = "day", dimension_only: bool = False,
                dimension: str = "", segment: str = "", details: bool = True) -> pd.DataFrame:
    """Latest metric rows for the named metrics (or a LIKE pattern) in the window, with `segment` parsed (and
    `details`, unless details=False: then that JSON, most of the bytes of metrics_log, is neither read nor parsed)."""
    df = _run(root, "metric_series.sql", {"metrics": list(metrics), "pattern": pattern, "start": start,
                                          "end": end, "granularity": granularity,
                                          "dimension_only": bool(dimension_only), "dimension": dimension or "",
                                          "segment": segment or "", "details": bool(details),
                                          "families": _families(root, version, tuple(metrics), pattern)})
    return _parse_json_cols(df)


@st.cache_data(ttl=TTL, show_spinner=False)
def metric_keys(root: str, version: int, pattern: str, start: dt.datetime, end: dt.datetime,
                granularity: str = "day") -> pd.DataFrame:
    """Metric names matching a LIKE pattern in the window, with the value dimensions their rows carry."""
    return _run(root, "metric_keys.sql", {"pattern": pattern, "start": start, "end": end, "granularity": granularity})


def _parse_json_cols(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    # a few hundred distinct segments repeat over thousands of rows: parse each text once (each row gets its own
    # dict, so a page changing one row's object cannot change another's)
    segs = {s: orjson.loads(s) if isinstance(s, str) and s else {} for s in set(df["segment"])}
    df["segment_obj"] = [dict(segs[s]) for s in df["segment"]]
    # orjson: ~4x faster than json on the ~8k details objects of the values page (same Python values)
    df["details_obj"] = [orjson.loads(s) if isinstance(s, str) and s else {} for s in df["details"]]
    labels = {s: segment_label(o) for s, o in segs.items()}
    df["segment_label"] = [labels[s] for s in df["segment"]]
    df["model_label"] = df["model"].fillna("all models")
    return df


def unscored_by_group(turn_counts: pd.DataFrame, key_col: str) -> pd.DataFrame:
    """Per group of `turn_count` rows (with details): replies left unscored (`details.unscored`) and scored (n),
    summed over the windows; only groups with unscored replies, most first. Columns: group, unscored, n."""
    if turn_counts.empty:
        return pd.DataFrame(columns=["group", "unscored", "n"])
    df = pd.DataFrame({"group": turn_counts[key_col].astype(str),
                       "unscored": [int(d.get("unscored") or 0) for d in turn_counts["details_obj"]],
                       "n": turn_counts["n"].fillna(0).astype(int)})
    out = df.groupby("group", as_index=False)[["unscored", "n"]].sum()
    return out[out["unscored"] > 0].sort_values(["unscored", "group"], ascending=[False, True]).reset_index(drop=True)


def unscored_warning(gone: pd.DataFrame, lead: str, name=str) -> str:
    """The warning a page shows for `unscored_by_group`'s groups: `lead`, each group (`name(group)`) with its
    unscored replies and their share, and why they are not measured."""
    groups = ", ".join(f"{name(g)}: {u:,} replies ({u / (u + n):.0%})" for g, u, n in gone.itertuples(index=False))
    return (f"{lead}: {groups} left unscored (empty, or in a language the English-only classifiers do not read), so "
            "the classifiers do not measure their refusals. To measure them, use the `llm_judge` backend (it reads "
            "other languages). Reviewer labels on a random sample of them (the review queue's stratified items, or "
            "labels marked random) now give a separate estimate from human labels alone, shown below where there "
            "is one.")


def label_estimate_table(rows: pd.DataFrame, key_col: str, name=str) -> pd.DataFrame:
    """The newest window's label estimate of each group in parsed `labelled_*_rate` rows (with details): group
    (`name(group)`), estimate, rate, ci_low, ci_high, n, small n, labels from (the pooled period), window."""
    cols = ["group", "estimate", "rate", "ci_low", "ci_high", "n", "small n", "labels from", "window"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    newest = rows.sort_values("window_start").groupby([key_col, "metric"], as_index=False).tail(1)
    newest = newest[newest["n"].fillna(0) > 0]
    out = pd.DataFrame({
        "group": [name(g) for g in newest[key_col]], "estimate": list(newest["metric"]),
        "rate": list(newest["value"]), "ci_low": list(newest["ci_low"]), "ci_high": list(newest["ci_high"]),
        "n": newest["n"].astype(int).tolist(), "small n": ["yes" if pd.notna(s) and s else "" for s in newest["small_sample"]],
        "labels from": [d.get("period", "") for d in newest["details_obj"]],
        "window": newest["window_start"].dt.strftime("%Y-%m-%d %H:%M").str.replace(" 00:00", "").tolist()},
        columns=cols)
    return out.sort_values(["group", "estimate"], ignore_index=True)


def label_estimate_caption(min_n: int) -> str:
    """What a label-estimate table shows, where it comes from and what it does not cover."""
    return ("From human labels, not the classifiers: the share among the reviewers' random-sample labels (the review "
            "queue's stratified items and labels marked random; targeted ones such as searches or uncertain items "
            "are left out) of each group's unscored turns, pooled over the 28 days ending with the window shown "
            "('labels from'). It covers only the unscored part of the group: it is in none of the classifier rates "
            f"and their n, and not comparable with their corrected values. small n: fewer than {min_n} labels, "
            "read the interval rather than the point.")


def segment_label(seg: dict) -> str:
    """'language=hi' style label of a segment object ('all traffic' for {})."""
    return ", ".join(f"{k}={v}" for k, v in sorted(seg.items())) or "all traffic"


@st.cache_data(ttl=TTL, show_spinner=False)
def schema(root: str, version: int) -> dict[str, list[tuple[str, str]]]:
    """Every queryable table and view with its (column, type) pairs, as `monitor.sqlguard.schema` gives them."""
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in _run(root, "schema.sql").itertuples(index=False):
        out.setdefault(table, []).append((column, dtype))
    return out


@st.cache_data(ttl=TTL, show_spinner=False)
def volume(root: str, version: int, start: dt.datetime, end: dt.datetime, granularity: str = "day") -> pd.DataFrame:
    """Scored turns and thumbs up/down per day and model in [start, end), summed from the metric rollups."""
    return _run(root, "volume.sql", {"start": start, "end": end, "granularity": granularity})


@st.cache_data(ttl=TTL, show_spinner=False)
def segment_values(root: str, version: int, start: dt.datetime, end: dt.datetime,
                   granularity: str = "day") -> pd.DataFrame:
    """Segment attributes and values with their scored-turn counts in [start, end), from the metric rollups."""
    return _run(root, "segment_values.sql", {"start": start, "end": end, "granularity": granularity})


@st.cache_data(ttl=60, show_spinner=False)
def conversations(root: str, version: int, start: dt.datetime, end: dt.datetime, q: str = "", model: str = "",
                  attribute: str = "", value: str = "", refusal: str = "", prompt_harm: str = "",
                  min_score: float = 0.0, max_score: float = 1.0, labelled: str = "any",
                  limit: int = 200, labels_count: int = 0, deployment: str = "", refused: str = "") -> pd.DataFrame:
    """Scored turns matching the filters, newest first, with their label count (labels_count keys the cache)."""
    score_filter = bool(refusal or refused or prompt_harm or min_score > 0 or max_score < 1 or labelled != "any")
    df = _run(root, "conversations.sql", {
        "q": q, "model": model, "attribute": attribute, "value": value, "refusal": refusal, "refused": refused,
        "deployment": deployment,
        "prompt_harm": prompt_harm, "min_score": float(min_score), "max_score": float(max_score),
        "start_date": f"{start:%Y-%m-%d}", "end_date": f"{end:%Y-%m-%d}",
        "prelimit": 2**62 if score_filter else int(limit), "limit": 2**62 if labelled != "any" else int(limit)})
    counts = {r["turn_id"]: r["n"] for r in get_home(root).state.query(
        "SELECT turn_id, count(*) AS n FROM labels GROUP BY turn_id")}
    df["n_labels"] = [counts.get(t, 0) for t in df["turn_id"]]
    if labelled != "any":
        df = df[(df["n_labels"] > 0) == (labelled == "yes")].head(int(limit))
    return df


@st.cache_data(ttl=TTL, show_spinner=False)
def turns_by_id(root: str, version: int, ids: tuple[str, ...], start_date: str = "",
                end_date: str = "") -> pd.DataFrame:
    """The given turns with their latest classifier scores (dates, when known, narrow the files read)."""
    if not ids:
        return pd.DataFrame()
    return _run(root, "turns_by_id.sql", {"ids": list(ids), "start_date": start_date, "end_date": end_date})


def label_quality(root: str) -> pd.DataFrame:
    """Reviewer labels beside the classifier's predictions for the same turns (labels read fresh from state), with
    how each turn was chosen (`queue_reason`, as sql/jobs/refusal_labelled_turns.sql words it)."""
    labels = pd.DataFrame(get_home(root).state.query(
        "SELECT l.turn_id, l.reviewer, l.refusal_label, l.prompt_label, l.refusal_correct,"
        " coalesce(q.reason, CASE WHEN EXISTS (SELECT 1 FROM labels t WHERE t.turn_id = l.turn_id"
        " AND t.sample = 'targeted') THEN 'targeted_sample' ELSE 'unqueued' END) AS queue_reason"
        " FROM labels l LEFT JOIN review_queue q ON q.turn_id = l.turn_id"))
    if labels.empty:
        return labels
    turns = turns_by_id(root, lake_version(root), tuple(sorted(set(labels["turn_id"]))))
    if turns.empty:
        return labels.assign(model=None, predicted_refusal=None, refusal_score=None, predicted_prompt_harm=None,
                             prompt_harm_score=None)
    pred = turns[["turn_id", "model", "refusal", "refusal_score", "prompt_harm", "prompt_harm_score"]].rename(
        columns={"refusal": "predicted_refusal", "prompt_harm": "predicted_prompt_harm"})
    return labels.merge(pred, on="turn_id", how="left")


@st.cache_data(ttl=TTL, show_spinner=False)
def value_terms(root: str, version: int, dimension: str, model: str | None, cur_start: dt.datetime,
                cur_end: dt.datetime, ref_start: dt.datetime, ref_end: dt.datetime,
                scorer_version: str = "") -> pd.DataFrame:
    """Lexicon terms of a dimension matched in the current and the reference window, with their share of replies."""
    df = _run(root, "value_terms.sql", {
        "dimension": dimension, "model": model or "", "scorer_version": scorer_version or "",
        "cur_start": cur_start, "cur_end": cur_end, "ref_start": ref_start, "ref_end": ref_end,
        "min_date": f"{min(cur_start, ref_start):%Y-%m-%d}", "max_date": f"{max(cur_end, ref_end):%Y-%m-%d}"})
    cur_n = df["cur_n"].replace(0, float("nan"))
    ref_n = df["ref_n"].replace(0, float("nan"))
    return df.assign(cur_share=df["cur_replies"] / cur_n, ref_share=df["ref_replies"] / ref_n,
                     change=df["cur_replies"] / cur_n - (df["ref_replies"] / ref_n).fillna(0))


@st.cache_data(ttl=TTL, show_spinner=False)
def value_examples(root: str, version: int, dimension: str, model: str | None, start: dt.datetime,
                   end: dt.datetime, scorer_version: str = "", limit: int = 5) -> pd.DataFrame:
    """Replies of a window scoring highest on a value dimension, with the matched terms' spans."""
    return _run(root, "value_examples.sql", {
        "dimension": dimension, "model": model or "", "scorer_version": scorer_version or "", "start": start,
        "end": end, "start_date": f"{start:%Y-%m-%d}", "end_date": f"{end:%Y-%m-%d}", "limit": int(limit)})


def drift_by_segment(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per segment value of parsed value_drift rows: its status, replies now and in the reference, the
    dimensions that drifted and the largest statistic; 'too few replies' when every row is below `values.min_n`."""
    cols = ["segment", "status", "replies", "reference replies", "dimensions drifted", "largest statistic"]
    seg = rows[[len(s) > 1 for s in rows["segment_obj"]]] if not rows.empty else rows
    if seg.empty:
        return pd.DataFrame(columns=cols)
    label = seg["segment_obj"].map(lambda s: segment_label({k: v for k, v in s.items() if k != "dimension"}))
    out = []
    for name, part in seg.groupby(label):
        det = list(part["details_obj"])
        small = all(bool(sm) or d.get("min_n_ok") is False for d, sm in zip(det, part["small_sample"].fillna(False)))
        drifted = sorted(str(d.get("dimension")) for d in det if d.get("drift_detected"))
        refs = [d.get("n_reference") for d in det if d.get("n_reference") is not None]
        out.append({"segment": name, "status": "DRIFT" if drifted else ("too few replies" if small else "stable"),
                    "replies": int(part["n"].max()), "reference replies": int(max(refs)) if refs else None,
                    "dimensions drifted": ", ".join(drifted), "largest statistic": part["value"].max()})
    order = {"DRIFT": 0, "stable": 1, "too few replies": 2}
    df = pd.DataFrame(out, columns=cols)
    return df.sort_values(["status", "replies"], key=lambda c: c.map(order) if c.name == "status" else -c,
                          ignore_index=True)


def highlight(text: str, spans) -> str:
    """Markdown of `text` with each matched span in bold (spans: [{term, span_start, span_end}], may overlap)."""
    text = text or ""
    if spans is None or len(spans) == 0:
        return text
    out, pos = [], 0
    for sp in sorted(spans, key=lambda s: int(s["span_start"])):
        a, b = max(int(sp["span_start"]), pos), min(int(sp["span_end"]), len(text))
        if b <= a:
            continue
        out += [text[pos:a], "**" + text[a:b].replace("*", "") + "**"]
        pos = b
    return "".join(out) + text[pos:]


@st.cache_data(ttl=TTL, show_spinner="Computing the Evidently report (takes a few seconds)...")
def evidently_report(root: str, version: int, window_start: dt.datetime, model: str | None = None) -> str:
    """Evidently's HTML report of one window against the reference the value_drift job used, made on demand."""
    # imported here: the job module pulls in the drift code, and evidently itself takes ~4 s to import
    from monitor.jobs.value_drift import evidently_report_html

    return evidently_report_html(get_home(root), window_start, model=model or None)


# -- state reads (not cached) -----------------------------------------------------------------------------------
def alerts(root: str, status: tuple[str, ...] = (), severity: tuple[str, ...] = (), metric: str = "") -> pd.DataFrame:
    """Alerts from the state store, newest window first, filtered by status, severity and metric substring."""
    home = get_home(root)
    where, params = [], []
    if status:
        where.append(f"status IN ({','.join('?' * len(status))})")
        params += list(status)
    if severity:
        where.append(f"severity IN ({','.join('?' * len(severity))})")
        params += list(severity)
    if metric:
        where.append("metric LIKE ?")
        params.append(f"%{metric}%")
    sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
    sql += (" ORDER BY CASE status WHEN 'firing' THEN 0 WHEN 'acknowledged' THEN 1 WHEN 'silenced' THEN 2 ELSE 3 END,"
            " CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, window_start DESC, id DESC")
    return pd.DataFrame(home.state.query(sql, params))


def alert(root: str, alert_id: int) -> dict | None:
    rows = get_home(root).state.query("SELECT * FROM alerts WHERE id=?", (int(alert_id),))
    return rows[0] if rows else None


def alert_reference(root: str, version: int, alert: dict) -> dict[str, Any]:
    """What the alert's metric row was compared with, from that row's details: {rate, n, ci, label} ({} if none).

    Disparity rules record no `reference` on the alert (they flag a significant gap), but the metric row carries
    the reference group's rate (or mean) and n: the rest of the traffic the gap is measured against.
    """
    ws = pd.Timestamp(str(alert["window_start"]).rstrip("Z")).to_pydatetime()
    we = pd.Timestamp(str(alert["window_end"]).rstrip("Z")).to_pydatetime()
    rows = metric_rows(root, version, (alert["metric"],), ws, we, granularity=alert.get("granularity") or "day",
                       segment=alert.get("segment") or "{}")
    rows = rows[(rows["window_start"] == ws) & (rows["model"].fillna("") == (alert.get("model") or ""))
                & (rows["deployment"].fillna("") == (alert.get("deployment") or ""))]
    for d in rows["details_obj"]:
        rate = d.get("reference_rate", d.get("reference_mean"))
        if rate is not None:
            ci = d.get("reference_ci") or [None, None]
            return {"rate": rate, "n": d.get("reference_n"), "ci": tuple(ci[:2]) if len(ci) >= 2 else (None, None),
                    "label": d.get("reference_label") or "reference", "gap": d.get("gap")}
    return {}


def alert_comments(root: str, alert_id: int) -> pd.DataFrame:
    return pd.DataFrame(get_home(root).state.query(
        "SELECT at, author, body FROM alert_comments WHERE alert_id=? ORDER BY id", (int(alert_id),)))


def audit_trail(root: str, target: str = "", limit: int = 200) -> pd.DataFrame:
    """Audit-log entries, newest first, optionally only those about one target (e.g. 'alert:3')."""
    return pd.DataFrame(get_home(root).state.query(
        "SELECT at, actor, action, target, details FROM audit_log WHERE (? = '' OR target = ?) ORDER BY id DESC "
        "LIMIT ?", (target, target, int(limit))))


def labels_count(root: str) -> int:
    return int(get_home(root).state.query("SELECT count(*) AS n FROM labels")[0]["n"])


def saved_queries(root: str) -> pd.DataFrame:
    return pd.DataFrame(get_home(root).state.query("SELECT * FROM saved_queries ORDER BY name"))


def save_query(root: str, name: str, sql: str, actor: str) -> None:
    """Save (or replace) a named query, audited."""
    from monitor.state import iso, utcnow

    home = get_home(root)
    with home.state.tx() as con:
        con.execute("INSERT INTO saved_queries (name, sql, created_by, created_at) VALUES (?,?,?,?) "
                    "ON CONFLICT(name) DO UPDATE SET sql=excluded.sql, created_by=excluded.created_by, "
                    "created_at=excluded.created_at", (name, sql, actor, iso(utcnow())))
        home.state.audit(con, actor, "query.save", f"saved_query:{name}", {"sql": sql})


def data_anchor(fresh: dict) -> dt.datetime:
    """The newest instant holding data (newest event, or the last instant of the newest metric window), else now.

    A metric window's end is exclusive: a day window of 2026-11-27 ends at 2026-11-28 00:00, which holds no data,
    so the anchor is the microsecond before it; the frame then ends the time window with the anchor's whole day.
    """
    cands = [pd.Timestamp(c).to_pydatetime() for c in [fresh.get("latest_event")] if c is not None]
    if fresh.get("latest_metric_window") is not None:
        cands.append(pd.Timestamp(fresh["latest_metric_window"]).to_pydatetime() - dt.timedelta(microseconds=1))
    if not cands:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return max(cands)
