"""Seeded traffic simulation from real labelled replies, used to tune the default alert rules and to test them.

Turns are drawn from XSTest (human-labelled replies of five real model setups to 80 benign and 64 harmful
prompts): each simulated model answers like one real setup, each day draws its prompt mix from a Dirichlet
around uniform (so day-to-day rates vary more than binomial noise, as real topic mix does), and each turn gets a
language. Rates per (model, segment, day) carry Wilson intervals from `monitor.stats`. Value drift uses the last
assistant reply of real HH-RLHF transcripts scored on a few lexical dimensions (the moralising terms are the
monitor's own lexicon) and a K-S test against the previous seven days; disparity compares each language group
with the rest of the traffic (two-proportion z-test, Benjamini-Hochberg across groups).

Incidents are injected on request: over-refusal doubling (every benign compliance flips to a refusal with
probability r/(1-r), so the expected rate goes from r to 2r), optionally in one language only, and a model that
starts appending a moralising sentence to a share of its replies.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from monitor.stats import wilson

MODELS = {
    "assistant-a": "gpt-4 (OpenAI API, 2024)",
    "assistant-b": "llama-2-70b-chat (no system prompt)",
    "assistant-c": "mistral-7b-instruct-v0.1 (guardrail system prompt)",
    "assistant-d": "mistral-7b-instruct-v0.1 (no system prompt)",
}
LANGUAGES = {"en": 0.45, "es": 0.2, "hi": 0.2, "fr": 0.15}
MORALIZING = [
    "It's important to remember to treat everyone with respect.",
    "It is important to note that this could hurt someone, so please be considerate.",
    "Please remember to always act responsibly and ethically.",
]


@dataclass
class Incident:
    model: str
    start_day: int
    kind: str = "over_refusal"  # over_refusal | moralizing
    factor: float = 2.0
    language: str | None = None  # None = every language
    share: float = 0.4  # moralizing: share of replies that get a lecture appended


@dataclass
class Scenario:
    days: int = 30
    seed: int = 7
    turns_per_day: int = 1500  # per model (Poisson mean)
    harmful_share: float = 0.2
    concentration: float = 20.0  # Dirichlet concentration per prompt: lower = more day-to-day variation
    drift_sample: int = 300  # replies scored per model per day for value drift
    incidents: list[Incident] = field(default_factory=list)
    start: dt.datetime = dt.datetime(2026, 10, 1)


def load_xstest(data_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per model setup: refused (1) or complied (0) for each benign and each harmful prompt, by human label."""
    by: dict[str, dict[str, dict[str, int]]] = {}
    with open(data_dir / "refusal" / "xstest_dev.jsonl") as f:
        for line in f:
            r = json.loads(line)
            refused = int(r["refusal_label"] != "compliance")
            by.setdefault(r["model"], {}).setdefault(r["prompt_label"], {})[r["prompt"]] = refused
    out = {}
    for model, d in by.items():
        out[model] = {k: np.array([v[p] for p in sorted(v)], dtype=np.int8) for k, v in d.items()}
    return out


_WORD = re.compile(r"[a-z']+")


def _moral_terms() -> list[str]:
    path = Path(__file__).resolve().parents[1] / "values" / "data" / "curated" / "moralizing.txt"
    terms = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            terms.append(line.split("\t")[0].strip().lower())
    return terms


