"""The value-profile scorer: lexicon term weight per 100 tokens for each value dimension, with matched evidence."""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import pandas as pd

from monitor.errors import MonitorError
from monitor.textlang import ENGLISH_STOPWORDS, FOREIGN_MIN, FOREIGN_STOPWORDS, NON_ASCII_MAX, _NON_ASCII_RE
from monitor.values import lexicons
from monitor.values.dimensions import DIMENSIONS, SOURCES, Dimension
from monitor.values.matcher import TOKEN_RE, PhraseMatcher, normalize, term_tokens
from monitor.values.plugins import validate

VERSION = "values-2026.11.1"
MIN_TOKENS = 5
MAX_SPANS = 5  # evidence kept per reply and dimension; the score counts every match

# Language gate (cheap, no model): monitor/textlang.py's positive evidence of another language (mostly non-ASCII
# letters, or more Spanish/French/German/... function words than English ones), plus one rule of the lexicons'
# own: a reply of LONG_NO_STOPWORDS tokens or more without one English function word is refused too.
# A plain "too few English stopwords" rule also refused English word lists, addresses and strings of swear
# words (13 of 4,624 HH-RLHF replies), which the lexicons can score, hence the positive evidence of another
# language. Other languages written in plain ASCII (Swahili, Tagalog, Turkish without diacritics...) are a gap.
LONG_NO_STOPWORDS = 20


@dataclass
class ValueScores:
    """Scores of a batch: one row per text, one column per dimension, with scored flags and matched evidence."""

    scores: pd.DataFrame
    scored: np.ndarray
    unscored_reason: list
    evidence: list
    n_tokens: np.ndarray
    version: str = VERSION
    dimensions: list = field(default_factory=list)


