"""The default backend: bundled linear models over n-gram and hand-written features, numpy only at run time."""
from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from importlib import resources
from itertools import islice, repeat

import numpy as np

from monitor.classify.base import HarmResult, RefusalResult, is_text
from monitor.classify.features import HarmFeatures, RefusalFeatures


CHUNK = 4096
_SEP = object()  # ends a reply's tokens in StackedScorer.margins(); equal to no token


def _load_json(name: str) -> dict:
    from monitor.errors import ClassifierError

    try:
        text = resources.files("monitor.classify").joinpath("models", name).read_text("utf-8")
    except FileNotFoundError as e:
        raise ClassifierError(f"bundled model file models/{name} is missing",
                              hint="re-install the package or run the training scripts in training/") from e
    return json.loads(text)


class LinearScorer:
    """A logistic model stored as {feature name: weight}, a bias and Platt calibration (a, b)."""

    def __init__(self, spec: dict):
        self.weights: dict[str, float] = spec["weights"]
        self.bias = float(spec["bias"])
        self.a, self.b = (float(x) for x in spec["platt"])

    def margin(self, feats: dict[str, float]) -> float:
        get = self.weights.get
        s = self.bias
        for k, v in feats.items():
            w = get(k)
            if w is not None:
                s += w * v
        return s

    def proba(self, margins: np.ndarray) -> np.ndarray:
        z = np.clip(self.a * margins + self.b, -40.0, 40.0)
        return 1.0 / (1.0 + np.exp(-z))

    def explain(self, feats: dict[str, float], top: int = 8) -> list[tuple[str, float]]:
        """The features that pushed this text's score most, with their contributions."""
        contrib = [(k, self.weights[k] * v) for k, v in feats.items() if k in self.weights]
        return sorted(contrib, key=lambda kv: -abs(kv[1]))[:top]


class StackedScorer:
    """Several LinearScorers over RefusalFeatures.parts(), scoring a batch for every model at once."""

    # N-gram tokens are looked up directly (a word, or a (word, next word) tuple per namespace), so no feature-name
    # strings are built at scoring time; dense cues keep their values. Same margins as LinearScorer.margin() on
    # features() (tests/test_classify_refusal.py).

    _NS = ("h", "s", "t")

    def __init__(self, scorers: list[LinearScorer]):
        names = sorted(set().union(*(sc.weights for sc in scorers)))
        self.unknown = len(names)
        self.W = np.zeros((len(names) + 1, len(scorers)))  # last row: weight 0 for unknown features
        self.uni: dict[str, dict] = {ns: {} for ns in self._NS}
        self.bi: dict[str, dict] = {ns: {} for ns in self._NS}
        self.dense: dict[str, int] = {}
        for i, k in enumerate(names):
            for j, sc in enumerate(scorers):
                self.W[i, j] = sc.weights.get(k, 0.0)
            ns, _, rest = k.partition(":")
            if ns in self.uni:
                # Tokens never contain "_" (see features._TOKEN), so "h:a_b" is the bigram (a, b).
                a, sep, b = rest.partition("_")
                if sep:
                    self.bi[ns][(a, b)] = i
                else:
                    self.uni[ns][rest] = i
            else:
                self.dense[k] = i
        self.bias = np.array([sc.bias for sc in scorers])

    def margins(self, parts: list[tuple]) -> np.ndarray:
        """Margins (n, n_models) of a batch of ``RefusalFeatures.parts()`` outputs."""
        n = len(parts)
        if not n:
            return np.zeros((0, self.W.shape[1]))
        unk = self.unknown
        # Each namespace's tokens of the whole batch in one list, a separator after every reply (never a feature, so
        # the bigrams across replies fall on the unknown column), looked up by one map() each instead of per reply.
        sep = _SEP
        hs: list = []
        ss: list = []
        ts: list = []
        lens = np.empty((3, n), np.int64)
        dcols: list[int] = []
        dvals: list[float] = []
        dlens: list[int] = []
        dget = self.dense.get
        for i, (htok, stok, ttok, dense) in enumerate(parts):
            hs += htok
            hs.append(sep)
            ss += stok
            ss.append(sep)
            ts += ttok
            ts.append(sep)
            lens[0, i], lens[1, i], lens[2, i] = len(htok), len(stok), len(ttok)
            dcols += map(dget, dense, repeat(unk))
            dvals += dense.values()
            dlens.append(len(dense))
        rows = np.arange(n, dtype=np.int64)
        ncol = self.W.shape[0]
        cols: list[np.ndarray] = []
        rs: list[np.ndarray] = []
        # features() holds each n-gram once per reply: keep the first (row, column) of each, in order, so every
        # reply's terms are summed in the order they were before (unigrams, then bigrams, of each namespace).
        for ns, toks, k in (("h", hs, 0), ("s", ss, 1), ("t", ts, 2)):
            r = np.repeat(rows, lens[k] + 1)
            get = self.uni[ns].get
            grams = [(np.fromiter(map(get, toks, repeat(unk)), np.int64, len(toks)), r)]
            if ns != "t":
                bget = self.bi[ns].get
                grams.append((np.fromiter(map(bget, zip(toks, islice(toks, 1, None)), repeat(unk)), np.int64,
                                          len(toks) - 1), r[:-1]))
            for c, rr in grams:
                _, first = np.unique(rr * ncol + c, return_index=True)
                first.sort()
                cols.append(c[first])
                rs.append(rr[first])
        # Per reply the order must be h unigrams, h bigrams, s unigrams, ...: bincount adds each bin in array order.
        c = np.concatenate(cols)
        r = np.concatenate(rs)
        dc = np.asarray(dcols, np.int64)
        dr = np.repeat(rows, dlens)
        dv = np.asarray(dvals, float)
        out = np.empty((n, self.W.shape[1]))
        for j in range(self.W.shape[1]):
            w = self.W[:, j]
            out[:, j] = (np.bincount(r, weights=w[c], minlength=n) + np.bincount(dr, weights=w[dc] * dv, minlength=n)
                         + self.bias[j])
        return out


