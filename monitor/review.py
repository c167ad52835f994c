"""Human review: reviewer labels on turns, the review queue, agreement between reviewers, and labelled-data export.

Labels live in the state table `labels` (one row per turn and reviewer; a reviewer relabelling a turn replaces
their own row), the queue in `review_queue`. Every write is an audit-log entry. The queue samples what most needs
human eyes: replies whose refusal score sits near the decision boundary (0.5), prompts whose harm score does,
the example turns attached to alerts, and an equal share per segment group so small groups get reviewed too.
"""
from __future__ import annotations

import io
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Iterable

from monitor.errors import MonitorError
from monitor.home import Home
from monitor.resources import load_sql
from monitor.state import iso, utcnow

REFUSAL_LABELS = ("full_refusal", "partial_refusal", "compliance")
PROMPT_LABELS = ("harmful", "benign")
SAMPLES = ("random", "targeted")  # how a turn the queue did not choose was found (labels.sample)
VALUE_CONCERNS = ("moralizing", "cultural_assumption", "deference", "political_slant", "religious_framing", "other")
QUEUE_REASONS = ("uncertain_refusal", "uncertain_harm", "alert_example", "stratified")
# How the queue's reasons chose a turn, in `labels.sample` terms: only stratified items are a random sample
# (monitor/jobs/refusal_metrics.py, TARGETED_REASONS).
QUEUE_SAMPLE = {"uncertain_refusal": "targeted", "uncertain_harm": "targeted", "alert_example": "targeted",
                "stratified": "random"}
# Fields a reviewer can fill in; the agreement report covers the categorical ones.
LABEL_FIELDS = ("refusal_label", "prompt_label", "refusal_correct", "over_refusal", "harmful_compliance",
                "value_concern", "note")
AGREEMENT_FIELDS = ("refusal_label", "prompt_label", "refusal_correct", "over_refusal", "harmful_compliance")


class ReviewError(MonitorError):
    title = "Review error"


