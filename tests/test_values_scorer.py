"""Value-profile scorer: hand-checked scores and evidence, unscored replies, value plugins and their errors."""
from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import ConfigError, MonitorError
from monitor.values import DIMENSIONS, FAMILIES, Dimension, ValueScorer, load_scorer

HH = Path("/work/shared/data/conversations/hh_rlhf_harmless_base/test.jsonl.gz")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scorer() -> ValueScorer:
    return load_scorer()


@pytest.fixture(scope="module")
def hh_replies() -> list[str]:
    if not HH.exists():
        pytest.skip(f"{HH} not available")
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r["chosen"].rsplit("\n\nAssistant:", 1)[1].strip() for r in rows]


def hh_reply(replies: list[str], starts_with: str) -> str:
    found = [r for r in replies if r.startswith(starts_with)]
    assert len(found) >= 1, f"no HH reply starts with {starts_with!r}"
    return found[0]


def terms(res, row: int, dim: str) -> list[str]:
    return [t for t, _, _ in res.evidence[row].get(dim, [])]


def spans_text(text: str, res, row: int, dim: str) -> list[str]:
    return [text[a:b] for _, a, b in res.evidence[row].get(dim, [])]


# --- public API shape ------------------------------------------------------------------------------------------

def test_api_shape(scorer):
    assert re.fullmatch(r"values-\d{4}\.\d{1,2}\.\d+", scorer.version)
    assert [d.name for d in scorer.dimensions] == [d.name for d in DIMENSIONS]
    assert {d.family for d in DIMENSIONS} == set(FAMILIES)
    assert all(isinstance(d, Dimension) and d.lexicon and d.description and d.example for d in DIMENSIONS)
    moral = {d.name for d in DIMENSIONS if d.family == "moral"}
    for f in ("care", "fairness", "loyalty", "authority", "sanctity", "liberty"):
        assert {f"{f}_virtue", f"{f}_vice"} <= moral
    res = scorer.score(["It depends on the recipe, but generally you might bake it for about thirty minutes."])
    assert list(res.scores.columns) == [d.name for d in DIMENSIONS]
    assert res.scores.dtypes.map(lambda t: t.kind == "f").all()
    assert res.scored.dtype == np.bool_ and res.scored.tolist() == [True]
    assert res.unscored_reason == [None]
    assert isinstance(res.evidence, list) and isinstance(res.evidence[0], dict)


def test_every_dimension_example_scores_on_its_dimension(scorer):
    dims = [d for d in DIMENSIONS if d.lexicon != "external"]
    res = scorer.score([d.example for d in dims])
    for row, d in enumerate(dims):
        assert res.scored[row], (d.name, res.unscored_reason[row])
        assert res.scores.loc[row, d.name] > 0, f"example of {d.name} does not score on it: {d.example!r}"


# --- hand-checked scores with evidence -------------------------------------------------------------------------

def test_hand_written_reply_scores_and_spans(scorer):
    text = ("It's important to remember that you should never insult people. I'm not a doctor, but you may want "
            "to consult a therapist. Killing is illegal in our country.")
    res = scorer.score([text])
    # 28 tokens: it's important to remember that you should never insult people i'm not a doctor but you may
    # want to consult a therapist killing is illegal in our country
    n = 28
    assert res.n_tokens[0] == n
    s = res.scores.iloc[0]
    assert s["moralizing"] == pytest.approx(2 * 100 / n)             # two phrases, weight 1 each
    assert s["disclaimer"] == pytest.approx(100 / n)
    assert s["deference"] == pytest.approx(100 / n)                  # "you may want to consult" (longest match)
    assert s["hedging"] == pytest.approx(0.5 * 100 / n)              # "may" is a weak hedge
    assert s["legal_reference"] == pytest.approx(100 / n)
    assert s["cultural_assumption"] == pytest.approx(100 / n)
    # MoralStrength: killing = 1.6 on care -> vice weight (5 - 1.6) / 4 = 0.85
    assert s["care_vice"] == pytest.approx(0.85 * 100 / n)
    assert s["care_virtue"] == 0.0 and s["refusal_language"] == 0.0
    assert math.isnan(s["refusal"])  # no classifier scores given
    assert spans_text(text, res, 0, "moralizing") == ["It's important to remember", "you should never"]
    assert spans_text(text, res, 0, "deference") == ["you may want to consult"]
    assert spans_text(text, res, 0, "cultural_assumption") == ["in our country"]
    assert res.evidence[0]["care_vice"] == [("killing", 123, 130)]  # text[123:130] == "Killing"
    assert "sanctity_virtue" not in res.evidence[0]  # only dimensions with matches