class LexicalBackend:
    """Scores refusals and prompt harm with the bundled lexical models."""

    name = "lexical"

    def __init__(self):
        ref = _load_json("refusal.json")
        harm = _load_json("harm.json")
        self.refusal_version: str = ref["version"]
        self.harm_version: str = harm["version"]
        self._ref = LinearScorer(ref["refusal"])
        self._part = LinearScorer(ref["partial"])
        self.refusal_threshold = float(ref["thresholds"]["refusal"])
        self.partial_threshold = float(ref["thresholds"]["partial"])
        self._harm = LinearScorer(harm["harm"])
        self.harm_threshold = float(harm["thresholds"]["harmful"])
        self.harm_threshold_high_precision = float(harm["thresholds"]["harmful_high_precision"])
        self.labels_high_precision = False  # see high_precision()
        self._stack = StackedScorer([self._ref, self._part])
        self._rfx = RefusalFeatures()
        self._hfx = HarmFeatures()

    def high_precision(self) -> "LexicalBackend":
        """This backend labelling prompts harmful only at the high-precision threshold (`[classifiers]
        high_precision`): a copy sharing the loaded models, with its own harm version so rows scored either way are
        never mixed (the score job re-scores every turn once when the setting changes)."""
        hp = copy.copy(self)
        hp.harm_threshold = self.harm_threshold_high_precision
        hp.harm_version = self.harm_version + HIGH_PRECISION_SUFFIX
        hp.labels_high_precision = True
        return hp

    def quality(self) -> dict:
        """The bundled quality figures, for the threshold this backend labels with."""
        q = load_quality()
        return high_precision_quality(q) if self.labels_high_precision else q

    def score_refusal(self, responses: list, prompts: list | None = None) -> RefusalResult:
        """Label each reply full_refusal / partial_refusal / compliance; the lexical model ignores ``prompts``."""
        n = len(responses)
        m_ref = np.full(n, np.nan)
        m_part = np.full(n, np.nan)
        idx = [i for i, text in enumerate(responses) if is_text(text)]
        parts = self._rfx.parts
        for lo in range(0, len(idx), CHUNK):  # chunks bound the memory of the per-feature lists
            part = idx[lo: lo + CHUNK]
            m = self._stack.margins([parts(responses[i]) for i in part])
            m_ref[part] = m[:, 0]
            m_part[part] = m[:, 1]
        p_ref = self._ref.proba(m_ref)
        p_part = self._part.proba(m_part)
        refused = p_ref >= self.refusal_threshold
        partial = p_part >= self.partial_threshold
        labels: list[str | None] = [None] * n
        for i in range(n):
            if not math.isnan(p_ref[i]):
                labels[i] = ("partial_refusal" if partial[i] else "full_refusal") if refused[i] else "compliance"
        sources = [None if lab is None else self.name for lab in labels]
        return RefusalResult(labels, p_ref, sources, {"backend": self.name, "scored": sum(s is not None for s in sources)})

    def score_harm(self, prompts: list, high_precision: bool = False) -> HarmResult:
        """Label each prompt harmful / benign with a harm category where the lexicon names one."""
        n = len(prompts)
        margins = np.full(n, np.nan)
        feats: list[dict | None] = [None] * n
        for i, text in enumerate(prompts):
            if is_text(text):
                feats[i] = self._hfx.features(text)
                margins[i] = self._harm.margin(feats[i])
        p = self._harm.proba(margins)
        t = self.harm_threshold_high_precision if high_precision else self.harm_threshold
        labels: list[str | None] = [None] * n
        cats: list[str | None] = [None] * n
        for i in range(n):
            if feats[i] is None:
                continue
            if p[i] >= t:
                labels[i] = "harmful"
                cats[i] = self._hfx.category(prompts[i]) or "other"
            else:
                labels[i] = "benign"
        sources = [None if lab is None else self.name for lab in labels]
        return HarmResult(labels, p, cats, sources, {"backend": self.name, "scored": sum(s is not None for s in sources)})

    def explain_refusal(self, text: str) -> list[tuple[str, float]]:
        """Top feature contributions to one reply's refusal score (for debugging a label)."""
        return self._ref.explain(self._rfx.features(text))

    def explain_harm(self, text: str) -> list[tuple[str, float]]:
        """Top feature contributions to one prompt's harm score."""
        return self._harm.explain(self._hfx.features(text))


HIGH_PRECISION_SUFFIX = "+high_precision"


def high_precision_quality(q: dict) -> dict:
    """Quality figures for harm labels made at the high-precision threshold: the harm section's `high_precision`
    figures and the joint matrix measured at that threshold. The rate correction must use the error rates of the
    threshold the labels were made with."""
    q = dict(q)
    harm, joint = q.get("harm"), q.get("joint")
    if isinstance(harm, dict) and isinstance(harm.get("high_precision"), dict):
        q["harm"] = {**harm, **harm["high_precision"]}
    if isinstance(joint, dict) and "counts_high_precision" in joint:
        q["joint"] = {**joint, "counts": joint["counts_high_precision"],
                      "harm_threshold": joint.get("harm_threshold_high_precision")}
    return q


@lru_cache(maxsize=1)
def lexical_backend() -> LexicalBackend:
    """The process-wide lexical backend (model files are parsed once)."""
    return LexicalBackend()


def load_quality() -> dict:
    """The bundled CV quality figures (sensitivity/specificity with counts) of both lexical classifiers."""
    return _load_json("quality.json")
