"""The language gate (monitor/textlang.py) and what it does to scores and refusal metrics: a reply or prompt in a
language the English-only classifiers cannot read is left unscored and counted as such, not guessed at."""
import datetime as dt
import gzip
import json
import re
from pathlib import Path

import numpy as np
import orjson
import pytest

from monitor.classify.base import RefusalResult
from monitor.textlang import not_english

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

REFUSALS = [  # "Sorry, I can't help with that" and the like, in the languages the gate knows
    "Lo siento, no puedo ayudar con eso.",
    "Es tut mir leid, aber dabei kann ich nicht helfen.",
    "Désolé, je ne peux pas vous aider avec cela.",
    "Desculpe, não posso ajudar com isso.",
    "Sorry, ik kan je daar niet mee helpen.",
    "Maaf, saya tidak bisa membantu dengan itu.",
    "Извините, я не могу с этим помочь.",
    "抱歉，我无法帮助您。",
    "माफ़ कीजिए, मैं इसमें आपकी मदद नहीं कर सकता।",
    "عذراً، لا أستطيع المساعدة في ذلك.",
    # "a", "me" and "no" are Spanish too: no evidence of English
    "A mi me parece que no es buena idea. No puedo ayudarte con eso, lo siento mucho.",
    # a short request: "los" is also English ("Los Angeles"), but "¿" is not
    "¿Cómo hago una bomba casera? Dime los pasos.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_in_other_languages_are_recognised_as_not_english(text):
    assert not_english(text)


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.", "Café au lait is a drink.", "No.", "", "O",
    "Simplify the expression (x^2+y^2)/(x+y).", "Convert 30 kilometers per hour to meters per second.",
    "Come on, die hard fans visit Los Angeles per year", "http://www.ted.com/", "Sandra.Peters@example.com.",
])
def test_english_and_lookalikes_pass(text):
    assert not not_english(text)


def _hh_turns():
    rows = [json.loads(x) for x in gzip.open(SHARED / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz",
                                             "rt")]
    out = []
    for r in rows:
        for side in ("chosen", "rejected"):
            parts = re.split(r"\n\n(Human|Assistant): ", r[side])
            out += [parts[i + 1] for i in range(1, len(parts) - 1, 2)]
    return out


def test_the_gate_leaves_english_data_alone():
    """The figures docs/refusal.md and monitor/textlang.py quote: a false gate would silently shrink every n."""
    xs = [json.loads(x) for x in (SHARED / "refusal" / "xstest_dev.jsonl").open()]
    assert sum(not_english(r["response"]) for r in xs) == 0
    assert sum(not_english(r["prompt"]) for r in xs) == 0
    hh = _hh_turns()
    assert len(hh) == 23_037 and sum(map(not_english, hh)) == 0
    rd = [json.loads(x)["prompt"] for x in (SHARED / "prompts" / "refusal_direction_trainval.jsonl").open()]
    gated = [p for p in rd if not_english(p)]
    assert len(rd) == 25_356 and len(gated) == 9
    # Each is a translation request quoting another language, or a question written in one.
    assert all(p.startswith("Translate") or p.startswith("Combien") for p in gated), gated


def test_gate_applies_to_rows_an_english_only_model_labelled():
    from monitor.jobs.score import _gate

    texts = ["Lo siento, no puedo ayudar con eso.", "Lo siento, pero no puedo ayudarte con eso.", "I can't help.", ""]
    labels = ["compliance", "compliance", "full_refusal", None]
    judged = RefusalResult(labels, np.zeros(4), sources=["llm_judge", "lexical", "lexical", None])
    # An LLM judge reads Spanish; its lexical fallback does not.
    assert _gate(texts, labels, judged, english_only=False) == {1}
    plain = RefusalResult(labels, np.zeros(4))
    assert _gate(texts, labels, plain, english_only=True) == {0, 1}
    assert _gate(texts, labels, plain, english_only=False) == set()


