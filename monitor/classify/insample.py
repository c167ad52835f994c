"""Which texts the bundled classifiers were trained on, so `monitor eval` can say when its figures are in-sample.

``models/training_texts.json`` holds a short SHA-256 key of every training reply (refusal model) and training
prompt (harm models), with the model versions they trained. Evaluating on those texts measures memory, not
quality: xstest_dev.jsonl scores F1 1.000 in-sample, while the cross-validated figures are in docs/refusal.md.
The keys are rebuilt from the training scripts' own loaders with ``python -m monitor.classify.insample --write``
after every retraining; a test checks that the versions match the shipped models.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path

FILE = "training_texts.json"
_SPACE = re.compile(r"\s+")


def text_key(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of `text` with runs of white space made one space and the ends trimmed."""
    return hashlib.sha256(_SPACE.sub(" ", text).strip().encode("utf-8")).hexdigest()[:16]


@lru_cache(maxsize=1)
def training_keys() -> dict:
    """The stored keys: refusal_versions and harm_versions (lists), refusal and harm (sets of text keys)."""
    try:
        text = resources.files("monitor.classify").joinpath("models", FILE).read_text("utf-8")
    except FileNotFoundError:
        return {"refusal_versions": [], "harm_versions": [], "refusal": frozenset(), "harm": frozenset()}
    data = json.loads(text)
    return {**data, "refusal": frozenset(data["refusal"]), "harm": frozenset(data["harm"])}


def overlap(replies: list[str], prompts: list[str], refusal_version: str, harm_version: str) -> dict:
    """How many of `replies` and of the distinct `prompts` trained the classifiers of these versions.

    A count is None when that classifier is not one of the bundled models (an LLM judge, another version)."""
    keys = training_keys()
    out: dict = {"replies": len(replies), "prompts": len(set(prompts))}
    out["replies_in_training"] = (sum(text_key(t) in keys["refusal"] for t in replies)
                                  if refusal_version in keys["refusal_versions"] else None)
    # The high-precision suffix changes the threshold, not the training rows.
    from monitor.classify.lexical import HIGH_PRECISION_SUFFIX

    out["prompts_in_training"] = (sum(text_key(p) in keys["harm"] for p in set(prompts))
                                  if harm_version.removesuffix(HIGH_PRECISION_SUFFIX) in keys["harm_versions"] else None)
    return out


def notice(ov: dict) -> str | None:
    """One line saying the figures are in-sample, when any evaluated text was a training text; else None."""
    parts = []
    if ov.get("replies_in_training"):
        parts.append(f"{ov['replies_in_training']:,} of {ov['replies']:,} replies")
    if ov.get("prompts_in_training"):
        parts.append(f"{ov['prompts_in_training']:,} of {ov['prompts']:,} prompts")
    if not parts:
        return None
    return (f"NOTE: {' and '.join(parts)} were used to train the bundled classifiers: these figures are in-sample "
            "(optimistic); see docs/refusal.md for the cross-validated quality")


def _build() -> dict:
    """Collect the training texts with the training scripts' loaders (needs the repo's training/ and ../shared/data)."""
    repo = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(repo / "training"))
    import train_harm  # noqa: E402  (training/ is not a package)
    import train_refusal
    from common import xstest_rows

    from monitor.classify.lexical import _load_json

    replies = [r["response"] for r in xstest_rows()] + [t for t, _ in train_refusal.SYNTHETIC]
    extra, xs, _val = train_harm.load(with_alpaca=False)  # _val: benign val prompts are evaluation only
    prompts = [p for p, _ in extra] + [p for p, _, _ in xs]
    # The fine-tuned model's own rows are a subset of these; its score adds the lexical model's, trained on them all.
    return {"refusal_versions": [_load_json("refusal.json")["version"]],
            "harm_versions": [_load_json("harm.json")["version"], _load_json("harm_embed.json")["version"],
                              _load_json("harm_ft.json")["version"]],
            "refusal": sorted({text_key(t) for t in replies if isinstance(t, str)}),
            "harm": sorted({text_key(p) for p in prompts if isinstance(p, str)})}


if __name__ == "__main__":
    data = _build()
    path = Path(__file__).with_name("models") / FILE
    if "--write" in sys.argv:
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{len(data['refusal']):,} training replies, {len(data['harm']):,} training prompts"
          + (f" -> {path}" if "--write" in sys.argv else " (pass --write to save)"))
