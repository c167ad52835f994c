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


def is_text(x) -> bool:
    """True for a non-blank string: the only input a classifier scores."""
    return isinstance(x, str) and bool(x.strip())
