"""Token-level phrase matcher: whole words, multi-word phrases and prefix wildcards (`kill*`) in one pass."""
from __future__ import annotations

import re
from itertools import compress

# A word: letters/digits with internal apostrophes, so "it's", "don't", "i'm" stay one token and
# "tenants' rights" is ["tenants", "rights"]. Hyphens and dots split: "law-abiding" -> ["law", "abiding"],
# "U.S." -> ["u", "s"]. Text is lower-cased and ’ (U+2019) turned into ' before tokenizing.
TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_TERM_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*\*?")
_BAD_WILDCARD_RE = re.compile(r"\*[^\W_*]|\*\*|(?:^|[\s'\-.])\*")

MIN_PREFIX = 2  # "a*" would match a large part of any text; wildcard prefixes need at least two characters


def normalize(text: str) -> str:
    """Lower-case `text` without changing its length (so spans stay valid) and unify apostrophes."""
    low = text.lower()
    if len(low) != len(text):  # e.g. "İ".lower() is two characters: keep such characters as they are
        low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return low.replace("\u2019", "'")


def term_tokens(term: str) -> list[str]:
    """Split a lexicon term into match tokens; a token ending in `*` is a prefix; raises ValueError if malformed."""
    t = normalize(term.strip())
    if _BAD_WILDCARD_RE.search(t):
        raise ValueError(f"term {term!r}: '*' is only allowed at the end of a word, as in 'kill*'")
    toks = _TERM_TOKEN_RE.findall(t)
    if not toks:
        raise ValueError(f"term {term!r} has no words in it")
    for tok in toks:
        if tok.endswith("*") and len(tok) - 1 < MIN_PREFIX:
            raise ValueError(f"term {term!r}: a wildcard needs at least {MIN_PREFIX} letters before '*'")
    return toks


class _Node:
    __slots__ = ("hits", "exact", "prefix")

    def __init__(self):
        self.hits: dict[int, tuple[float, str]] = {}  # dim index -> (weight, term label)
        self.exact: dict[str, _Node] = {}
        self.prefix: dict[str, _Node] = {}


_NO_MATCH = ()  # cached root entry of a token that starts no term (falsy, unlike a (hits, nexts) entry)


class PhraseMatcher:
    """Finds every lexicon term of every dimension in a token list, leftmost-longest and non-overlapping per dimension."""

    CACHE_MAX = 200_000  # token types remembered (bounds memory on adversarial input where every token is new)

    def __init__(self):
        self._root = _Node()
        self._prefix_lengths: list[int] = []
        self._prefix_heads: frozenset = frozenset()
        self._cache: dict[str, tuple] = {}

    def add(self, tokens: list[str], dim: int, weight: float, label: str) -> None:
        """Register a term (already split by `term_tokens`) for dimension index `dim`."""
        node = self._root
        for tok in tokens:
            if tok.endswith("*"):
                node = node.prefix.setdefault(tok[:-1], _Node())
            else:
                node = node.exact.setdefault(tok, _Node())
        old = node.hits.get(dim)
        if old is None or weight > old[0]:  # a term listed twice for one dimension counts once, at its top weight
            node.hits[dim] = (weight, label)
        self._cache.clear()

    def freeze(self) -> None:
        """Finish building: convert per-node tables into the tuples the scanning loop reads."""
        self._prefix_lengths = sorted({len(p) for p in self._root.prefix})
        # The first characters every wildcard prefix shares in length, so most words skip the prefix table at once.
        short = self._prefix_lengths[0] if self._prefix_lengths else 0
        self._prefix_heads = frozenset(p[:short] for p in self._root.prefix)
        self._cache.clear()

    def _root_entry(self, tok: str) -> tuple:
        # Everything a token can start: hits of one-word terms and the nodes of longer phrases. Cached per token
        # type, so the prefix table is consulted once per distinct word, not once per occurrence.
        nodes = []
        n = self._root.exact.get(tok)
        if n is not None:
            nodes.append(n)
        if self._prefix_lengths and tok[:self._prefix_lengths[0]] in self._prefix_heads:
            pref = self._root.prefix
            for length in self._prefix_lengths:
                if length > len(tok):
                    break
                n = pref.get(tok[:length])
                if n is not None:
                    nodes.append(n)
        if not nodes:
            return _NO_MATCH
        hits = tuple((d, w, lab) for node in nodes for d, (w, lab) in node.hits.items())
        nexts = tuple(node for node in nodes if node.exact or node.prefix)
        return hits, nexts

    def _entries(self, toks: list[str]) -> list[tuple]:
        """The cached root entry of every token, computing those of token types not seen before."""
        cache = self._cache
        entries = list(map(cache.get, toks))
        if None in entries:  # some token types are new (None is never cached: a miss is _NO_MATCH)
            if len(cache) > self.CACHE_MAX:
                cache.clear()
            root_entry = self._root_entry
            for tok in {tok for tok in toks if tok not in cache}:
                cache[tok] = root_entry(tok)
            entries = list(map(cache.__getitem__, toks))
        return entries

    def find(self, toks: list[str]) -> list[tuple[int, int, int, float, str]]:
        """Return matches as (dim, first token, end token, weight, term), leftmost-longest, no overlap within a dim."""
        entries = self._entries(toks)
        cands = []
        append = cands.append
        n = len(toks)
        # Only the positions whose token starts a term are visited in Python (most tokens start none).
        for i, (hits, nexts) in compress(enumerate(entries), entries):
            for d, w, lab in hits:
                append((d, i, i + 1, w, lab))
            for node in nexts:
                # A phrase continues through exact words almost always: follow them in a loop, and hand a node
                # with wildcard children to _walk (same candidates in the same order either way).
                j = i + 1
                while j < n:
                    if node.prefix:
                        self._walk(node, toks, i, j, cands)
                        break
                    node = node.exact.get(toks[j])
                    if node is None:
                        break
                    j += 1
                    for d, (w, lab) in node.hits.items():
                        append((d, i, j, w, lab))
                    if not node.exact and not node.prefix:
                        break
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

    def _walk(self, node: _Node, toks: list[str], start: int, j: int, cands: list) -> None:
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
                self._walk(child, toks, start, j + 1, cands)
