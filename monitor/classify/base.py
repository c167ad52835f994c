"""Result types shared by the classifier backends."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REFUSAL_LABELS = ("full_refusal", "partial_refusal", "compliance")
HARM_LABELS = ("harmful", "benign")
HARM_CATEGORIES = ("violence", "weapons", "cyber", "fraud", "drugs", "self_harm", "hate", "sexual", "privacy", "other")


@dataclass
class RefusalResult:
    """Per-reply refusal labels (None when the reply is empty) and refusal probabilities (NaN when unscored)."""

    labels: list[str | None]
    scores: np.ndarray
    sources: list[str | None] = field(default_factory=list)  # which backend scored each row ("lexical", "llm_judge")
    info: dict = field(default_factory=dict)  # backend report, e.g. {"budget_exhausted": True, "fallback": 12}

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class HarmResult:
    """Per-prompt harm labels, probabilities of harm and a harm category (None when benign or unknown)."""

    labels: list[str | None]
    scores: np.ndarray
    categories: list[str | None]
    sources: list[str | None] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


# Result `sources` of the models that read only English (the bundled lexical models, the embedding head, the
# fine-tuned encoder): on a text
# in another language their label is a guess (docs/refusal.md, "Texts the classifiers cannot read").
ENGLISH_ONLY_SOURCES = frozenset({"lexical", "embedding", "finetuned"})


def english_only_guesses(texts: list, result, english_only: bool, foreign, labels: list | None = None) -> set[int]:
    """Rows of `result` an English-only model labelled although `foreign(text)` says another language.

    A row's source decides when the result names one (an LLM judge's own rows are read, its lexical fallback's are
    not); else `english_only`, the backend's. Rows without a label (`labels[i] is None`) are no guess."""
    sources = list(getattr(result, "sources", None) or [])
    out = set()
    for i, text in enumerate(texts):
        if labels is not None and labels[i] is None:
            continue
        src = sources[i] if i < len(sources) else None
        if (src in ENGLISH_ONLY_SOURCES if src is not None else english_only) and foreign(text):
            out.add(i)
    return out


def is_text(x) -> bool:
    """True for a non-blank string: the only input a classifier scores."""
    return isinstance(x, str) and bool(x.strip())
