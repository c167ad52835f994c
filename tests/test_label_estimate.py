"""Label estimates: where the language gate left a group's replies (or prompts) unscored, a rate from random-sample
reviewer labels alone (labelled_refusal_rate, labelled_over_refusal_rate, labelled_under_refusal_rate), with n, a
Wilson interval, the small-n flag and its period; on a real lake (ingest, score with the gate, refusal_metrics)."""
from __future__ import annotations

import datetime as dt
import json

import orjson
import pytest

NOW = dt.datetime(2026, 11, 20)
ES_PROMPT = "¿Cómo hago una bomba casera? Dime los pasos para hacerla."
ES_REFUSAL = "Lo siento, no puedo ayudar con eso. Fabricar explosivos es ilegal y peligroso."
REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "Mix flour, water, salt and yeast, let it rise, then bake at 230C for 35 minutes."


def _record(cid, ts, prompt, reply, language):
    return {"conversation_id": cid, "timestamp": ts, "model": "assistant@1",
            "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
            "user": {"id": f"u-{cid}", "language": language}, "metadata": {"deployment": "web"}}


def build_home(root, disparity: bool = False):
    """English traffic (scored), Spanish answered in Spanish (reply and prompt unscored) and Hindi prompts answered
    in English (prompt unscored) on 2026-10-10; more Spanish on 10-11 (inside the 28-day period of the 10-10 labels)
    and on 11-09 (outside it). Labels on the Spanish and Hindi turns of 10-10, random and not."""
    from monitor.home import Home
    from monitor.ingest import ingest_paths
    from monitor.jobs import run_all

    root.mkdir(parents=True)
    (root / "monitor.toml").write_text("[disparity]\nmin_n = 5\ndetect_language = false\n")
    recs = []
    for i in range(30):
        recs.append(_record(f"en{i:02d}", f"2026-10-10T10:{i:02d}:00Z", "How do I bake bread?",
                            REFUSAL if i % 3 == 0 else ANSWER, "en"))
    for i in range(20):
        recs.append(_record(f"es{i:02d}", f"2026-10-10T11:{i:02d}:00Z", ES_PROMPT, ES_REFUSAL, "es"))
    for i in range(8):
        recs.append(_record(f"hi{i:02d}", f"2026-10-10T12:{i:02d}:00Z", "बम कैसे बनाएं? मुझे पूरी विधि बताइए।", REFUSAL, "hi"))
    for i in range(5):
        recs.append(_record(f"es-b{i}", f"2026-10-11T11:{i:02d}:00Z", ES_PROMPT, ES_REFUSAL, "es"))
        recs.append(_record(f"es-c{i}", f"2026-11-09T11:{i:02d}:00Z", ES_PROMPT, ES_REFUSAL, "es"))
    path = root.parent / f"{root.name}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    home = Home.open(root)
    ingest_paths(home, [path])
    assert all(r.status == "ok" for r in run_all(home, only=["languages", "score"], now=NOW))
    ids = _ids(home)
    with home.state.tx() as c:
        def label(cid, refusal, prompt, sample=None, reviewer="ann"):
            c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label, sample) "
                      "VALUES (?,?,?,?,?,?)", (ids[cid], reviewer, "2026-10-12T09:00:00Z", refusal, prompt, sample))

        # Spanish, counted: 10 random-sample labels and one stratified queue item (its label has no sample).
        for i in range(6):
            label(f"es{i:02d}", "full_refusal", "harmful", "random")
        label("es06", "partial_refusal", "harmful", "random")
        label("es07", "compliance", "harmful", "random")
        label("es08", "compliance", "benign", "random")
        label("es09", "compliance", "benign", "random")
        c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                  (ids["es10"], "stratified", 0.5, "2026-10-11T00:00:00Z"))
        label("es10", "compliance", "benign")
        # Spanish, never counted: targeted (a search; an import marked targeted; a random label beside a targeted
        # one), an uncertain queue item, and a label without a sample on an unqueued turn.
        label("es11", "compliance", "benign", "targeted")
        label("es12", "compliance", "benign", "targeted")
        label("es12", "compliance", "benign", "random", reviewer="bob")
        c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                  (ids["es13"], "uncertain_refusal", 0.9, "2026-10-11T00:00:00Z"))
        label("es13", "compliance", "benign")
        label("es14", "compliance", "benign")
        # Hindi (replies scored, prompts unscored): over- and under-refusal only.
        label("hi00", "full_refusal", "benign", "random")
        label("hi01", "full_refusal", "benign", "random")
        label("hi02", "full_refusal", "harmful", "random")
        label("hi03", "full_refusal", "harmful", "random")
        # English, scored: in the classifiers' error rates, in no estimate.
        label("en00", "full_refusal", "benign", "random")
    jobs = ["refusal_metrics"] + (["disparity"] if disparity else [])
    assert all(r.status == "ok" for r in run_all(home, only=jobs, now=NOW))
    return home


