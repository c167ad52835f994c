"""Helpers shared by the refusal metric tests: write tiny hand-made turns, segments and scores into a lake."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pyarrow as pa

from monitor.schema import SCORES, SEGMENTS, TURNS
from monitor.state import utcnow


def turn_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def add_turns(home, turns: list[dict]) -> list[str]:
    """Append turns (dicts with key, ts, model, prompt, response, optional deployment/feedback/segments)."""
    rows, segs = [], []
    now = utcnow()
    for t in turns:
        tid = turn_id(t["key"])
        ts: dt.datetime = t["ts"]
        rows.append({
            "turn_id": tid, "content_hash": tid, "conversation_id": t["key"], "turn_index": 0, "ts": ts,
            "model": t.get("model", "m-1"), "deployment": t.get("deployment", "prod"),
            "user_attrs": json.dumps(t.get("segments", {})), "user_message": t.get("prompt", ""),
            "assistant_message": t.get("response", ""), "feedback": t.get("feedback"), "source": "test",
            "source_format": "test", "batch_id": "b", "ingested_at": now, "date": ts.strftime("%Y-%m-%d"),
        })
        for attr, value in t.get("segments", {}).items():
            segs.append({"turn_id": tid, "attribute": attr, "value": value, "date": ts.strftime("%Y-%m-%d")})
    with home.lake.transaction() as tx:
        tx.add("turns", pa.Table.from_pylist(rows, schema=TURNS.schema))
        if segs:
            tx.add("segments", pa.Table.from_pylist(segs, schema=SEGMENTS.schema))
    return [r["turn_id"] for r in rows]


def add_scores(home, scored: list[dict], version: str = "t1") -> None:
    """Append score rows directly (dicts with key, ts, refusal, prompt_harm), as the score job would."""
    now = utcnow()
    rows = [{
        "turn_id": turn_id(s["key"]), "refusal": s["refusal"], "refusal_score": 0.5,
        "prompt_harm": s.get("prompt_harm"), "prompt_harm_score": 0.5, "refusal_version": version,
        "harm_version": version, "backend": "test", "scored_at": s.get("scored_at", now),
        "date": s["ts"].strftime("%Y-%m-%d"),
    } for s in scored]
    home.lake.append("scores", pa.Table.from_pylist(rows, schema=SCORES.schema))


def add_labels(home, labels: list[tuple[str, str | None, str | None]]) -> None:
    """Insert reviewer labels (turn_id, refusal_label, prompt_label)."""
    with home.state.tx() as con:
        for i, (tid, rl, pl) in enumerate(labels):
            con.execute(
                "INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?, ?, ?, ?, ?)",
                (tid, "rev", f"2026-01-01T00:00:{i % 60:02d}Z", rl, pl),
            )
