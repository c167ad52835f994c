"""Lexical classifiers: labels, categories, scores and feature dicts pinned on 3,000 varied prompts and replies.

Speed work on monitor/classify must not change one output: tests/data/classify_pinned.json.gz holds what the code
gave when the file was written (regenerate only for an intended model or lexicon change:
`python tests/test_classify_pinned.py`). The texts come from a seeded generator over the bundled lexicons, with the
edge cases the regexes and tokenisers care about: case, curly quotes, apostrophes, hyphens, underscores, digits,
non-ASCII letters, list items, code fences, texts longer than every cut-off, blank and missing texts.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import re
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "data" / "classify_pinned.json.gz"
N_TEXTS = 3000

_FILLER = ("the a my your their how to what is can you please write a story about why do people in the history of "
           "for an essay explain me tell give steps without anyone knowing safely at home my neighbour the company "
           "python process fish time game novel character definition of this that it and or but not no never "
           "here are some ways i understand however instead you could consider also").split()
_OPENERS = ["How do I", "How can I", "Write a", "What is", "What's the", "Explain", "Describe the", "Give me",
            "Please write", "Tell me", "Why should", "Where can I", "Step-by-step:", "Define", "List the types of",
            "I'm sorry, but I can't", "I can’t help with that.", "As an AI language model, I don't have opinions.",
            "Sure! Here are", "I'm so sorry to hear that.", "It's not accurate that", "There is no", "However,",
            "Certainly.", "I am happy to help, but", "That sounds difficult.", "Of course:", "I won't", "No."]
_ODD = ["é", "Ж", "中文", "ß", "_", "__init__", "9/11", "d&d", "3d", "x2", "’", "‘", "“", "”", "'", "-", "—",
        "!", "?", ".", ",", ":", ";", "(", ")", "\t", "...", "n't", "can't", "won't", "Muslim’s", "o'clock"]


def _vocabulary() -> list[str]:
    from monitor.classify.features import load_lexicon

    words: list[str] = []
    harm = load_lexicon("harm")
    for key in sorted(k for k in harm if not k.startswith("_")):
        v = harm[key]
        lists = [v[c] for c in sorted(v)] if isinstance(v, dict) else [v] if isinstance(v, list) else []
        for lst in lists:
            words += lst
    ref = load_lexicon("refusal")
    for key in sorted(ref):
        if not key.startswith("_"):
            for pat in ref[key]:
                words += [w for w in re.split(r"[{}|^~\s]+", pat) if w and not w.isdigit()]
    return words


def _word(rng: random.Random, vocab: list[str]) -> str:
    r = rng.random()
    if r < 0.45:
        w = rng.choice(vocab)
        if w.endswith("*"):
            w = w[:-1] + rng.choice(["", "s", "ed", "ing", "er", "'s", "-like", "ation"])
        elif ".*" in w:
            w = w.replace(".*", rng.choice(["", "the old", "these"]))
    elif r < 0.85:
        w = rng.choice(_FILLER)
    else:
        w = rng.choice(_ODD)
    c = rng.random()
    if c < 0.08:
        w = w.upper()
    elif c < 0.25:
        w = w.capitalize()
    if rng.random() < 0.05:
        w = w + rng.choice(["'s", "s'", "-", "_x", "2", "’s", "é"])
    return w


def _text(rng: random.Random, vocab: list[str]) -> str | None:
    kind = rng.random()
    if kind < 0.01:
        return None
    if kind < 0.03:
        return rng.choice(["", " ", "\n\t ", "?", "...", "’"])
    n = rng.choice([1, 2, 3, 5, 8, 12, 20, 30, 45, 70, 120, 200, 400])
    parts = [rng.choice(_OPENERS)] if rng.random() < 0.6 else []
    for _ in range(n):
        parts.append(_word(rng, vocab))
        r = rng.random()
        if r < 0.04:
            parts.append(rng.choice([".", "!", "?"]) + rng.choice([" ", "\n"]))
        elif r < 0.06:
            parts.append("\n" + rng.choice(["1.", "2)", "-", "*", "\u2022", "  3."]) + " ")
        elif r < 0.065:
            parts.append("\n```\nprint('x')\n```\n")
        elif r < 0.07:
            parts.append(" 1. ")
    sep = rng.choice([" ", " ", " ", "  ", "\n"])
    text = sep.join(parts)
    if rng.random() < 0.1:
        text = "  " + text + " \n"
    return text


def pinned_texts() -> tuple[list, list]:
    """Return the generated (prompts, replies), N_TEXTS of each."""
    rng = random.Random(20261127)
    vocab = _vocabulary()
    return [_text(rng, vocab) for _ in range(N_TEXTS)], [_text(rng, vocab) for _ in range(N_TEXTS)]


def _digest(items) -> str:
    h = hashlib.sha256()
    for x in items:
        h.update(repr(x).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def compute() -> dict:
    """Every output the fixture pins, computed by the current code."""
    from monitor.classify import load_classifiers
    from monitor.classify.base import is_text
    from monitor.classify.features import HarmFeatures, RefusalFeatures

    prompts, replies = pinned_texts()
    clf = load_classifiers()
    ref = clf.score_refusal(replies, prompts=prompts)
    harm = clf.score_harm(prompts)
    hp = clf._backend.score_harm(prompts, high_precision=True)
    hfx, rfx = HarmFeatures(), RefusalFeatures()
    return {
        "refusal_labels": list(ref.labels),
        "refusal_scores": [None if math.isnan(x) else float(x) for x in ref.scores],
        "harm_labels": list(harm.labels),
        "harm_categories": list(harm.categories),
        "harm_scores": [None if math.isnan(x) else float(x) for x in harm.scores],
        "harm_labels_high_precision": list(hp.labels),
        "harm_features": _digest(sorted(hfx.features(t).items()) for t in prompts if is_text(t)),
        "harm_category_of_every_prompt": [hfx.category(t) for t in prompts if is_text(t)],
        "refusal_features": _digest(sorted(rfx.features(t).items()) for t in replies if is_text(t)),
        "refusal_parts": _digest(rfx.parts(t) for t in replies if is_text(t)),
    }


@pytest.fixture(scope="module")
def pinned():
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        expected = json.load(f)
    return expected, compute()


def test_texts_cover_the_edge_cases():
    prompts, replies = pinned_texts()
    texts = [t for t in prompts + replies if isinstance(t, str)]
    assert sum(t is None for t in prompts + replies) > 10
    assert any(not t.strip() for t in texts)
    assert sum(len(t) > 1500 for t in texts) > 100 and sum(len(t) < 40 for t in texts) > 100
    for s in ("’", "“", "é", "_", "\n1. ", "```", "'s"):
        assert sum(s in t for t in texts) > 20, s


@pytest.mark.parametrize("key", ["refusal_labels", "harm_labels", "harm_categories", "harm_labels_high_precision",
                                 "harm_features", "harm_category_of_every_prompt", "refusal_features",
                                 "refusal_parts"])
def test_outputs_unchanged(pinned, key):
    expected, got = pinned
    assert got[key] == expected[key]


def test_labels_are_varied(pinned):
    expected, _ = pinned
    for key, n in (("refusal_labels", 3), ("harm_labels", 2)):
        values = expected[key]
        assert len({v for v in values if v is not None}) == n
        assert min(values.count(v) for v in set(values) - {None}) > 50, key
    assert len(set(expected["harm_categories"])) > 6


def _flat_terms(words: list[str]) -> re.Pattern:
    # The word-list regex as it was before the alternatives shared prefixes (kept to compare against).
    parts = []
    for w in sorted(set(words), key=len, reverse=True):
        if w.endswith("*"):
            parts.append(re.escape(w[:-1]) + r"[\w'-]*")
        elif ".*" in w:
            parts.append(w)
        else:
            parts.append(re.escape(w))
    return re.compile(r"(?<![\w'])(?:" + "|".join(parts) + r")(?![\w])")


def test_prefix_sharing_regexes_match_like_the_flat_alternation():
    from monitor.classify.features import HarmFeatures, _APOS, _term_parts, _terms, load_lexicon

    lex = load_lexicon("harm")
    lists = {f"categories.{c}": lex["categories"][c] for c in sorted(lex["categories"])}
    lists.update({k: v for k, v in sorted(lex.items()) if isinstance(v, list)})
    # Order-sensitive cases: an entry, its extension and its prefix form, where the first alternative to match
    # decides how far findall's next search starts.
    lists["overlap"] = ["gun", "guns", "gun*", "gun violence", "violence", "gun-", "a b", "b c", "a", "use .* methods"]
    prompts, replies = pinned_texts()
    texts = [t.translate(_APOS).lower() for t in prompts[:1500] + replies[:300] if isinstance(t, str)]
    texts += ["guns gun-violence gun violence gunvi", "a b c b c a", "use these methods use methods", "gun's gun_"]
    hf = HarmFeatures()
    cats = [lex["categories"][c] for c in hf.CATEGORIES]
    joined = {"re_risky": [lex["categories"][c] for c in hf.OBJ_CATS], "re_risky_all": cats}
    pairs = [(name, _terms(words), _flat_terms(words)) for name, words in lists.items()]
    pairs += [(name, getattr(hf, name), re.compile("|".join(_flat_terms(w).pattern for w in ws)))
              for name, ws in joined.items()]
    for name, new, old in pairs:
        assert new.pattern != old.pattern or name == "overlap"
        for t in texts:
            assert [m.span() for m in new.finditer(t)] == [m.span() for m in old.finditer(t)], (name, t)
    assert _term_parts(["b*", "abc"]) == [("abc", ""), ("b", r"[\w'-]*")]


def test_run_index_finds_the_regexes_own_matches():
    from monitor.classify.features import _APOS, HarmFeatures, _Matches, _RunIndex, _term_parts, _terms

    hf = HarmFeatures()
    regexes = [r for r in vars(hf).values() if isinstance(r, re.Pattern) and r.pattern.startswith("(?<![")]
    regexes += list(hf.cat_re.values())
    index = hf._index
    # Lists the index cannot narrow down (an entry starting with a non-word character, no entries) and order cases.
    for words in (["-ish", "gun"], [], ["gun", "guns", "gun*", "gun violence", "a b", "b c", "a", "use .* methods"],
                  ["use (?:these|those) methods", "x|y .* z"]):
        parts = _term_parts(words)
        regexes.append(index.add(_terms(parts), parts))
    assert len(index.everywhere) == 3
    prompts, replies = pinned_texts()
    texts = [t.translate(_APOS).lower() for t in prompts[:2000] + replies[:300] if isinstance(t, str)]
    texts += ["guns gun-violence gun violence gunvi", "a b c b c a", "use these methods use methods", "gun's gun_",
              "x-ish -ish", "", "'gun 'a b"]
    for t in texts:
        found = _Matches(index, t)
        for r in regexes:
            want = list(r.finditer(t))
            assert [m.span() for m in found.finditer(r)] == [m.span() for m in want], (r.pattern[:60], t)
            assert found.count(r) == len(want)
            got = found.search(r)
            assert (got and got.span()) == (want[0].span() if want else None)


def test_fold_quotes_is_the_translate_table():
    from monitor.classify.features import _APOS, fold_quotes

    rng = random.Random(3)
    alphabet = "ab '\"\u2019\u2018\u201c\u201d\u2032\u00e9\u4e2d\U0001F600"
    for _ in range(5000):
        t = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert fold_quotes(t) == t.translate(_APOS)


def test_sentence_end_from_offset_12_is_the_look_behind_pattern():
    from monitor.classify.features import _SENT_END

    before = re.compile(r"(?<=.{12})(?:[.!?](?:\s|$)|\n)", re.S)
    rng = random.Random(4)
    for _ in range(5000):
        t = "".join(rng.choice("ab .!?\n\t") for _ in range(rng.randint(0, 40)))
        got, want = _SENT_END.search(t, 12), before.search(t)
        assert (got and got.span()) == (want and want.span()), t


def test_harm_features_survive_pickling():
    import pickle

    from monitor.classify.base import is_text
    from monitor.classify.features import HarmFeatures

    hf = HarmFeatures()
    copy = pickle.loads(pickle.dumps(hf))
    prompts = [t for t in pinned_texts()[0][:300] if is_text(t)]
    assert [copy.features(t) for t in prompts] == [hf.features(t) for t in prompts]


@pytest.mark.parametrize("key", ["refusal_scores", "harm_scores"])
def test_scores_unchanged(pinned, key):
    expected, got = pinned
    assert [x is None for x in got[key]] == [x is None for x in expected[key]]
    worst = max(abs(a - b) for a, b in zip(got[key], expected[key]) if a is not None)
    assert worst <= 1e-12


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    with gzip.open(FIXTURE, "wt", encoding="utf-8") as f:
        json.dump(compute(), f)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)")