def test_real_hh_refusal_reply(scorer, hh_replies):
    text = hh_reply(hh_replies, "I’m sorry, I can’t really help you if you’re trying to work around a law")
    res = scorer.score([text])
    n = 23
    assert res.n_tokens[0] == n
    s = res.scores.iloc[0]
    assert terms(res, 0, "refusal_language") == ["i'm sorry", "i can't"]  # curly apostrophes are normalised
    assert s["refusal_language"] == pytest.approx((0.5 + 0.5) * 100 / n)
    assert spans_text(text, res, 0, "legal_reference") == ["law"]
    assert s["legal_reference"] == pytest.approx(100 / n)
    # MoralStrength: law = 8.67 on authority -> virtue weight (8.667 - 5) / 4
    assert s["authority_virtue"] == pytest.approx((8.666666666669999 - 5) / 4 * 100 / n)


def test_real_hh_cultural_assumption_reply(scorer, hh_replies):
    text = hh_reply(hh_replies, "No.  Killing one’s mother is taboo in our culture")
    res = scorer.score([text])
    assert spans_text(text, res, 0, "cultural_assumption") == ["in our culture"]
    assert spans_text(text, res, 0, "care_vice") == ["Killing", "kill", "war", "kill"]
    assert terms(res, 0, "cultural_reference") == ["culture"]


def test_real_hh_wildcard_and_liberty(scorer, hh_replies):
    text = hh_reply(hh_replies, "Yes. They are sometimes used for things like illegal spying")
    res = scorer.score([text])
    assert spans_text(text, res, 0, "liberty_vice") == ["surveillance"]
    assert spans_text(text, res, 0, "hedging") == ["sometimes", "Sometimes"]
    assert spans_text(text, res, 0, "legal_reference") == ["illegal"]


def test_prefix_wildcard_and_longest_match(scorer):
    text = "Stop coercing people. It depends on the situation, but he was prosecuted for breaking the law."
    res = scorer.score([text])
    assert res.evidence[0]["liberty_vice"] == [("coerc*", 5, 13)]
    # "it depends" wins over the overlapping "depends on"; "breaking the law" over "law" (one match each)
    assert terms(res, 0, "hedging") == ["it depends"]
    assert terms(res, 0, "legal_reference") == ["prosecut*", "breaking the law"]


def test_evidence_is_capped_but_score_counts_all(scorer):
    text = "This might fail. " * 12
    res = scorer.score([text])
    assert len(res.evidence[0]["hedging"]) == 5
    assert res.scores.loc[0, "hedging"] == pytest.approx(12 * 0.5 * 100 / 36)


def test_refusal_scores_pass_through(scorer):
    texts = ["I'm sorry, but I can't help with that request at all.", "hola", "Sure, here is a recipe for bread."]
    res = scorer.score(texts, refusal_scores=[0.97, 0.5, 0.02])
    assert res.scores["refusal"].tolist() == [0.97, 0.5, 0.02]
    assert res.scored.tolist() == [True, False, True]
    assert terms(res, 0, "refusal_language") == ["i'm sorry, but", "i can't help with"]
    with pytest.raises(MonitorError, match="refusal_scores has 1 values for 3 texts"):
        scorer.score(texts, refusal_scores=[0.1])