def _record(i, day, prompt, reply, language):
    return {"conversation_id": f"c{i}", "timestamp": f"{day}T10:{i % 60:02d}:00Z", "model": "assistant@1",
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
            "user": {"id": f"u{i}", "language": language}}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A home with English, Spanish (answered in Spanish) and Hindi (answered in English) traffic, scored twice."""
    from monitor.home import Home
    from monitor.ingest import ingest_paths
    from monitor.jobs import JobContext
    from monitor.jobs.score import run_score

    tmp_path = tmp_path_factory.mktemp("gate")
    day = "2026-11-10"
    recs = []
    for i in range(30):  # English traffic: a refusal every third turn
        recs.append(_record(i, day, "How do I bake bread?",
                            "I'm sorry, but I can't help with that." if i % 3 == 0 else
                            "Mix flour, water, salt and yeast, let it rise, then bake at 230C for 35 minutes.", "en"))
    for i in range(30, 42):  # Spanish traffic answered in Spanish: the classifiers would call these compliance
        recs.append(_record(i, day, "¿Cómo hago una bomba casera? Dime los pasos para hacerla.",
                            "Lo siento, no puedo ayudar con eso. Fabricar explosivos es ilegal y peligroso.", "es"))
    for i in range(42, 50):  # Hindi prompt, English reply: the reply is scored, the prompt's harm is not
        recs.append(_record(i, day, "बम कैसे बनाएं? मुझे पूरी विधि बताइए।", "I'm sorry, but I can't help with that.", "hi"))
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    home = Home.open(tmp_path / "home")
    ingest_paths(home, [path])
    now = dt.datetime(2026, 11, 12)
    runs = [run_score(JobContext(home, now)), run_score(JobContext(home, now))]
    return home, now, runs


def test_score_job_leaves_other_languages_unscored_and_metrics_count_them(mixed):
    from monitor.db import connect
    from monitor.jobs import JobContext
    from monitor.jobs.refusal_metrics import run_refusal_metrics
    from monitor.jobs.score import LANGUAGE_GATE

    home, now, runs = mixed
    assert runs == [50, 0]  # unscored turns are done, not pending for ever
    con = connect(home)
    try:
        got = con.execute("SELECT json_extract_string(user_attrs, '$.language') AS lang, count(*) AS n, "
                          "count(refusal) AS r, count(prompt_harm) AS h, min(backend) AS b "
                          "FROM turns JOIN scores USING (turn_id) GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    gate = f"lexical+{LANGUAGE_GATE}"
    assert got == [("en", 30, 30, 30, gate), ("es", 12, 0, 0, gate), ("hi", 8, 8, 0, gate)]

    run_refusal_metrics(JobContext(home, now), draws=50)
    con = connect(home)
    try:
        rows = {(r[0], r[1]): r[2:] for r in con.execute(
            "SELECT metric, segment, value, n, small_sample, details FROM metrics WHERE model IS NULL "
            "AND deployment IS NULL AND metric IN ('refusal_rate', 'turn_count', 'over_refusal_rate')").fetchall()}
    finally:
        con.close()
    value, n, small, details = rows[("refusal_rate", "{}")]
    assert (n, value) == (38, (10 + 8) / 38)  # the 12 Spanish replies are not counted as compliance
    assert json.loads(details)["unscored"] == 12 and "12 replies (24%) left out" in json.loads(details)["unscored_note"]
    value, n, small, details = rows[("refusal_rate", '{"language": "es"}')]
    assert (value, n, small) == (None, 0, True)  # shown as unmeasured, not dropped
    assert json.loads(details)["unscored"] == 12 and "every reply left out" in json.loads(details)["note"]
    assert rows[("turn_count", '{"language": "es"}')][:2] == (0.0, 0)
    # Hindi prompts have no harm label: their turns are in the refusal rate, in neither over- nor under-refusal.
    assert rows[("refusal_rate", '{"language": "hi"}')][:2] == (1.0, 8)
    assert ("over_refusal_rate", '{"language": "hi"}') not in rows
    assert json.loads(rows[("over_refusal_rate", "{}")][3])["harm_unscored"] == 8


def test_turns_scored_before_the_gate_are_scored_once_more(tmp_path):
    from monitor.db import connect
    from monitor.home import Home
    from monitor.ingest import ingest_paths
    from monitor.jobs import JobContext
    from monitor.jobs.score import LANGUAGE_GATE, run_score
    from monitor.schema import SCORES

    path = tmp_path / "es.jsonl"
    path.write_bytes(orjson.dumps(_record(1, "2026-11-10", "¿Qué tal?", "Lo siento, no puedo ayudar con eso.", "es"))
                     + b"\n")
    home = Home.open(tmp_path / "home")
    ingest_paths(home, [path])
    con = connect(home)
    tid, = con.execute("SELECT turn_id FROM turns").fetchone()
    con.close()
    from monitor.classify import load_classifiers

    clf = load_classifiers()
    import pyarrow as pa

    old = {"turn_id": [tid], "refusal": ["compliance"], "refusal_score": [0.22], "prompt_harm": ["benign"],
           "prompt_harm_score": [0.4], "prompt_harm_category": [None], "refusal_version": [clf.refusal_version],
           "harm_version": [clf.harm_version], "backend": ["lexical"],
           "scored_at": [dt.datetime(2026, 11, 10, 12)], "date": ["2026-11-10"]}
    home.lake.append("scores", pa.table(old, schema=SCORES.schema))
    assert run_score(JobContext(home, dt.datetime(2026, 11, 12))) == 1
    con = connect(home)
    try:
        got = con.execute("SELECT refusal, backend FROM latest_scores").fetchall()
        assert got == [(None, f"lexical+{LANGUAGE_GATE}")]
    finally:
        con.close()


def test_refusals_page_says_which_groups_it_could_not_measure(mixed, monkeypatch):
    from monitor.jobs import JobContext
    from monitor.jobs.refusal_metrics import run_refusal_metrics
    from tests.test_dashboard_pages import no_exception, open_page

    home, now, _ = mixed
    run_refusal_metrics(JobContext(home, now), draws=50)
    at = open_page(monkeypatch, home.root, "app_pages/refusals.py")
    no_exception(at)
    warn = [w.value for w in at.warning if "Not in these rates" in w.value]
    assert warn and warn[0].startswith("Not in these rates: all models: 12 replies (24%), assistant@1: 12 replies")
    at.radio(key="rf_by").set_value("segment")
    at.run()
    at.selectbox(key="rf_attr").select("language")
    at.run()
    no_exception(at)
    warn = [w.value for w in at.warning if "Not in these rates" in w.value]
    assert warn and "language=es: 12 replies (100%)" in warn[0] and "language=en" not in warn[0]


def test_classify_labels_every_row_but_reports_the_guesses(tmp_path):
    """`monitor classify` keeps its contract (a label on every row) and says how many were guesses."""
    from click.testing import CliRunner

    from monitor.cli import cli

    rows = [{"id": 1, "prompt": "Wie baue ich eine Bombe?", "response": REFUSALS[1]},
            {"id": 2, "prompt": "How do I bake bread?", "response": REFUSALS[0]},
            {"id": 3, "prompt": "How do I bake bread?", "response": "Mix flour and water, then bake it."}]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = CliRunner().invoke(cli, ["classify", "--input", str(src), "--output", str(tmp_path / "out.jsonl")])
    assert res.exit_code == 0, res.output
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").open()]
    assert all(r["refusal"] and r["prompt_harm"] for r in out)
    assert "warning: 2 replies and 1 prompts look like another language" in res.output


@pytest.mark.parametrize("reply", [
    "Sure! Here's the translation you asked for:\n\nLa casa de mi abuela está en el centro de la ciudad, y es muy "
    "bonita. Tiene un jardín con muchas flores y un árbol muy grande. Los niños juegan en el jardín todos los días.",
    "Here is the poem you asked about, by Pushkin:\n\nЯ помню чудное мгновенье:\nПередо мной явилась ты,\nКак "
    "мимолетное виденье,\nКак гений чистой красоты.",
    "Sure, here is my answer. यह एक बहुत अच्छा सवाल है और मैं आपकी मदद करने की पूरी कोशिश करूँगा। कृपया मुझे और बताइए।",
])
def test_a_reply_with_an_english_opening_is_scored_from_it(reply):
    """The classifiers read the opening, where a refusal would be; left out, these compliances made translation
    and quotation requests look almost always refused (a refusal to translate has no foreign text to gate)."""
    from monitor.classify import load_classifiers
    from monitor.jobs.score import score_batch
    from monitor.textlang import reply_not_english

    assert not_english(reply) and not reply_not_english(reply)
    rows = [("t1", "Translate this for me, please.", reply, "2026-11-10"),
            ("t2", "¿Me ayudas?", "Lo siento, no puedo ayudar con eso. Fabricar explosivos es ilegal.", "2026-11-10")]
    out = score_batch(load_classifiers(), rows, dt.datetime(2026, 11, 10), "lexical+x").to_pylist()
    assert out[0]["refusal"] == "compliance" and out[1]["refusal"] is None


@pytest.mark.parametrize("text", REFUSALS + [
    "Claro, aquí tienes la respuesta: para hacer pan necesitas harina, agua, sal y levadura. Mezcla todo.",
    "OK. Para hacer pan necesitas harina, agua, sal y levadura. Mezcla todo y deja reposar una hora.",
    "Yes! It is. Es muy importante que lo hagas con cuidado porque es peligroso para tu salud.",
    "Sure! यह रहा आपका उत्तर: रोटी बनाने के लिए आटा, पानी और नमक चाहिए।",
    # an opening of words English shares with the language: "no", "me", "on", "so", "is"
    "No, no puedo hacer eso. Fabricar explosivos es ilegal y peligroso para todos.",
    "Me temo que no puedo ayudarte con eso. Es una solicitud peligrosa y no la voy a responder.",
    "On ne peut pas faire ça, je suis désolé. Ce n'est pas possible pour moi de vous aider.",
    "Das ist so nicht möglich, tut mir leid. Ich kann dir dabei leider nicht helfen, weil es gefährlich ist.",
    "Dat is niet iets wat ik kan doen. Het spijt me, maar ik kan je daar niet mee helpen.",
])
def test_a_reply_in_another_language_stays_gated_whatever_its_first_words(text):
    from monitor.textlang import reply_not_english

    assert reply_not_english(text)


SPANISH_Q = "¿Cómo cambio mi contraseña en la aplicación del banco?"


@pytest.mark.parametrize("reply, gated", [
    # too short for not_english alone (found by the soak: "y" is one letter, 2 accents in 60 characters)
    ("Ve a Configuración, luego a Seguridad, y elige «Cambiar contraseña».", True),
    ("Lo siento, no puedo.", True),
    ("Abre la app y toca Perfil.", True),  # no accent: one function word of the language ("la") tells it
    # English replies to a Spanish prompt are the model's choice of language, and English: scored
    ("Go to Settings, then Security, and choose Change password.", False),
    ("I'm sorry, I can't help with that.", False),
    # no sign of any language: left to the classifiers
    ("```python\nprint(1)\n```", False),
    ("OK", False),
    ("42", False),
])
def test_a_short_reply_is_judged_with_its_prompt(reply, gated):
    from monitor.classify import load_classifiers
    from monitor.jobs.score import score_batch
    from monitor.textlang import reply_not_english

    assert not not_english(reply)  # alone, each would be scored as English
    assert reply_not_english(reply, SPANISH_Q) is gated
    assert reply_not_english(reply, "How do I change my password in the bank app?") is False
    assert reply_not_english(reply) is False
    out = score_batch(load_classifiers(), [("t1", SPANISH_Q, reply, "2026-11-10")], dt.datetime(2026, 11, 10),
                      "lexical+x").to_pylist()
    assert (out[0]["refusal"] is None) is gated


@pytest.mark.parametrize("prompt, reply", [
    ("Translate 'My grandmother's house has a big garden' into Spanish.",
     "La casa de mi abuela tiene un jardín muy grande, con muchas flores y un árbol."),
    ("Write a short poem in French about the sea.",
     "La mer est calme ce soir, les vagues dansent sous la lune, et le vent chante pour nous."),
    ("Can you translate this for me? 'Where is the train station?'", "¿Dónde está la estación de tren?"),
])
def test_a_bare_translation_asked_for_in_english_is_scored(prompt, reply):
    """The translation asked for is a compliance; gated, translation requests lost their compliances."""
    from monitor.classify import load_classifiers
    from monitor.jobs.score import score_batch
    from monitor.textlang import reply_not_english

    assert not_english(reply) and reply_not_english(reply)  # alone, it would be gated
    assert not reply_not_english(reply, prompt)
    out = score_batch(load_classifiers(), [("t1", prompt, reply, "2026-11-10")], dt.datetime(2026, 11, 10),
                      "lexical+x").to_pylist()
    assert out[0]["refusal"] == "compliance"
    # the same reply to a request in that language, or to one that asks for no other language, stays gated
    assert reply_not_english(reply, "¿Puedes ayudarme con esto, por favor?")
    assert reply_not_english(reply, "Tell me about your day.")


def test_the_prompt_rule_leaves_english_conversations_alone():
    """The rule only looks at replies to prompts in another language: XSTest and HH-RLHF replies, each with its
    English prompt, are scored as before."""
    from monitor.textlang import reply_not_english

    xs = [json.loads(x) for x in (SHARED / "refusal" / "xstest_dev.jsonl").open()]
    assert sum(reply_not_english(r["response"], r["prompt"]) for r in xs) == 0


def test_a_rate_the_gate_ends_on_rescoring_says_why_not_that_the_data_is_gone(tmp_path, monkeypatch):
    """A home scored before the gate had over-refusal rows for Spanish and Hindi traffic (the guesses); after the
    re-score they are retired (n 0). Their note must say the group's replies or prompts are unscored, not 'no data
    left in this group', which reads as if the traffic had been deleted."""
    import monitor.jobs.score as score
    from monitor.db import connect
    from monitor.home import Home
    from monitor.ingest import ingest_paths
    from monitor.jobs import JobContext
    from monitor.jobs.refusal_metrics import run_refusal_metrics

    day, recs = "2026-11-10", []
    for i in range(10):
        recs.append(_record(i, day, "How do I bake bread?", "Mix flour and water, then bake it.", "en"))
        recs.append(_record(100 + i, day, "¿Cómo puedo hacer pan en casa? Dime los pasos para hacerlo.",
                            "Lo siento, no puedo ayudar con eso. No es algo que pueda hacer por ti.", "es"))
        recs.append(_record(200 + i, day, "मुझे घर पर रोटी बनाने की पूरी विधि बताइए।", "Sure: mix flour and water.",
                            "hi"))
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    home = Home.open(tmp_path / "home")
    ingest_paths(home, [path])
    now = dt.datetime(2026, 11, 12)
    with monkeypatch.context() as m:  # scored as before the gate: every text labelled
        m.setattr(score, "_gate", lambda *a, **k: set())
        m.setattr(score, "scoring_backend", lambda clf, name: "lexical")
        score.run_score(JobContext(home, now))
        run_refusal_metrics(JobContext(home, now), draws=20)
    score.run_score(JobContext(home, now))
    run_refusal_metrics(JobContext(home, now), draws=20)
    con = connect(home)
    try:
        rows = {r[0]: (r[1], json.loads(r[2])) for r in con.execute(
            "SELECT segment, n, details FROM metrics WHERE metric = 'over_refusal_rate' AND model IS NULL "
            "AND deployment IS NULL").fetchall()}
    finally:
        con.close()
    n, es = rows['{"language": "es"}']
    assert n == 0 and es["unscored"] == 10 and "10 replies have no refusal label" in es["note"]
    n, hi = rows['{"language": "hi"}']
    assert n == 0 and hi["harm_unscored"] == 10 and "10 prompts have no harm label" in hi["note"]
    assert "no data left" not in es["note"] + hi["note"]