class ValueScorer:
    """Scores replies on the built-in value dimensions plus any configured plugin dimensions."""

    def __init__(self, custom_dimensions: list[dict] | None = None, *, min_tokens: int = MIN_TOKENS):
        plugins = validate(custom_dimensions)
        self.min_tokens = min_tokens
        self.dimensions: list[Dimension] = list(DIMENSIONS) + [p.dimension for p in plugins]
        self.names = [d.name for d in self.dimensions]
        self._refusal_col = self.names.index("refusal")
        self._matcher = PhraseMatcher()
        self._regexes: list[tuple[int, re.Pattern, float]] = []
        for idx, dim in enumerate(DIMENSIONS):
            src = SOURCES[dim.name]
            if src.kind == "moralstrength":
                pairs = lexicons.moralstrength(src.file, src.polarity)
            elif src.kind == "curated":
                pairs = lexicons.curated(src.file)
            else:
                continue
            for term, w in pairs:
                self._matcher.add(term_tokens(term), idx, w, term)
        offset = len(DIMENSIONS)
        for k, p in enumerate(plugins):
            if p.regex is not None:
                self._regexes.append((offset + k, p.regex, p.weight))
            for term, w, toks in p.terms:
                self._matcher.add(list(toks), offset + k, w, term)
        self._matcher.freeze()
        self.version = VERSION if not plugins else f"{VERSION}+{_config_hash(custom_dimensions, plugins)}"

    def score(self, texts: list[str], refusal_scores: list[float] | None = None) -> ValueScores:
        """Score each text; unscorable texts (too short, not English) get NaN scores, scored=False and a reason."""
        n, n_dims = len(texts), len(self.dimensions)
        if refusal_scores is not None and len(refusal_scores) != n:
            raise MonitorError(f"refusal_scores has {len(refusal_scores)} values for {n} texts",
                               hint="pass one refusal score per text, or None")
        out = np.zeros((n, n_dims), dtype=np.float64)
        scored = np.ones(n, dtype=bool)
        token_counts = [0] * n
        reasons: list[str | None] = [None] * n
        evidence: list[dict] = [{}] * n
        # Scores are collected as (row, dimension, value) and written into `out` in one assignment at the end.
        cell_rows, cell_dims, cell_values = [], [], []
        find = self._matcher.find
        findall, finditer, match_start = TOKEN_RE.findall, TOKEN_RE.finditer, re.Match.start
        names, regexes, unscorable = self.names, self._regexes, self._unscorable
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                text = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
            low = normalize(text)
            toks = findall(low)
            token_counts[row] = len(toks)
            reason = unscorable(text, low, toks)
            if reason is not None:
                reasons[row] = reason
                continue
            # Evidence is kept as token positions first; the character offsets of just the tokens up to the last
            # kept one are looked up afterwards, instead of a match object for every token of every reply.
            ev: dict[int, list] = {}
            sums = {}
            last_tok = 0
            for d, i, j, w, term in find(toks):
                sums[d] = sums.get(d, 0.0) + w
                spans = ev.get(d)
                if spans is None:
                    spans = ev[d] = []
                if len(spans) < MAX_SPANS:
                    spans.append((term, i, j))
                    if j > last_tok:
                        last_tok = j
            if last_tok:
                starts = list(map(match_start, islice(finditer(low), last_tok)))
                for d, spans in ev.items():
                    ev[d] = [(term, starts[i], starts[j - 1] + len(toks[j - 1])) for term, i, j in spans]
            if regexes:
                for d, rx, w in regexes:
                    for m in rx.finditer(text):
                        if m.end() > m.start():
                            sums[d] = sums.get(d, 0.0) + w
                            spans = ev.setdefault(d, [])
                            if len(spans) < MAX_SPANS:
                                spans.append((m.group().lower(), m.start(), m.end()))
                ev = dict(sorted(ev.items()))
            if sums:
                per100 = 100.0 / len(toks)
                cell_rows += [row] * len(sums)
                cell_dims += sums.keys()
                cell_values += [s * per100 for s in sums.values()]
            # find() returns matches ordered by dimension, so without regex dimensions `ev` is already sorted.
            evidence[row] = {names[d]: spans for d, spans in ev.items()}
        out[cell_rows, cell_dims] = cell_values
        unscored = [row for row, reason in enumerate(reasons) if reason is not None]
        scored[unscored] = False
        out[unscored] = np.nan
        n_tokens = np.array(token_counts, dtype=np.int64)
        # The refusal classifier's score is passed through as given, also for rows the lexicons cannot score
        # (the classifier is not a lexicon); it is NaN when no scores were given.
        out[:, self._refusal_col] = np.nan if refusal_scores is None else np.asarray(refusal_scores, dtype=float)
        frame = pd.DataFrame(out, columns=self.names)
        return ValueScores(frame, scored, reasons, evidence, n_tokens, self.version, list(self.dimensions))

    def _unscorable(self, text: str, low: str, toks: list[str]) -> str | None:
        if not toks:
            return "empty"
        if not low.isascii():
            non_ascii = sum(1 for c in _NON_ASCII_RE.findall(low) if c.isalpha())
            letters = sum(map(len, toks))
            if non_ascii > NON_ASCII_MAX * letters:
                return "non_english"
        if len(toks) < self.min_tokens:
            return "too_short"
        english = sum(map(ENGLISH_STOPWORDS.__contains__, toks))
        foreign = sum(map(FOREIGN_STOPWORDS.__contains__, toks))
        if foreign >= FOREIGN_MIN * len(toks) and foreign > english:
            return "non_english"
        if english == 0 and len(toks) >= LONG_NO_STOPWORDS:
            return "non_english"
        return None


def _config_hash(custom_dimensions, plugins) -> str:
    # The version names the plugin config, so stored scores say which dimension definitions produced them.
    h = hashlib.sha256(json.dumps(custom_dimensions, sort_keys=True, default=str).encode())
    for p in plugins:
        h.update(repr((p.terms, p.regex.pattern if p.regex else None)).encode())
    return h.hexdigest()[:8]


def load_scorer(custom_dimensions: list[dict] | None = None) -> ValueScorer:
    """Build a scorer with the built-in dimensions plus `custom_dimensions` (plugin dicts, see docs/values.md)."""
    return ValueScorer(custom_dimensions)