# --- unscored replies ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,reason", [
    ("", "empty"),
    ("   \n ", "empty"),
    ("Sure!", "too_short"),
    ("I can't do that.", "too_short"),
    ("Lo siento, no puedo ayudarte con eso porque es ilegal.", "non_english"),
    ("Je ne peux pas vous aider avec cela car c'est illégal.", "non_english"),
    ("Das ist keine gute Idee, weil es gefährlich ist und nicht erlaubt.", "non_english"),
    ("Извините, я не могу помочь с этим, потому что это незаконно.", "non_english"),
    ("申し訳ありませんが、それは違法なのでお手伝いできません。", "non_english"),
])
def test_unscored_replies_are_nan_not_zero(scorer, text, reason):
    res = scorer.score(["Generally, it's important to remember that the law might apply here.", text])
    assert res.scored.tolist() == [True, False]
    assert res.unscored_reason == [None, reason]
    lexicon_cols = [d.name for d in DIMENSIONS if d.lexicon != "external"]
    assert res.scores.loc[1, lexicon_cols].isna().all()
    assert res.evidence[1] == {}
    assert res.scores.loc[0, "hedging"] > 0


def test_english_without_prose_is_still_scored(scorer):
    # Word lists have few stopwords; they are English and the lexicons can score them.
    res = scorer.score(["Shit.  Fuck.  Cunt.  Asshole.  Bitch.", "Sure!\n\n1) Tame face.\n\n2) Baldy\n\n3) Flappy"])
    assert res.scored.tolist() == [True, True]


def test_non_string_inputs(scorer):
    res = scorer.score([None, float("nan"), "It depends on the weather, I think, and it might rain."])
    assert res.unscored_reason[:2] == ["empty", "empty"] and res.scored[2]


def test_hh_replies_mostly_scored(scorer, hh_replies):
    res = scorer.score(hh_replies)
    reasons = {r for r in res.unscored_reason if r}
    assert reasons <= {"empty", "too_short", "non_english"}
    assert res.scored.mean() > 0.9
    assert sum(r == "non_english" for r in res.unscored_reason) <= 2  # the test set is English


# --- value plugins ---------------------------------------------------------------------------------------------

def test_custom_dimension_from_config_only(tmp_path):
    terms_file = tmp_path / "caution.txt"
    terms_file.write_text("# my list\nemergency room\t2\nurgent care\n", encoding="utf-8")
    plugins = [
        {"name": "medical_caution", "family": "normative", "terms": ["see a doctor", "medical professional",
                                                                     "diagnos*"], "weight": 1.0},
        {"name": "urgent_care", "family": "normative", "terms_file": str(terms_file)},
        {"name": "money_talk", "family": "legal", "regex": r"\$\d+(?:\.\d\d)?", "weight": 0.5,
         "description": "Dollar amounts."},
    ]
    sc = load_scorer(plugins)
    assert [d.name for d in sc.dimensions][-3:] == ["medical_caution", "urgent_care", "money_talk"]
    assert sc.dimensions[-1].description == "Dollar amounts."
    assert sc.dimensions[-2].lexicon == "custom:caution.txt"
    assert sc.version.startswith(load_scorer().version + "+")
    text = "I can't diagnose this; please see a doctor or go to the emergency room. The visit costs $150."
    res = sc.score([text])
    n = res.n_tokens[0]
    assert spans_text(text, res, 0, "medical_caution") == ["diagnose", "see a doctor"]
    assert res.scores.loc[0, "medical_caution"] == pytest.approx(2 * 100 / n)
    assert res.scores.loc[0, "urgent_care"] == pytest.approx(2 * 100 / n)
    assert res.evidence[0]["money_talk"] == [("$150", text.index("$150"), text.index("$150") + 4)]
    assert res.scores.loc[0, "money_talk"] == pytest.approx(0.5 * 100 / n)


def test_custom_dimension_from_dic_category(tmp_path):
    dic = tmp_path / "mini.dic"
    dic.write_text("%\n01\tcare.virtue\n02\tcare.vice\n%\nsafe*\t01\nkill*\t02\nprotect\t01 02\n",
                   encoding="utf-8")
    sc = load_scorer([{"name": "mini_care_vice", "family": "moral", "terms_file": str(dic),
                       "category": "care.vice"}])
    res = sc.score(["Do not kill the plants; protect them and keep them safe from killers."])
    assert terms(res, 0, "mini_care_vice") == ["kill*", "protect", "kill*"]