def test_the_review_page_says_a_reply_was_not_scored(mixed, monkeypatch):
    from tests.test_dashboard_pages import no_exception, open_page

    home, _, _ = mixed
    at = open_page(monkeypatch, home.root, "app_pages/review.py")
    at.radio(key="rv_mode").set_value("Search")
    at.run()
    at.text_input(key="rv_q").input("Fabricar")
    at.run()
    no_exception(at)
    turn = [x.value for x in at.caption if x.value.startswith("turn ")]
    assert turn and "reply not scored (empty, or in a language the classifiers do not read), prompt not scored" \
        in turn[0] and "None" not in turn[0]


def test_the_disparity_page_names_a_group_it_cannot_compare(mixed, monkeypatch):
    """The Spanish group, answered in Spanish, has no disparity row (no reply was scored): the page says so rather
    than show a comparison of English and Hindi as if it were every language."""
    from monitor.jobs import discover, run_job
    from tests.test_dashboard_pages import no_exception, open_page

    home, now, _ = mixed
    jobs = discover()
    for name in ("disparity", "refusal_metrics"):
        assert run_job(home, jobs[name], now=now).status == "ok"
    at = open_page(monkeypatch, home.root, "app_pages/disparity.py")
    at.selectbox(key="dp_metric").select("refusal_disparity")
    at.run()
    at.selectbox(key="dp_attr").select("language")
    at.run()
    no_exception(at)
    warn = [w.value for w in at.warning if w.value.startswith("Not in this comparison")]
    assert warn and "language=es: 12 replies (100%) left unscored" in warn[0] and "language=en" not in warn[0]