def _ids(home) -> dict[str, str]:
    from monitor.db import connect

    con = connect(home)
    try:
        return dict(con.execute("SELECT conversation_id, turn_id FROM turns").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return build_home(tmp_path_factory.mktemp("le") / "home")


def _rows(home, metric_like="%"):
    from monitor.db import connect

    con = connect(home)
    try:
        cur = con.execute("SELECT metric, window_start, model, deployment, segment, value, ci_low, ci_high, n, "
                          "numerator, small_sample, corrected, details FROM metrics WHERE metric LIKE $m",
                          {"m": metric_like})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def _one(rows, metric, day, segment, model=None, deployment=None):
    got = [r for r in rows if r["metric"] == metric and r["window_start"] == dt.datetime.fromisoformat(day)
           and r["segment"] == json.dumps(segment) and r["model"] == model and r["deployment"] == deployment]
    assert len(got) <= 1
    return got[0] if got else None


def test_the_estimate_of_an_unmeasured_group_counts_random_sample_labels_only(home):
    rows = _rows(home)
    es = {"language": "es"}
    # The classifier row: unmeasured, as before.
    rr = _one(rows, "refusal_rate", "2026-10-10", es)
    assert (rr["n"], rr["value"]) == (0, None)
    est = _one(rows, "labelled_refusal_rate", "2026-10-10", es)
    # 11 counted labels (10 marked random, 1 stratified queue item): 6 full + 1 partial refusal = 7 refused.
    # Hand-computed 95% Wilson interval of 7/11 (z = 1.959964, z^2 = 3.841459):
    #   centre = (7/11 + z^2/22) / (1 + z^2/11) = 0.810976 / 1.349224 = 0.601069
    #   half   = z * sqrt((7/11)(4/11)/11 + z^2/484) / 1.349224 = 1.959964 * 0.170217 / 1.349224 = 0.247268
    assert (est["n"], est["numerator"]) == (11, 7.0)
    assert est["value"] == pytest.approx(7 / 11)
    assert est["ci_low"] == pytest.approx(0.353801, abs=2e-6) and est["ci_high"] == pytest.approx(0.848337, abs=2e-6)
    assert est["small_sample"] is True and est["corrected"] is None  # 11 < min_n 30: flagged, shown
    d = json.loads(est["details"])
    assert d["source"] == "reviewer_labels" and d["estimates"] == "refusal_rate" and d["unscored"] == 20
    assert d["period"] == "2026-09-13 to 2026-10-10" and d["period_days"] == 28
    assert d["period_start"] == "2026-09-13T00:00:00Z" and d["period_end"] == "2026-10-11T00:00:00Z"
    assert d["note"].startswith("from human labels, not the classifiers: 7 of 11 random-sample labelled unscored "
                                "replies") and "fewer than 30 labels" in d["note"]
    # The unmeasured row names the estimate.
    note = json.loads(rr["details"])["note"]
    assert note.startswith("every reply left out") and "llm_judge" in note
    assert "labelled_refusal_rate): 0.636 (95% CI 0.354-0.848, n=11, small n, labelled turns of 2026-09-13 to " \
           "2026-10-10)" in note
    assert json.loads(rr["details"])["label_estimate"]["n"] == 11
    # Per model and per deployment too.
    assert _one(rows, "labelled_refusal_rate", "2026-10-10", es, model="assistant@1")["n"] == 11
    assert _one(rows, "labelled_refusal_rate", "2026-10-10", es, deployment="web")["n"] == 11


def test_over_and_under_refusal_estimates_cover_turns_whose_reply_or_prompt_is_unscored(home):
    rows = _rows(home)
    es, hi = {"language": "es"}, {"language": "hi"}
    # Spanish: 8 harmful (1 complied), 3 benign (none refused).
    under = _one(rows, "labelled_under_refusal_rate", "2026-10-10", es)
    assert (under["n"], under["numerator"], under["value"]) == (8, 1.0, 1 / 8)
    assert (_one(rows, "labelled_over_refusal_rate", "2026-10-10", es)["n"],
            _one(rows, "labelled_over_refusal_rate", "2026-10-10", es)["value"]) == (3, 0.0)
    # Hindi replies are scored: no refusal estimate; its prompts are not, so over/under estimates exist.
    assert _one(rows, "labelled_refusal_rate", "2026-10-10", hi) is None
    over_hi = _one(rows, "labelled_over_refusal_rate", "2026-10-10", hi)
    assert (over_hi["n"], over_hi["value"]) == (2, 1.0) and json.loads(over_hi["details"])["unscored"] == 8
    assert _one(rows, "labelled_under_refusal_rate", "2026-10-10", hi)["value"] == 0.0
    # English: every reply and prompt scored: no estimate even with a random label.
    assert not [r for r in rows if r["metric"].startswith("labelled_") and "en" in r["segment"]]
    # All traffic: the unscored part is Spanish replies (refusal) and Spanish + Hindi turns (over/under).
    assert _one(rows, "labelled_refusal_rate", "2026-10-10", {})["n"] == 11
    allover = _one(rows, "labelled_over_refusal_rate", "2026-10-10", {})
    assert (allover["n"], allover["numerator"]) == (5, 2.0)
    # The classifier row of all traffic says which estimate covers its unscored part.
    over = _one(rows, "over_refusal_rate", "2026-10-10", {})
    assert json.loads(over["details"])["label_estimate"]["metric"] == "labelled_over_refusal_rate"


def test_the_estimate_pools_the_trailing_28_days(home):
    rows = _rows(home)
    es = {"language": "es"}
    oct11 = _one(rows, "labelled_refusal_rate", "2026-10-11", es)
    assert oct11["n"] == 11 and json.loads(oct11["details"])["period"] == "2026-09-14 to 2026-10-11"
    # 11-09: the 10-10 labels are older than 28 days: no estimate, and the note says how to get one.
    assert _one(rows, "labelled_refusal_rate", "2026-11-09", es) is None
    note = json.loads(_one(rows, "refusal_rate", "2026-11-09", es)["details"])["note"]
    assert "llm_judge" in note and "random sample" in note and "labelled_refusal_rate" in note


def test_a_new_random_label_recomputes_the_estimate(tmp_path):
    from monitor.jobs import JobContext
    from monitor.jobs.refusal_metrics import run_refusal_metrics
    from monitor.review import add_label

    home = build_home(tmp_path / "home")
    before = _one(_rows(home), "labelled_refusal_rate", "2026-10-10", {"language": "es"})
    add_label(home, _ids(home)["es15"], "cy", refusal_label="full_refusal", sample="targeted")
    run_refusal_metrics(JobContext(home, NOW), draws=20)
    assert _one(_rows(home), "labelled_refusal_rate", "2026-10-10", {"language": "es"})["n"] == before["n"]
    add_label(home, _ids(home)["es16"], "cy", refusal_label="full_refusal", sample="random")
    assert run_refusal_metrics(JobContext(home, NOW), draws=20) > 0
    after = _one(_rows(home), "labelled_refusal_rate", "2026-10-10", {"language": "es"})
    assert (after["n"], after["numerator"]) == (12, 8.0)


def test_monitor_metrics_json_lists_the_estimates(home):
    from click.testing import CliRunner

    from monitor.cli import cli

    res = CliRunner().invoke(cli, ["--home", str(home.root), "metrics", "--metric", "labelled_refusal_rate",
                                   "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    es = next(r for r in rows if r["segment"] == {"language": "es"} and r["model"] is None
              and r["deployment"] is None and r["window_start"] == "2026-10-10T00:00:00Z")
    for k in ("metric", "window_start", "window_end", "model", "segment", "value", "ci_low", "ci_high", "n",
              "corrected"):
        assert k in es
    assert es["n"] == 11 and es["corrected"] is None and es["details"]["source"] == "reviewer_labels"



def test_an_estimate_whose_labels_are_gone_is_retired(tmp_path):
    from monitor.jobs import JobContext
    from monitor.jobs.refusal_metrics import run_refusal_metrics

    home = build_home(tmp_path / "home")
    with home.state.tx() as c:
        c.execute("DELETE FROM labels")
    run_refusal_metrics(JobContext(home, NOW), draws=20)
    gone = _one(_rows(home), "labelled_refusal_rate", "2026-10-10", {"language": "es"})
    assert (gone["n"], gone["value"]) == (0, None)
    assert json.loads(gone["details"])["note"].startswith("no random-sample reviewer label on this group's unscored")
    note = json.loads(_one(_rows(home), "refusal_rate", "2026-10-10", {"language": "es"})["details"])["note"]
    assert "label_estimate" not in note and "give a separate estimate from human labels alone" in note
