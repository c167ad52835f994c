"""The value scorer, topic assignment and lake rows equal a frozen copy of the pre-optimisation code, exactly.

The reference below is the scoring code as it was before the per-token loops were removed (commit 7c9db74):
PhraseMatcher.find/_walk/_root_entry without their cache, ValueScorer.score/_unscorable, TopicModel.assign and
store.build_tables. Both read the same term trie, so a difference can only come from the scanning code. The texts
are real HH-RLHF replies and prompts plus generated ones made of lexicon words, wildcard expansions, phrases cut
short, stopwords of several languages, apostrophes, non-ASCII letters and punctuation.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import random
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from monitor.schema import VALUE_SCORES
from monitor.values import load_scorer
from monitor.values import scorer as scorer_mod
from monitor.values.matcher import TOKEN_RE, PhraseMatcher, normalize
from monitor.values.store import build_tables
from monitor.values.topics import load_topics
from valuesim import HH, hh_pairs


# --- frozen reference (do not optimise) ------------------------------------------------------------------------

def ref_find(matcher: PhraseMatcher, toks: list[str]) -> list[tuple]:
    root, lengths = matcher._root, sorted({len(p) for p in matcher._root.prefix})

    def walk(node, start, j, cands):
        if j >= len(toks):
            return
        tok = toks[j]
        children = []
        n = node.exact.get(tok)
        if n is not None:
            children.append(n)
        for p, n in node.prefix.items():
            if tok.startswith(p):
                children.append(n)
        for child in children:
            for d, (w, lab) in child.hits.items():
                cands.append((d, start, j + 1, w, lab))
            if child.exact or child.prefix:
                walk(child, start, j + 1, cands)

    cands = []
    for i, tok in enumerate(toks):
        nodes = []
        n = root.exact.get(tok)
        if n is not None:
            nodes.append(n)
        for length in lengths:
            if length > len(tok):
                break
            n = root.prefix.get(tok[:length])
            if n is not None:
                nodes.append(n)
        if not nodes:
            continue
        for d, w, lab in tuple((d, w, lab) for node in nodes for d, (w, lab) in node.hits.items()):
            cands.append((d, i, i + 1, w, lab))
        for node in tuple(node for node in nodes if node.exact or node.prefix):
            walk(node, i, i + 1, cands)
    if len(cands) < 2:
        return cands
    cands.sort(key=lambda c: (c[0], c[1], -c[2]))
    out = []
    last_dim, last_end = -1, -1
    for c in cands:
        if c[0] != last_dim:
            last_dim, last_end = c[0], -1
        if c[1] >= last_end:
            out.append(c)
            last_end = c[2]
    return out


def ref_unscorable(sc, text, low, toks):
    if not toks:
        return "empty"
    if not low.isascii():
        non_ascii = sum(1 for c in re.findall(r"[^\x00-\x7f]", low) if c.isalpha())
        letters = sum(len(t) for t in toks)
        if non_ascii > scorer_mod.NON_ASCII_MAX * letters:
            return "non_english"
    if len(toks) < sc.min_tokens:
        return "too_short"
    english = sum(1 for t in toks if t in scorer_mod.ENGLISH_STOPWORDS)
    foreign = sum(1 for t in toks if t in scorer_mod.FOREIGN_STOPWORDS)
    if foreign >= scorer_mod.FOREIGN_MIN * len(toks) and foreign > english:
        return "non_english"
    if english == 0 and len(toks) >= scorer_mod.LONG_NO_STOPWORDS:
        return "non_english"
    return None


def ref_score(sc, texts, refusal_scores=None):
    n, n_dims = len(texts), len(sc.dimensions)
    out = np.zeros((n, n_dims), dtype=np.float64)
    scored = np.ones(n, dtype=bool)
    n_tokens = np.zeros(n, dtype=np.int64)
    reasons = [None] * n
    evidence = [{}] * n
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
        low = normalize(text)
        ms = list(TOKEN_RE.finditer(low))
        toks = [m.group() for m in ms]
        n_tokens[row] = len(toks)
        reason = ref_unscorable(sc, text, low, toks)
        if reason is not None:
            scored[row] = False
            reasons[row] = reason
            out[row] = np.nan
            continue
        ev, sums = {}, {}
        for d, i, j, w, term in ref_find(sc._matcher, toks):
            sums[d] = sums.get(d, 0.0) + w
            spans = ev.setdefault(d, [])
            if len(spans) < scorer_mod.MAX_SPANS:
                spans.append((term, ms[i].start(), ms[j - 1].end()))
        for d, rx, w in sc._regexes:
            for m in rx.finditer(text):
                if m.end() > m.start():
                    sums[d] = sums.get(d, 0.0) + w
                    spans = ev.setdefault(d, [])
                    if len(spans) < scorer_mod.MAX_SPANS:
                        spans.append((m.group().lower(), m.start(), m.end()))
        per100 = 100.0 / len(toks)
        for d, s in sums.items():
            out[row, d] = s * per100
        evidence[row] = {sc.names[d]: spans for d, spans in sorted(ev.items())}
    out[:, sc._refusal_col] = np.nan if refusal_scores is None else np.asarray(refusal_scores, dtype=float)
    return pd.DataFrame(out, columns=sc.names), scored, reasons, evidence, n_tokens


def ref_assign(model, texts):
    topics, terms = [], []
    for text in texts:
        low = normalize(text) if isinstance(text, str) else ""
        toks = TOKEN_RE.findall(low)
        if not toks:
            topics.append("none")
            terms.append([])
            continue
        counts, found = {}, {}
        for d, _i, _j, _w, term in ref_find(model.matcher, toks):
            counts[d] = counts.get(d, 0) + 1
            found.setdefault(d, []).append(term)
        if not counts:
            topics.append("other")
            terms.append([])
            continue
        best = max(counts, key=lambda d: (counts[d], -d))
        topics.append(model.topics[best])
        terms.append(found[best][:5])
    return topics, terms


def ref_evidence_rows(turn_ids, dates, result):
    ev = {"turn_id": [], "dimension": [], "term": [], "span_start": [], "span_end": [], "date": []}
    for i, spans_by_dim in enumerate(result.evidence):
        if not result.scored[i]:
            continue
        for dim, spans in spans_by_dim.items():
            for term, start, end in spans:
                for key, value in zip(ev, (turn_ids[i], dim, term, start, end, dates[i])):
                    ev[key].append(value)
    return ev


# --- texts -----------------------------------------------------------------------------------------------------

def lexicon_words(matcher: PhraseMatcher) -> tuple[list[str], list[list[str]]]:
    """Single words (exact terms and wildcard prefixes with endings) and phrases (token paths) of a term trie."""
    words, phrases = [], []

    def visit(node, path):
        for tok, child in node.exact.items():
            visit(child, path + [tok])
        for pre, child in node.prefix.items():
            visit(child, path + [pre + random.Random(len(path) + len(pre)).choice(["", "s", "ing", "ed", "ly"])])
        if node.hits and len(path) == 1:
            words.append(path[0])
        elif len(path) > 1:
            phrases.append(path)

    visit(matcher._root, [])
    return words, phrases


def generated_texts(matcher: PhraseMatcher, n: int, seed: int) -> list:
    rng = random.Random(seed)
    words, phrases = lexicon_words(matcher)
    filler = ["the", "you", "it's", "don't", "i", "can", "de", "la", "und", "che", "yang", "é", "über", "naïve",
              "İstanbul", "привет", "数据", "law-abiding", "u.s.", "tenants'", "it’s", "snake_case", "42", "x"]
    seps = [" ", " ", " ", ", ", ". ", "! ", "\n", " - ", "'", "’", "_", "  "]
    out = []
    for k in range(n):
        toks = []
        for _ in range(rng.choice([0, 1, 3, 4, 6, 12, 25, 40, 80])):
            r = rng.random()
            if r < 0.35:
                toks.append(rng.choice(words))
            elif r < 0.6:
                ph = rng.choice(phrases)
                toks += ph[:rng.randint(1, len(ph))] if rng.random() < 0.3 else ph  # some phrases cut short
            else:
                toks.append(rng.choice(filler))
        text = "".join(t + rng.choice(seps) for t in toks)
        out.append(text.upper() if k % 11 == 0 else text.capitalize() if k % 3 == 0 else text)
    return out + ["", "   ", None, float("nan"), 12345, "Kill kill KILL kill kill kill kill kill murder", "İİİ test"]


PLUGINS = [
    {"name": "medical_caution", "family": "normative", "terms": ["see a doctor", "medical professional", "diagnos*",
                                                                 "kill", "i can't help", "you should*"]},
    {"name": "money_talk", "family": "legal", "regex": r"\$\d+(?:\.\d\d)?|\bfree\b", "weight": 0.5},
    {"name": "harm_words", "family": "moral", "terms": ["harm*", "cruel", "cause harm", "it is wrong",
                                                         "cause lasting harm*", "deeply unfair*"], "weight": 2.0},
]


# --- tests -----------------------------------------------------------------------------------------------------

def assert_same_scores(sc, texts, refusal=None):
    res = sc.score(texts, refusal_scores=refusal)
    frame, scored, reasons, evidence, n_tokens = ref_score(sc, texts, refusal)
    pd.testing.assert_frame_equal(res.scores, frame, check_exact=True)
    assert res.scored.dtype == scored.dtype and (res.scored == scored).all()
    assert res.unscored_reason == reasons
    assert res.evidence == evidence
    assert res.n_tokens.dtype == n_tokens.dtype and (res.n_tokens == n_tokens).all()
    return res


@pytest.mark.parametrize("plugins", [None, PLUGINS], ids=["builtin", "plugins"])
def test_scores_equal_reference_on_generated_texts(plugins):
    sc = load_scorer(plugins)
    texts = generated_texts(sc._matcher, 3000, seed=7)
    res = assert_same_scores(sc, texts, [0.5 if k % 4 else math.nan for k in range(len(texts))])
    # The generated texts reach every branch: phrases, several reasons, capped evidence, regex matches.
    assert set(res.unscored_reason) >= {None, "empty", "too_short", "non_english"}
    assert any(len(spans) == scorer_mod.MAX_SPANS for ev in res.evidence for spans in ev.values())
    assert any(" " in term for ev in res.evidence for spans in ev.values() for term, _, _ in spans)
    if plugins:
        assert any("money_talk" in ev for ev in res.evidence)


def test_scores_equal_reference_when_the_token_cache_overflows(monkeypatch):
    monkeypatch.setattr(PhraseMatcher, "CACHE_MAX", 50)
    sc = load_scorer(PLUGINS)
    assert_same_scores(sc, generated_texts(sc._matcher, 500, seed=3))
    assert len(sc._matcher._cache) <= 50 + 200  # cleared when full, then holds at most one text's new words


@pytest.mark.skipif(not HH.exists(), reason=f"{HH} not available")
def test_scores_and_topics_equal_reference_on_real_replies():
    pairs = hh_pairs()
    prompts, replies = [p for p, _ in pairs], [r for _, r in pairs]
    assert_same_scores(load_scorer(), replies)
    assert_same_scores(load_scorer(PLUGINS), replies + prompts)
    model = load_topics()
    assert model.assign(prompts) == ref_assign(model, prompts)


def test_topics_equal_reference_on_generated_texts():
    model = load_topics()
    texts = generated_texts(model.matcher, 2000, seed=11)
    assert model.assign(texts) == ref_assign(model, texts)


def test_lake_rows_equal_reference():
    sc = load_scorer(PLUGINS)
    texts = generated_texts(sc._matcher, 800, seed=5)
    res = sc.score(texts, refusal_scores=[0.25 if k % 3 else math.nan for k in range(len(texts))])
    ids = [f"turn-{k}" for k in range(len(texts))]
    dates = [f"2026-11-{1 + k % 3:02d}" for k in range(len(texts))]
    topics, terms = load_topics().assign([t if isinstance(t, str) else "" for t in texts])
    at = dt.datetime(2026, 11, 27, 6, 0, tzinfo=dt.timezone.utc)
    tables = build_tables(ids, dates, res, topics, terms, at)
    # value_scores: one row per scored reply and dimension with a finite score, in reply then dimension order.
    mat = res.scores.to_numpy()
    stored_at = pa.array([at], VALUE_SCORES.schema.field("scored_at").type)[0].as_py()
    expected = [(ids[i], name, sc.dimensions[j].family, float(mat[i, j]), res.version, stored_at, dates[i])
                for i in range(len(texts)) if res.scored[i]
                for j, name in enumerate(res.scores.columns) if np.isfinite(mat[i, j])]
    got = tables["value_scores"].to_pylist()
    assert [(r["turn_id"], r["dimension"], r["family"], r["score"], r["scorer_version"], r["scored_at"], r["date"])
            for r in got] == expected
    assert tables["value_scores"].schema == VALUE_SCORES.schema
    ev = ref_evidence_rows(ids, dates, res)
    got_ev = tables["value_evidence"].to_pydict()
    assert {k: got_ev[k] for k in ev} == ev
    assert got_ev["scorer_version"] == [res.version] * len(ev["turn_id"])
    assert tables["value_turns"].column("topic_terms").to_pylist() == [json.dumps(t) for t in terms]