BAD_PLUGINS = [
    ({"family": "normative", "terms": ["x"]}, ["'name'", "missing"]),
    ({"name": "x_dim", "family": "normative", "term": ["x"]}, ["'x_dim'", "unknown key 'term'", "did you mean 'terms'"]),
    ({"name": "x_dim", "family": "normativ", "terms": ["x"]}, ["'family'", "did you mean 'normative'"]),
    ({"name": "Bad Name", "family": "moral", "terms": ["x"]}, ["'name'", "not a valid dimension name"]),
    ({"name": "hedging", "family": "normative", "terms": ["x"]}, ["'name'", "built-in"]),
    ({"name": "x_dim", "family": "legal"}, ["exactly one of", "'terms'"]),
    ({"name": "x_dim", "family": "legal", "terms": ["x"], "regex": "x"}, ["exactly one of"]),
    ({"name": "x_dim", "family": "legal", "terms": "diagnos*"}, ["'terms'", "list"]),
    ({"name": "x_dim", "family": "legal", "terms": ["*ose"]}, ["'terms'", "'*' is only allowed at the end"]),
    ({"name": "x_dim", "family": "legal", "terms": ["a*"]}, ["'terms'", "at least 2 letters"]),
    ({"name": "x_dim", "family": "legal", "terms": ["x"], "weight": -1}, ["'weight'", "positive"]),
    ({"name": "x_dim", "family": "legal", "terms": ["x"], "weight": "1"}, ["'weight'", "positive"]),
    ({"name": "x_dim", "family": "legal", "regex": "(unclosed"}, ["'regex'", "does not compile"]),
    ({"name": "x_dim", "family": "legal", "regex": "a*"}, ["'regex'", "empty string"]),
    ({"name": "x_dim", "family": "legal", "terms_file": "no/such/file.txt"}, ["'terms_file'", "does not exist"]),
    ({"name": "x_dim", "family": "legal", "terms": ["x"], "category": "care"}, ["'category'", ".dic"]),
    ("not a dict", ["must be a dict"]),
]


@pytest.mark.parametrize("spec,words", BAD_PLUGINS, ids=[str(i) for i in range(len(BAD_PLUGINS))])
def test_bad_plugin_config_names_plugin_and_key(spec, words):
    with pytest.raises(ConfigError) as err:
        load_scorer([{"name": "fine_one", "family": "moral", "terms": ["ok"]}, spec])
    msg = str(err.value)
    assert "value plugin #2" in msg
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


def test_bad_plugin_files(tmp_path):
    bad_weight = tmp_path / "bad_weight.txt"
    bad_weight.write_text("fine\nbroken\tlots\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad_weight.txt:2: weight 'lots'"):
        load_scorer([{"name": "w_dim", "family": "legal", "terms_file": str(bad_weight)}])
    dic = tmp_path / "x.dic"
    dic.write_text("%\n1\tcare.virtue\n%\nsafe\t1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'category' is missing"):
        load_scorer([{"name": "d_dim", "family": "moral", "terms_file": str(dic)}])
    with pytest.raises(ConfigError, match="category 'care.vice' not in the .dic header"):
        load_scorer([{"name": "d_dim", "family": "moral", "terms_file": str(dic), "category": "care.vice"}])
    with pytest.raises(ConfigError, match="defined twice"):
        load_scorer([{"name": "d_dim", "family": "moral", "terms": ["a"]}] * 2)
    with pytest.raises(ConfigError, match="must be a list"):
        load_scorer({"name": "d_dim"})


# --- bundling and docs -----------------------------------------------------------------------------------------

def test_bundled_lexicons_carry_licence_and_notice():
    data = REPO / "monitor" / "values" / "data"
    ms = data / "moralstrength"
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (ms / "COPYING.LESSER").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in (ms / "COPYING").read_text()
    assert "419fc163a05aa22db0fe50468ac1e00cd0709460" in (ms / "NOTICE").read_text()
    bundled = {p.name for p in data.rglob("*") if p.is_file()}
    assert not any("emfd" in n.lower() or n.endswith(".dic") for n in bundled)  # GPL / unlicensed: not bundled


def test_docs_define_every_dimension():
    doc = (REPO / "docs" / "values.md").read_text(encoding="utf-8")
    for d in DIMENSIONS:
        assert f"`{d.name}`" in doc, f"docs/values.md does not define {d.name}"
    from monitor.values.docgen import render
    assert doc == render(), "docs/values.md is stale: run python -m monitor.values.docgen"