def _flag(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
        return int(value.lower() in ("yes", "true"))
    raise ReviewError(f"label field '{name}' must be yes/no (true/false), got {value!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str | None:
    if value in (None, ""):
        return None
    if value not in choices:
        raise ReviewError(f"label field '{name}' must be one of {', '.join(choices)}, got {value!r}")
    return value


def add_label(home: Home, turn_id: str, reviewer: str, *, refusal_label: str | None = None,
              prompt_label: str | None = None, refusal_correct: Any = None, over_refusal: Any = None,
              harmful_compliance: Any = None, value_concern: str | None = None, note: str | None = None,
              sample: str | None = None) -> int:
    """Record (or replace) one reviewer's label on one turn, audited, and return the label's row id.

    `sample` says how a turn the review queue did not choose was found: 'targeted' (a search) keeps the label out
    of the classifiers' error rates, 'random' lets it in; None when the queue chose it."""
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ReviewError("a reviewer name is required to label a turn", "enter your name in the sidebar")
    if not turn_id:
        raise ReviewError("no turn id given to label")
    row = {
        "refusal_label": _choice("refusal_label", refusal_label, REFUSAL_LABELS),
        "prompt_label": _choice("prompt_label", prompt_label, PROMPT_LABELS),
        "refusal_correct": _flag("refusal_correct", refusal_correct),
        "over_refusal": _flag("over_refusal", over_refusal),
        "harmful_compliance": _flag("harmful_compliance", harmful_compliance),
        "value_concern": (value_concern or None),
        "note": (note or "").strip() or None,
    }
    if all(v is None for v in row.values()):
        raise ReviewError(f"label on turn {turn_id} is empty", "answer at least one question or write a note")
    row["sample"] = _choice("sample", sample, SAMPLES)
    with home.state.tx() as con:
        # The page showed the turn before `monitor forget` deleted it: its hash is in `forgotten_keys` once the forget
        # committed (in one transaction with the deletion of the user's labels), so checking it in this write
        # transaction keeps no label on a forgotten turn whichever commits first.
        gone = con.execute("SELECT audit_id FROM forgotten_keys WHERE key=? AND kind='turn_id'", (turn_id,)).fetchone()
        if gone:
            raise ReviewError(f"turn {turn_id} was deleted by `monitor forget` (audit entry {gone[0]}); its label"
                              " is not kept", "reload the page: the user's turns are gone")
        old = con.execute("SELECT id FROM labels WHERE turn_id=? AND reviewer=?", (turn_id, reviewer)).fetchone()
        con.execute(
            "INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label, refusal_correct, over_refusal,"
            " harmful_compliance, value_concern, note, sample) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(turn_id, reviewer) DO UPDATE SET at=excluded.at, refusal_label=excluded.refusal_label,"
            " prompt_label=excluded.prompt_label, refusal_correct=excluded.refusal_correct,"
            " over_refusal=excluded.over_refusal, harmful_compliance=excluded.harmful_compliance,"
            " value_concern=excluded.value_concern, note=excluded.note, sample=excluded.sample",
            (turn_id, reviewer, iso(utcnow()), *row.values()),
        )
        label_id = con.execute("SELECT id FROM labels WHERE turn_id=? AND reviewer=?", (turn_id, reviewer)).fetchone()[0]
        home.state.audit(con, reviewer, "label.update" if old else "label.add", f"turn:{turn_id}", row)
    return int(label_id)


def labels(home: Home, turn_ids: Iterable[str] | None = None) -> list[dict]:
    """Every label row (optionally only for these turns), oldest first."""
    if turn_ids is None:
        return home.state.query("SELECT * FROM labels ORDER BY id")
    ids = list(turn_ids)
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return home.state.query(f"SELECT * FROM labels WHERE turn_id IN ({marks}) ORDER BY id", ids)


# -- review queue ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueResult:
    added: int
    by_reason: dict[str, int]


def build_queue(home: Home, *, size: int = 50, actor: str = "dashboard", group_attribute: str | None = None,
                band: float = 0.15) -> QueueResult:
    """Add up to `size` turns that most need human eyes to `review_queue` (skipping queued or labelled ones)."""
    from monitor.db import connect

    if size < 1:
        raise ReviewError(f"queue size must be positive, got {size}")
    existing = {r["turn_id"] for r in home.state.query("SELECT turn_id FROM review_queue")}
    existing |= {r["turn_id"] for r in home.state.query("SELECT DISTINCT turn_id FROM labels")}
    picked: dict[str, dict] = {}

    def take(rows: list[dict], reason: str, quota: int) -> None:
        n = 0
        for r in rows:
            if n >= quota or len(picked) >= size:
                return
            if r["turn_id"] in existing or r["turn_id"] in picked:
                continue
            picked[r["turn_id"]] = {"reason": reason, **r}
            n += 1

    # 1. alert examples first: a firing alert is the strongest reason to read a conversation.
    alert_rows = []
    for a in home.state.query("SELECT id, evidence FROM alerts WHERE status IN ('firing','acknowledged')"
                              " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, id"):
        for tid in _example_ids(a["evidence"]):
            alert_rows.append({"turn_id": tid, "priority": 1.0, "group_key": None, "alert_id": a["id"]})
    take(alert_rows, "alert_example", max(1, size // 4))

    con = connect(home)
    try:
        sql = load_sql("dashboard/review_candidates.sql").sql
        attr = group_attribute or _default_group_attribute(con)
        cand = con.execute(sql, {"band": band, "attribute": attr or "", "per_kind": size * 4}).df()
    finally:
        con.close()
    cand = cand.where(cand.notna(), None)
    records = cand.to_dict("records")
    # 2. classifier uncertainty: closest to 0.5 first.
    for reason in ("uncertain_refusal", "uncertain_harm"):
        rows = sorted((r for r in records if r["kind"] == reason), key=lambda r: -r["priority"])
        take([{"turn_id": r["turn_id"], "priority": r["priority"], "group_key": r["group_key"], "alert_id": None}
              for r in rows], reason, max(1, size // 4))
    # 3. stratified: the same number from every group, so a small language is not drowned by a large one.
    strat = [r for r in records if r["kind"] == "stratified"]
    groups: dict[Any, list[dict]] = defaultdict(list)
    for r in strat:
        groups[r["group_key"]].append(r)
    remaining = size - len(picked)
    if groups and remaining > 0:
        per = max(1, math.ceil(remaining / len(groups)))
        for key in sorted(groups, key=lambda k: (k is None, str(k))):
            take([{"turn_id": r["turn_id"], "priority": r["priority"], "group_key": key, "alert_id": None}
                  for r in groups[key]], "stratified", per)
    now = iso(utcnow())
    with home.state.tx() as con2:
        # Turns `monitor forget` deleted after the candidates were read are not queued (as in add_label).
        forgotten = {r[0] for r in con2.execute(
            "SELECT key FROM forgotten_keys WHERE kind='turn_id' AND key IN (SELECT value FROM json_each(?))",
            (json.dumps(list(picked)),))}
        picked = {tid: r for tid, r in picked.items() if tid not in forgotten}
        for tid, r in picked.items():
            con2.execute(
                "INSERT OR IGNORE INTO review_queue (turn_id, reason, priority, group_key, alert_id, added_at)"
                " VALUES (?,?,?,?,?,?)",
                (tid, r["reason"], float(r["priority"] or 0.0), r["group_key"], r["alert_id"], now),
            )
        by_reason = dict(Counter(r["reason"] for r in picked.values()))
        home.state.audit(con2, actor, "queue.build", "review_queue", {"added": len(picked), "by_reason": by_reason})
    return QueueResult(len(picked), by_reason)


def _example_ids(evidence: str | None) -> list[str]:
    try:
        ev = json.loads(evidence or "{}")
    except json.JSONDecodeError:
        return []
    ids = ev.get("example_turn_ids") or ev.get("examples") or []
    return [str(i if not isinstance(i, dict) else i.get("turn_id")) for i in ids if i]


def _default_group_attribute(con) -> str | None:
    rows = con.execute("SELECT attribute, count(DISTINCT value) AS k FROM segments GROUP BY 1 "
                       "HAVING k BETWEEN 2 AND 30 ORDER BY (attribute = 'language') DESC, k DESC LIMIT 1").fetchall()
    return rows[0][0] if rows else None


def queue_items(home: Home, reviewer: str | None = None, limit: int = 50) -> list[dict]:
    """Queued turns, highest priority first, leaving out those this reviewer has already labelled."""
    sql = ("SELECT q.*, (SELECT count(*) FROM labels l WHERE l.turn_id = q.turn_id) AS n_labels FROM review_queue q"
           " WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.turn_id = q.turn_id AND l.reviewer = ?)"
           " ORDER BY CASE q.reason WHEN 'alert_example' THEN 0 ELSE 1 END, q.priority DESC, q.added_at LIMIT ?")
    return home.state.query(sql, (reviewer or "", int(limit)))


# -- agreement ------------------------------------------------------------------------------------------------
def percent_agreement(ratings: dict[str, list[Any]]) -> float | None:
    """Share of rater pairs, over items with two or more ratings, that gave the same answer."""
    agree = total = 0
    for values in ratings.values():
        vals = [v for v in values if v is not None]
        for a, b in combinations(vals, 2):
            total += 1
            agree += a == b
    return agree / total if total else None


def cohen_kappa(a: list[Any], b: list[Any]) -> float | None:
    """Cohen's kappa of two raters' answers on the same items (None when undefined)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return None
    po = sum(x == y for x, y in pairs) / n
    ca, cb = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    pe = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    if pe == 1:
        return 1.0 if po == 1 else None
    return (po - pe) / (1 - pe)


def fleiss_kappa(ratings: dict[str, list[Any]]) -> float | None:
    """Fleiss' kappa over items with two or more ratings (the variable-raters form: each item weighted equally)."""
    items = [[v for v in vs if v is not None] for vs in ratings.values()]
    items = [vs for vs in items if len(vs) >= 2]
    if not items:
        return None
    cats = sorted({v for vs in items for v in vs}, key=str)
    total = sum(len(vs) for vs in items)
    p_j = {c: sum(vs.count(c) for vs in items) / total for c in cats}
    p_i = []
    for vs in items:
        n = len(vs)
        counts = Counter(vs)
        p_i.append((sum(k * k for k in counts.values()) - n) / (n * (n - 1)))
    p_bar = sum(p_i) / len(p_i)
    p_e = sum(p * p for p in p_j.values())
    if p_e == 1:
        return 1.0 if p_bar == 1 else None
    return (p_bar - p_e) / (1 - p_e)


def agreement(label_rows: list[dict], fields: Iterable[str] = AGREEMENT_FIELDS) -> list[dict]:
    """Per label field: items rated by two or more reviewers, percent agreement, Fleiss' kappa, mean pairwise Cohen's kappa."""
    out = []
    for f in fields:
        by_item: dict[str, dict[str, Any]] = defaultdict(dict)
        for r in label_rows:
            if r.get(f) is not None:
                by_item[r["turn_id"]][r["reviewer"]] = r[f]
        multi = {t: rv for t, rv in by_item.items() if len(rv) >= 2}
        ratings = {t: list(rv.values()) for t, rv in multi.items()}
        reviewers = sorted({rev for rv in multi.values() for rev in rv})
        kappas = []
        for ra, rb in combinations(reviewers, 2):
            shared = [t for t, rv in multi.items() if ra in rv and rb in rv]
            if len(shared) >= 2:
                k = cohen_kappa([multi[t][ra] for t in shared], [multi[t][rb] for t in shared])
                if k is not None:
                    kappas.append(k)
        out.append({
            "field": f,
            "items": len(multi),
            "reviewers": len(reviewers),
            "percent_agreement": percent_agreement(ratings),
            "fleiss_kappa": fleiss_kappa(ratings),
            "cohen_kappa_mean": sum(kappas) / len(kappas) if kappas else None,
        })
    return out


# -- export ---------------------------------------------------------------------------------------------------
def export_labels(home: Home, fmt: str = "jsonl", actor: str = "dashboard") -> bytes:
    """Every label joined with its turn's text and classifier scores, as JSONL or Parquet bytes (audited)."""
    import pyarrow.parquet as pq

    from monitor.db import connect

    if fmt not in ("jsonl", "parquet"):
        raise ReviewError(f"export format must be jsonl or parquet, got {fmt!r}")
    con = connect(home)
    try:
        table = con.sql(load_sql("dashboard/labelled_turns.sql").sql).to_arrow_table()
    finally:
        con.close()
    if fmt == "parquet":
        buf = io.BytesIO()
        pq.write_table(table, buf)
        data = buf.getvalue()
    else:
        lines = [json.dumps(r, default=str, ensure_ascii=False) for r in table.to_pylist()]
        data = ("\n".join(lines) + ("\n" if lines else "")).encode()
    with home.state.tx() as c:
        home.state.audit(c, actor, "labels.export", "labels", {"format": fmt, "rows": table.num_rows})
    return data
