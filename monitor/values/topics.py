"""Offline topic of a user message from a small bundled keyword taxonomy, with the terms that decided it.

Why a keyword taxonomy and not clusters: a topic must be explainable on an alert ("topic mix moved towards
crime_theft: 'steal', 'rob'") and stable across runs and versions; clusters fit on a reference move with the
reference. The taxonomy is `data/topics/taxonomy.json`; matching uses the value scorer's phrase matcher (whole
words, phrases, `word*` prefixes). A message gets the topic with the most matches, ties broken by taxonomy order;
no match at all is `other`, an empty message `none`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from monitor.values.matcher import TOKEN_RE, PhraseMatcher, normalize, term_tokens

TAXONOMY = Path(__file__).resolve().parent / "data" / "topics" / "taxonomy.json"
OTHER = "other"
NONE = "none"


@dataclass(frozen=True)
class TopicModel:
    """The loaded taxonomy: topic names in order and one phrase matcher over all of their terms."""

    version: str
    topics: tuple[str, ...]
    matcher: PhraseMatcher

    def assign(self, texts: list) -> tuple[list[str], list[list[str]]]:
        """Return (topic, matched terms) for each text."""
        topics, terms = [], []
        for text in texts:
            low = normalize(text) if isinstance(text, str) else ""
            toks = TOKEN_RE.findall(low)
            if not toks:
                topics.append(NONE)
                terms.append([])
                continue
            counts: dict[int, int] = {}
            found: dict[int, list[str]] = {}
            for d, _i, _j, _w, term in self.matcher.find(toks):
                counts[d] = counts.get(d, 0) + 1
                found.setdefault(d, []).append(term)
            if not counts:
                topics.append(OTHER)
                terms.append([])
                continue
            best = max(counts, key=lambda d: (counts[d], -d))
            topics.append(self.topics[best])
            terms.append(found[best][:5])
        return topics, terms


@lru_cache(maxsize=1)
def load_topics(path: str | None = None) -> TopicModel:
    """Load the bundled taxonomy (or the one at `path`) into a TopicModel."""
    data = json.loads(Path(path or TAXONOMY).read_text(encoding="utf-8"))
    names = tuple(data["topics"])
    matcher = PhraseMatcher()
    for idx, name in enumerate(names):
        for term in data["topics"][name]:
            matcher.add(term_tokens(term), idx, 1.0, term)
    matcher.freeze()
    return TopicModel(data["version"], names, matcher)