def load_replies(data_dir: Path) -> list[str]:
    """The last assistant reply of each real HH-RLHF harmless-base transcript (chosen side)."""
    out = []
    with gzip.open(data_dir / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz", "rt") as f:
        for line in f:
            text = json.loads(line)["chosen"]
            reply = text.rsplit("Assistant:", 1)[-1].strip()
            if reply:
                out.append(reply)
    return out


def reply_features(text: str, terms: list[str]) -> tuple[float, float, float]:
    """(log word count, moralising terms per 100 words, second-person words per 100 words) of one reply."""
    low = text.lower()
    words = _WORD.findall(low)
    nw = max(len(words), 1)
    moral = sum(low.count(t.rstrip("*")) for t in terms)
    you = sum(w in ("you", "your", "yours", "yourself") for w in words)
    return math.log1p(len(words)), 100 * moral / nw, 100 * you / nw


def _row(metric, family, ws, model, segment, value, lo, hi, n, k, details, small) -> dict:
    return {"metric": metric, "granularity": "day", "window_start": ws, "window_end": ws + dt.timedelta(days=1),
            "model": model, "deployment": None, "segment": json.dumps(segment, sort_keys=True), "value": value,
            "ci_low": lo, "ci_high": hi, "n": n, "numerator": k, "corrected": None, "corrected_ci_low": None,
            "corrected_ci_high": None, "small_sample": small, "details": json.dumps(details), "job": "simulation",
            "run_id": "sim", "computed_at": ws + dt.timedelta(days=1, hours=1), "family": family}


def _bh(p: list[float]) -> list[float]:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    prev = 1.0
    for rank, i in reversed(list(enumerate(order, start=1))):
        prev = min(prev, p[i] * m / rank)
        q[i] = prev
    return q


def simulate(data_dir: Path, sc: Scenario, min_n: int = 30) -> pa.Table:
    """Metric rows (schema METRICS) for every day, model, language and metric of the scenario."""
    from scipy.stats import ks_2samp, norm

    rng = np.random.default_rng(sc.seed)
    xs = load_xstest(data_dir)
    langs, lang_p = list(LANGUAGES), np.array(list(LANGUAGES.values()))
    terms = _moral_terms()
    replies = load_replies(data_dir)
    base_feats = np.array([reply_features(r, terms) for r in replies])
    pools = {m: rng.permutation(len(replies)) for m in MODELS}  # each model answers from its own share of HH
    history: dict[str, list[np.ndarray]] = {m: [] for m in MODELS}
    rows: list[dict] = []
    for day in range(sc.days):
        ws = sc.start + dt.timedelta(days=day)
        per_model = {}
        for m, setup in MODELS.items():
            n = rng.poisson(sc.turns_per_day)
            harmful = rng.random(n) < sc.harmful_share
            lang = rng.choice(len(langs), size=n, p=lang_p)
            refused = np.zeros(n, dtype=np.int8)
            for cls, mask in (("benign", ~harmful), ("harmful", harmful)):
                labels = xs[setup][cls]
                w = rng.dirichlet(np.full(len(labels), sc.concentration))
                refused[mask] = labels[rng.choice(len(labels), size=int(mask.sum()), p=w)]
            for inc in sc.incidents:
                if inc.kind == "over_refusal" and inc.model == m and day >= inc.start_day:
                    r0 = xs[setup]["benign"].mean()
                    flip = min(1.0, (inc.factor - 1) * r0 / (1 - r0))
                    hit = (~harmful) & (refused == 0) & (rng.random(n) < flip)
                    if inc.language is not None:
                        hit &= lang == langs.index(inc.language)
                    refused[hit] = 1
            per_model[m] = (harmful, lang, refused)
        groups = {m: per_model[m] for m in MODELS}
        all_models = tuple(np.concatenate([g[i] for g in per_model.values()]) for i in range(3))
        for m, (harmful, lang, refused) in [*groups.items(), (None, all_models)]:
            for metric, mask_cls, event in (("over_refusal_rate", ~harmful, refused == 1),
                                            ("under_refusal_rate", harmful, refused == 0)):
                segs = [({}, np.ones(len(lang), bool))] + [({"language": g}, lang == i) for i, g in enumerate(langs)]
                for seg, smask in segs:
                    sel = mask_cls & smask
                    nn, kk = int(sel.sum()), int((sel & event).sum())
                    if nn == 0:
                        continue
                    lo, hi = wilson(kk, nn)
                    rows.append(_row(metric, "refusal", ws, m, seg, kk / nn, float(lo), float(hi), nn, float(kk),
                                     {"k": kk}, nn < min_n))
                # Disparity: each language group against the rest of this model's traffic, BH across groups.
                if m is None:
                    continue
                stats = []
                for i, g in enumerate(langs):
                    a, b = mask_cls & (lang == i), mask_cls & (lang != i)
                    na, nb = int(a.sum()), int(b.sum())
                    ka, kb = int((a & event).sum()), int((b & event).sum())
                    pa_, pb_ = ka / max(na, 1), kb / max(nb, 1)
                    pool = (ka + kb) / max(na + nb, 1)
                    se = math.sqrt(max(pool * (1 - pool), 1e-12) * (1 / max(na, 1) + 1 / max(nb, 1)))
                    p = float(2 * norm.sf(abs(pa_ - pb_) / se)) if se > 0 else 1.0
                    stats.append((g, na, ka, pa_, pb_, p, na >= 50 and nb >= 50))
                qs = _bh([s[5] for s in stats])
                dmetric = metric.replace("_rate", "_disparity")
                for (g, na, ka, pa_, pb_, p, ok), q in zip(stats, qs):
                    lo, hi = wilson(ka, na) if na else (None, None)
                    ratio = pa_ / pb_ if pb_ > 0 else None
                    det = {"attribute": "language", "group": g, "reference_group": "rest", "gap": pa_ - pb_,
                           "ratio": ratio, "p_value": p, "q_value": q, "significant": bool(q < 0.05 and ok),
                           "adverse": bool(q < 0.05 and ok and pa_ > pb_),
                           "four_fifths_flag": bool(ratio is not None and (ratio > 1.25 or ratio < 0.8)),
                           "min_n_ok": ok}
                    rows.append(_row(dmetric, "disparity", ws, m, {"language": g}, pa_ - pb_,
                                     None if lo is None else float(lo), None if hi is None else float(hi), na,
                                     float(ka), det, na < min_n))
        # Value drift: score a sample of each model's replies; K-S against the previous 7 days.
        for m in MODELS:
            idx = rng.choice(pools[m][: len(replies) // len(MODELS)], size=sc.drift_sample)
            feats = base_feats[idx].copy()
            for inc in sc.incidents:
                if inc.kind == "moralizing" and inc.model == m and day >= inc.start_day:
                    lecture = rng.random(sc.drift_sample) < inc.share
                    for j in np.flatnonzero(lecture):
                        text = replies[idx[j]] + " " + MORALIZING[j % len(MORALIZING)]
                        feats[j] = reply_features(text, terms)
            ref = history[m][-7:]
            if len(ref) >= 7:
                refx = np.concatenate(ref)
                for d, dim in enumerate(("length", "moralizing", "second_person")):
                    res = ks_2samp(feats[:, d], refx[:, d])
                    p = float(res.pvalue)
                    det = {"dimension": dim, "statistic": p, "method": "ks", "threshold": 0.05,
                           "drift_detected": p < 0.05, "reference": "previous_days"}
                    rows.append(_row("value_drift", "values", ws, m, {"dimension": dim}, p, None, None,
                                     sc.drift_sample, None, det, False))
            history[m].append(feats)
    return pa.Table.from_pylist(rows)
