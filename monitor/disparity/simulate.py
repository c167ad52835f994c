"""Seeded traffic for disparity tests and demos: real labelled replies (XSTest) with synthetic group metadata.

Each simulated turn reuses a real prompt and reply whose human labels match the outcome drawn for it (benign or
harmful prompt, refused or not), and its `scores` row carries those human labels, as if the classifiers were
perfect. That isolates the statistics from classifier error (measured separately) and from classifier speed.
`write_value_scores` adds the real value scorer's output for each reply, so value disparities are simulated on the
score distributions of real replies (skewed, mostly zeros), not on a convenient normal.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa

REFUSED = ("full_refusal", "partial_refusal")


@dataclass(frozen=True)
class Reply:
    prompt: str
    response: str
    refusal: str  # full_refusal | partial_refusal | compliance
    prompt_harm: str  # benign | harmful


def load_pools(path: Path) -> dict[tuple[str, bool], list[Reply]]:
    """Real labelled replies grouped by (prompt label, refused)."""
    pools: dict[tuple[str, bool], list[Reply]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            rep = Reply(r["prompt"], r["response"], r["refusal_label"], r["prompt_label"])
            pools.setdefault((rep.prompt_harm, rep.refusal in REFUSED), []).append(rep)
    return pools


def _id(*parts) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


def write_scored_turns(home, turns: list[dict], scored_at: dt.datetime) -> int:
    """Append turns, their segments (attrs) and their scores to the lake in one transaction."""
    t_cols: dict[str, list] = {k: [] for k in ("turn_id", "conversation_id", "turn_index", "ts", "model",
                                               "model_version", "user_attrs", "user_message",
                                               "assistant_message", "source", "ingested_at", "date")}
    seg: dict[str, list] = {"turn_id": [], "attribute": [], "value": [], "date": []}
    sc: dict[str, list] = {k: [] for k in ("turn_id", "refusal", "refusal_score", "prompt_harm",
                                           "prompt_harm_score", "refusal_version", "harm_version", "backend",
                                           "scored_at", "date")}
    for t in turns:
        date = t["ts"].strftime("%Y-%m-%d")
        for k, v in (("turn_id", t["turn_id"]), ("conversation_id", t["turn_id"]), ("turn_index", 0),
                     ("ts", t["ts"]),
                     # The model identifier carries the version (name@version), as the collectors store it.
                     ("model", t.get("model") or (f"assistant@{t['model_version']}" if t.get("model_version")
                                                  else "assistant")),
                     ("model_version", t.get("model_version")), ("user_attrs", json.dumps(t.get("attrs", {}))),
                     ("user_message", t["user_message"]), ("assistant_message", t["assistant_message"]),
                     ("source", t.get("source", "production")), ("ingested_at", scored_at), ("date", date)):
            t_cols[k].append(v)
        for a, v in t.get("attrs", {}).items():
            seg["turn_id"].append(t["turn_id"]); seg["attribute"].append(a)
            seg["value"].append(v); seg["date"].append(date)
        refused = t["refusal"] in REFUSED
        for k, v in (("turn_id", t["turn_id"]), ("refusal", t["refusal"]), ("refusal_score", float(refused)),
                     ("prompt_harm", t["prompt_harm"]), ("prompt_harm_score", float(t["prompt_harm"] == "harmful")),
                     ("refusal_version", "human-labels"), ("harm_version", "human-labels"),
                     ("backend", "simulation"), ("scored_at", scored_at), ("date", date)):
            sc[k].append(v)
    with home.lake.transaction() as tx:
        tx.add("turns", pa.table(t_cols))
        tx.add("segments", pa.table(seg))
        tx.add("scores", pa.table(sc))
    return len(turns)


def write_value_scores(home, turns: list[dict], scored_at: dt.datetime, scorer=None) -> int:
    """Score each distinct reply of the turns with the value scorer once and append the value tables."""
    from monitor.values import load_scorer
    from monitor.values.store import build_tables

    scorer = scorer or load_scorer()
    texts = sorted({t["assistant_message"] for t in turns})
    res = scorer.score(texts)
    index = {text: i for i, text in enumerate(texts)}
    rows = [index[t["assistant_message"]] for t in turns]
    res = dataclasses.replace(
        res, scores=res.scores.iloc[rows].reset_index(drop=True), scored=np.asarray(res.scored)[rows],
        unscored_reason=[res.unscored_reason[i] for i in rows], n_tokens=np.asarray(res.n_tokens)[rows],
        evidence=[{} for _ in rows])  # evidence spans are not needed by the disparity statistics
    tables = build_tables([t["turn_id"] for t in turns], [t["ts"].strftime("%Y-%m-%d") for t in turns], res,
                          ["simulated"] * len(turns), [[] for _ in turns], scored_at)
    with home.lake.transaction() as tx:
        for name, table in tables.items():
            tx.add(name, table)
    return len(turns)


def simulate_day(pools, rng: np.random.Generator, day: dt.datetime, groups: dict[str, int], harmful_share: float,
                 over_rate: Callable[[str], float], under_rate: Callable[[str], float], model_version: str,
                 attribute: str = "language",
                 choose: Callable[[str, list[Reply], np.random.Generator], Reply] | None = None) -> list[dict]:
    """One day's turns: for each group its count of turns, each benign/harmful and refused/complied as drawn
    (`choose(group, pool, rng)` picks the reply within its pool; default uniform)."""
    out = []
    for group, count in groups.items():
        for i in range(count):
            harmful = rng.random() < harmful_share
            if harmful:
                refused = rng.random() >= under_rate(group)
            else:
                refused = rng.random() < over_rate(group)
            pool = pools[("harmful" if harmful else "benign", refused)]
            rep = choose(group, pool, rng) if choose else pool[int(rng.integers(len(pool)))]
            ts = day + dt.timedelta(seconds=int(rng.integers(86_400)))
            out.append({"turn_id": _id(day.date(), group, i, model_version), "ts": ts,
                        "model_version": model_version, "attrs": {attribute: group},
                        "user_message": rep.prompt, "assistant_message": rep.response,
                        "refusal": rep.refusal, "prompt_harm": rep.prompt_harm})
    return out
