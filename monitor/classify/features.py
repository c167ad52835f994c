"""Text features shared by training and scoring: word n-grams plus hand-written, explainable cues."""
from __future__ import annotations

import json
import math
import re
from importlib import resources

_TOKEN = re.compile(r"[a-z0-9']+")
_APOS = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
# End of the first sentence: a stop or newline after at least 12 characters ("I'm sorry. " stays one sentence).
_SENT_END = re.compile(r"(?<=.{12})(?:[.!?](?:\s|$)|\n)", re.S)
_LIST_ITEM = re.compile(r"(?:^|\n)\s*(?:\d+[.)]|[-*\u2022])\s+\S")


def load_lexicon(name: str) -> dict:
    """Return the bundled lexicon ``lexicons/<name>.json`` as a dict."""
    text = resources.files("monitor.classify").joinpath("lexicons", f"{name}.json").read_text("utf-8")
    return json.loads(text)


def normalise(text: str) -> str:
    """Lower-case and fold curly quotes so regexes see one apostrophe."""
    return text.translate(_APOS).lower()


def _join(patterns: list[str]) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def _terms(words: list[str]) -> re.Pattern:
    """Compile a word list (entries may be phrases; trailing * = prefix) into one whole-word regex."""
    parts = []
    for w in sorted(set(words), key=len, reverse=True):
        if w.endswith("*"):
            parts.append(re.escape(w[:-1]) + r"[\w'-]*")
        elif ".*" in w:
            parts.append(w)
        else:
            parts.append(re.escape(w))
    return re.compile(r"(?<![\w'])(?:" + "|".join(parts) + r")(?![\w])")


def ngrams(tokens: list[str], prefix: str, out: dict, bigrams: bool = True) -> None:
    """Add binary unigram (and bigram) features named ``prefix+gram`` to ``out``."""
    for t in tokens:
        out[prefix + t] = 1.0
    if bigrams:
        for a, b in zip(tokens, tokens[1:]):
            out[prefix + a + "_" + b] = 1.0


class RefusalFeatures:
    """Features of an assistant reply that separate refusals from compliance.

    Word n-grams of the opening (where refusals live), of the first sentence and of the closing lines, plus dense
    cues: a refusal phrase in the first sentence, how much text follows the refusal, an offered alternative, a
    sympathy opener or an "as an AI" disclaimer followed by a real answer, list structure.
    """

    HEAD = 500
    DENSE = (
        "d:ref_s1", "d:ref_head", "d:ref_any", "d:alt", "d:alt_after_ref", "d:sympathy", "d:sympathy_comply",
        "d:disclaimer", "d:disclaimer_pivot", "d:comply_open", "d:happy_but", "d:moralize", "d:len", "d:after_ref",
        "d:list", "d:code", "d:no_ref_long",
    )

    def __init__(self, lexicon: dict | None = None):
        lex = lexicon or load_lexicon("refusal")
        self.re_ref = _join(lex["refusal"])
        self.re_alt = _join(lex["alternative"])
        self.re_sym = _join(lex["sympathy"])
        self.re_disc = _join(lex["disclaimer"])
        self.re_pivot = _join(lex["pivot"])
        self.re_open = _join(lex["compliance_open"])
        self.re_happy = _join(lex["happy_but"])
        self.re_moral = _join(lex["moralize"])

    def features(self, text: str) -> dict[str, float]:
        """Return the sparse feature dict of one non-empty reply."""
        t = normalise(text).strip()
        head = t[: self.HEAD]
        m = _SENT_END.search(head)
        s1 = head[: m.end()] if m else head[:250]
        f: dict[str, float] = {}
        htok = _TOKEN.findall(head)
        ngrams(htok, "h:", f)
        ngrams(_TOKEN.findall(s1)[:25], "s:", f)
        n = len(t)
        if n > 900:
            ngrams(_TOKEN.findall(t[-250:]), "t:", f, bigrams=False)
        body = t[:3000]
        ref_s1 = self.re_ref.search(s1)
        refs_head = self.re_ref.findall(head)
        ref_any = refs_head or self.re_ref.search(body)
        if ref_s1:
            f["d:ref_s1"] = 1.0
        if refs_head:
            f["d:ref_head"] = min(len(refs_head), 3) / 3.0
        if ref_any:
            f["d:ref_any"] = 1.0
            first = self.re_ref.search(body)
            after = n - first.end()
            f["d:after_ref"] = math.log1p(max(after, 0)) / 8.0
            if self.re_alt.search(body, first.end()):
                f["d:alt_after_ref"] = 1.0
        elif n > 400:
            f["d:no_ref_long"] = 1.0
        if self.re_alt.search(body):
            f["d:alt"] = 1.0
        if self.re_sym.search(s1):
            f["d:sympathy"] = 1.0
            if not self.re_ref.search(head, len(s1)):
                f["d:sympathy_comply"] = 1.0
        if self.re_disc.search(head):
            f["d:disclaimer"] = 1.0
            if self.re_pivot.search(head):
                f["d:disclaimer_pivot"] = 1.0
        if self.re_open.search(s1):
            f["d:comply_open"] = 1.0
        if self.re_happy.search(head):
            f["d:happy_but"] = 1.0
        mor = self.re_moral.findall(head)
        if mor:
            f["d:moralize"] = min(len(mor), 5) / 5.0
        f["d:len"] = math.log1p(n) / 8.0
        items = len(_LIST_ITEM.findall(body))
        if items:
            f["d:list"] = min(items, 8) / 8.0
        if "```" in body:
            f["d:code"] = 1.0
        return f


