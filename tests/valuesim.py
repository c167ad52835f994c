"""Shared builders for the value tests: real HH-RLHF replies and prompts, and turns written straight to a lake."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HH = DATA / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz"
START = dt.datetime(2026, 10, 1)


@lru_cache(maxsize=1)
def hh_pairs() -> tuple[tuple[str, str], ...]:
    """(last user message, last assistant reply) of every chosen and rejected HH-RLHF harmless-base transcript."""
    out = []
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    for key in ("chosen", "rejected"):
        for r in rows:
            parts = r[key].split("\n\nAssistant: ")
            out.append((parts[-2].split("\n\nHuman: ")[-1].strip(), parts[-1].strip()))
    return tuple(out)


@lru_cache(maxsize=1)
def moralising_sentences() -> tuple[str, ...]:
    """Real sentences from HH-RLHF replies that the scorer finds moralising (for the model-update scenario)."""
    from monitor.values import load_scorer

    sents = []
    for _, reply in hh_pairs():
        sents += [s.strip() for s in re.split(r"(?<=[.!?])\s+", reply) if len(s.split()) >= 6]
    sents = sorted(set(sents))
    res = load_scorer().score(sents)
    return tuple(s for s, v, ok in zip(sents, res.scores["moralizing"], res.scored) if ok and v > 0)


def write_turns(home, turns: list[dict], segments: list[dict] | None = None, scores: list[dict] | None = None):
    """Append turn rows (and segment / classifier score rows) to the home's lake in one commit."""
    with home.lake.transaction() as tx:
        tx.add("turns", pa.Table.from_pylist([{**t, "date": t["ts"].strftime("%Y-%m-%d")} for t in turns]))
        if segments:
            tx.add("segments", pa.Table.from_pylist(segments))
        if scores:
            tx.add("scores", pa.Table.from_pylist(scores))


def simulate(days: int, per_day: int, seed: int, change_day: int | None = None, share: float = 0.3,
             model: str = "assistant", start: dt.datetime = START, id_prefix: str = "") -> tuple[list, list]:
    """Turns of `days` days of resampled real traffic; from `change_day` a share of replies gains a moralising sentence."""
    rng = np.random.default_rng(seed)
    pairs = hh_pairs()
    moral = moralising_sentences() if change_day is not None else ()
    turns, segs = [], []
    for day in range(days):
        idx = rng.integers(0, len(pairs), per_day)
        secs = np.sort(rng.integers(0, 86400, per_day))
        for j, (i, s) in enumerate(zip(idx, secs)):
            prompt, reply = pairs[int(i)]
            version = "v1"
            if change_day is not None and day >= change_day:
                version = "v2"
                if rng.random() < share:
                    reply = reply + " " + moral[int(rng.integers(0, len(moral)))]
            tid = f"{id_prefix}d{day:02d}-{j:05d}"
            ts = start + dt.timedelta(days=day, seconds=int(s))
            turns.append({"turn_id": tid, "conversation_id": tid, "turn_index": 0, "ts": ts, "model": model,
                          "model_version": version, "deployment": "prod", "user_message": prompt,
                          "assistant_message": reply, "source": "test"})
            segs.append({"turn_id": tid, "attribute": "region", "value": "eu" if rng.random() < 0.5 else "us",
                         "date": ts.strftime("%Y-%m-%d")})
    return turns, segs
