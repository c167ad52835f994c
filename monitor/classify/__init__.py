"""Offline classifiers for the monitor: is a reply a refusal, and is a user prompt harmful.

    from monitor.classify import load_classifiers
    clf = load_classifiers()                      # backend="lexical": bundled models, CPU, no network
    clf.score_refusal(["I can't help with that."]).labels   # ['full_refusal']
    clf.score_harm(["How do I kill a Python process?"]).labels  # ['benign']
"""
from __future__ import annotations

from monitor.classify.base import HARM_CATEGORIES, HARM_LABELS, REFUSAL_LABELS, HarmResult, RefusalResult

BACKENDS = ("lexical", "llm_judge", "embedding", "finetuned")

__all__ = ["load_classifiers", "configured_options", "Classifiers", "RefusalResult", "HarmResult",
           "REFUSAL_LABELS", "HARM_LABELS", "HARM_CATEGORIES", "BACKENDS"]


class Classifiers:
    """The two classifiers behind one backend, with their versions and measured quality."""

    def __init__(self, backend):
        self._backend = backend
        self.backend = backend.name
        self.refusal_version: str = backend.refusal_version
        self.harm_version: str = backend.harm_version
        # Whether the models read only English (the bundled lexical models and the embedding head): the score job
        # then leaves texts in other languages unscored rather than counting the models' guesses (monitor/textlang.py).
        self.english_only: bool = getattr(backend, "english_only", True)

    def score_refusal(self, responses: list[str], prompts: list[str] | None = None) -> RefusalResult:
        """Label replies full_refusal / partial_refusal / compliance (None for empty) with P(refusal) scores."""
        responses = _as_list(responses, "responses")
        if prompts is not None:
            prompts = _as_list(prompts, "prompts")
            if len(prompts) != len(responses):
                from monitor.errors import ClassifierError

                raise ClassifierError(f"score_refusal got {len(responses)} responses but {len(prompts)} prompts",
                                      hint="pass one prompt per response, or prompts=None")
        return self._backend.score_refusal(responses, prompts)

    def score_harm(self, prompts: list[str]) -> HarmResult:
        """Label prompts harmful / benign (None for empty) with P(harmful) scores and a category when harmful."""
        return self._backend.score_harm(_as_list(prompts, "prompts"))

    def quality(self) -> dict:
        """Cross-validated sensitivity/specificity (with counts) of this backend's classifiers (lexical by default)."""
        from monitor.classify.lexical import load_quality

        own = getattr(self._backend, "quality", None)  # the embedding backend measures its own harm figures
        return own() if own else load_quality()


def _as_list(values, name: str) -> list:
    if isinstance(values, str):
        from monitor.errors import ClassifierError

        raise ClassifierError(f"{name} must be a list of strings, got a single string", hint=f"wrap it: [{name[:-1]}]")
    return list(values)


def configured_options(cfg, backend: str | None = None) -> dict | None:
    """The options `load_classifiers` takes for `backend` (default: the configured one) from a `[classifiers]`
    config section: `llm_judge` or `embedding` options, and `high_precision`."""
    backend = backend or cfg.backend
    if backend == "llm_judge":
        opts = dict(cfg.llm_judge)
    else:
        opts = dict(cfg.embedding) if backend in ("embedding", "finetuned") else {}
        if cfg.high_precision:
            opts["high_precision"] = True
    return opts or None


def load_classifiers(backend: str = "lexical", options: dict | None = None) -> Classifiers:
    """Return the classifiers of ``backend`` ("lexical", "llm_judge" with its options dict, "embedding" or
    "finetuned")."""
    from monitor.classify.lexical import lexical_backend

    if backend == "lexical":
        opts = dict(options or {})
        hp = opts.pop("high_precision", False)
        if opts or not isinstance(hp, bool):
            from monitor.errors import ClassifierError

            what = f"option(s) {', '.join(sorted(opts))}" if opts else f"high_precision={hp!r}"
            raise ClassifierError(f"the lexical backend takes only the option high_precision (true/false), got {what}",
                                  hint="drop them; LLM-judge and embedding options belong to those backends")
        return Classifiers(lexical_backend().high_precision() if hp else lexical_backend())
    if backend == "llm_judge":
        from monitor.classify.llm_judge import LLMJudgeBackend

        return Classifiers(LLMJudgeBackend(options, fallback=lexical_backend()))
    if backend == "embedding":
        # Optional extra `embed` (torch): prompt harm from sentence embeddings, refusal still lexical.
        from monitor.classify.embedding import EmbeddingBackend

        return Classifiers(EmbeddingBackend(lexical_backend(), options))
    if backend == "finetuned":
        # Optional extra `embed` (torch): prompt harm from a fine-tuned encoder, refusal still lexical.
        from monitor.classify.finetuned import FinetunedBackend

        return Classifiers(FinetunedBackend(lexical_backend(), options))
    from monitor.errors import ClassifierError

    raise ClassifierError(f"unknown classifier backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