class HarmFeatures:
    """Features of a user prompt that separate harmful requests from benign ones, including risky-looking ones.

    Beyond word n-grams: which harm categories are named, whether a risky verb's object is a person or a thing
    ("kill a person" vs "kill a Python process"), and contrast framings (games/fiction, definitions, history,
    denial, nonsense discrimination, public or fictional owners of private data, safety/education).
    """

    CATEGORIES = ("violence", "weapons", "cyber", "fraud", "drugs", "self_harm", "hate", "sexual", "privacy")
    _POSS = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][\w.-]*(?:\s+[A-Z][\w.-]*)*)(?:'s|s')\s")
    _START_DEF = re.compile(
        r"^\s*(?:what(?:'s| is| are| was| were| does| do) (?:a |an |the )?(?:definition|meaning|term)?|"
        r"what constitutes|define|definition of|explain what|what counts as)"
    )
    _FIRST_PERSON = re.compile(r"(?<![\w'])(?:i|i'm|i'd|me|my|we|our|us)(?![\w'])")
    _IMPERATIVE = re.compile(
        r"^\s*(?:please\s+)?(?:write|create|generate|develop|design|provide|give|make|produce|draft|compose|explain|"
        r"describe|outline|list|suggest|teach|show|tell|help|build|program|code|craft|publish|post|instruct)\b"
    )

    def __init__(self, lexicon: dict | None = None):
        lex = lexicon or load_lexicon("harm")
        self.cat_re = {c: _terms(lex["categories"][c]) for c in self.CATEGORIES}
        self.re_person = _terms(lex["person_targets"])
        self.re_thing = _terms(lex["thing_targets"])
        self.re_fiction = _terms(lex["fiction_context"])
        self.re_def = _terms(lex["definition_cues"])
        self.re_hist = _terms(lex["history_cues"])
        self.re_deny = _terms(lex["denial_cues"])
        self.re_edu = _terms(lex["education_cues"])
        self.re_intent = _terms(lex["intent_cues"])
        self.re_real = _terms(lex["real_groups"])
        self.re_nons = _terms(lex["nonsense_groups"])
        self.re_imposs = _terms(lex["impossible_acts"])
        self.re_discr = _terms(lex["discrim_acts"])
        self.re_public = _terms(lex["public_entity_cues"])
        self.re_private = _terms(lex["private_possessors"])
        self.re_sens = _terms(lex["sensitive_info"])
        self.re_risky = re.compile("|".join(self.cat_re[c].pattern for c in ("violence", "weapons", "cyber", "fraud")))

    def category_hits(self, t: str) -> dict[str, int]:
        """Count lexicon hits per harm category in normalised text ``t``."""
        return {c: len(r.findall(t)) for c, r in self.cat_re.items()}

    def features(self, text: str) -> dict[str, float]:
        """Return the sparse feature dict of one non-empty prompt."""
        raw = text.translate(_APOS).strip()[:1500]
        t = raw.lower()
        f: dict[str, float] = {}
        toks = _TOKEN.findall(t)
        ngrams(toks, "w:", f)
        hits = self.category_hits(t)
        for c, k in hits.items():
            if k:
                f["c:" + c] = 1.0
        nhit = sum(hits.values())
        f["d:nhit"] = min(nhit, 6) / 6.0
        intent = bool(self.re_intent.search(t)) or bool(self._IMPERATIVE.search(t))
        first = bool(self._FIRST_PERSON.search(t))
        if intent:
            f["d:intent"] = 1.0
        if first:
            f["d:first_person"] = 1.0
        # Object of a risky verb: look at the words that follow each risky term.
        person_obj = thing_obj = False
        for m in self.re_risky.finditer(t):
            window = t[m.end(): m.end() + 45]
            pm, tm = self.re_person.search(window), self.re_thing.search(window)
            if pm and (not tm or pm.start() <= tm.start()):
                person_obj = True
            elif tm:
                thing_obj = True
        if person_obj:
            f["d:risky_person"] = 1.0
        if thing_obj and not person_obj:
            f["d:risky_thing"] = 1.0
        if nhit and not person_obj and not thing_obj:
            f["d:risky_noobj"] = 1.0
        if self.re_person.search(t):
            f["d:person"] = 1.0
        fiction = bool(self.re_fiction.search(t))
        if fiction:
            f["d:fiction"] = 1.0
            if nhit:
                f["d:fiction_risky"] = 1.0
        definitional = bool(self._START_DEF.search(t))
        if definitional:
            f["d:definition"] = 1.0
            if not first:
                f["d:definition_impersonal"] = 1.0
        elif self.re_def.search(t):
            f["d:def_cue"] = 1.0
        hist = bool(self.re_hist.search(t))
        deny = bool(self.re_deny.search(t))
        if hist:
            f["d:history"] = 1.0
        if deny:
            f["d:denial"] = 1.0
        if hist and deny:
            f["d:history_denial"] = 1.0
        if hist and not deny and not first:
            f["d:history_neutral"] = 1.0
        if self.re_edu.search(t):
            f["d:education"] = 1.0
        real, nons = bool(self.re_real.search(t)), bool(self.re_nons.search(t))
        imposs, discr = bool(self.re_imposs.search(t)), bool(self.re_discr.search(t))
        if real:
            f["d:real_group"] = 1.0
        if nons:
            f["d:nonsense_group"] = 1.0
        if imposs:
            f["d:impossible"] = 1.0
        if real and discr and not imposs and not nons:
            f["d:real_discrim"] = 1.0
        if (nons or imposs) and (real or discr):
            f["d:nonsense_discrim"] = 1.0
        sens = bool(self.re_sens.search(t))
        if sens:
            f["d:sensitive"] = 1.0
            if self.re_private.search(t):
                f["d:sensitive_private"] = 1.0
            if self._POSS.search(raw):
                f["d:sensitive_named"] = 1.0
            if self.re_public.search(t):
                f["d:sensitive_public"] = 1.0
        f["d:len"] = math.log1p(len(toks)) / 4.0
        return f

    def category(self, text: str) -> str | None:
        """Return the harm category with most lexicon hits, or None when no category word appears."""
        hits = self.category_hits(normalise(text))
        best = max(hits, key=lambda c: hits[c])
        return best if hits[best] else None
