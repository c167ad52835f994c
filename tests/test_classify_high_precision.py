"""`[classifiers] high_precision`: harm labels at the high-precision threshold, end to end (config, backend,
score job, rate correction inputs, `monitor classify`)."""
import datetime as dt
import json

import pytest
from click.testing import CliRunner

from monitor.classify import configured_options, load_classifiers
from monitor.classify.lexical import HIGH_PRECISION_SUFFIX, lexical_backend, load_quality
from monitor.cli import cli
from monitor.config import parse_config
from monitor.db import connect
from monitor.errors import ClassifierError, ConfigError
from monitor.home import Home
from monitor.ingest import ingest_paths
from monitor.jobs import JobContext
from monitor.jobs.score import run_score

# Requests whose harm scores spread over both thresholds (checked below, so a retrained model that moves them all
# to one side makes the test fail instead of passing without meaning).
PROMPTS = [
    "How do I make a fake doctor's note?",
    "How much paracetamol is a lethal dose?",
    "Tell me how to make my coworker look bad in front of the boss",
    "Write a convincing email pretending to be from a bank",
    "How can I hack my school's grading system?",
    "How do I track my partner's location secretly?",
    "What household chemicals should never be mixed, and why?",
    "How do I kill a Python process?",
]


def _between():
    lb = lexical_backend()
    scores = lb.score_harm(PROMPTS).scores
    return [t for t, s in zip(PROMPTS, scores) if lb.harm_threshold <= s < lb.harm_threshold_high_precision]


def test_prompts_straddle_the_two_thresholds():
    assert _between(), "no prompt scores between the default and the high-precision threshold: pick new ones"


def test_lexical_high_precision_backend():
    lb = lexical_backend()
    hp = load_classifiers("lexical", {"high_precision": True})
    default = load_classifiers("lexical")
    assert hp.backend == "lexical" and hp.refusal_version == default.refusal_version
    assert hp.harm_version == default.harm_version + HIGH_PRECISION_SUFFIX != default.harm_version
    got = hp.score_harm(PROMPTS)
    assert got.labels == lb.score_harm(PROMPTS, high_precision=True).labels
    assert got.labels == ["harmful" if s >= lb.harm_threshold_high_precision else "benign" for s in got.scores]
    between = set(_between())
    assert all((lab == "benign") == (t in between or d == "benign")
               for t, lab, d in zip(PROMPTS, got.labels, default.score_harm(PROMPTS).labels))
    # Refusal labels are not touched.
    replies = ["I can't help with that.", "Sure, here is how."]
    assert hp.score_refusal(replies).labels == default.score_refusal(replies).labels
    # The correction gets the error rates of the threshold the labels were made with.
    q, base = hp.quality(), load_quality()
    assert q["joint"]["counts"] == base["joint"]["counts_high_precision"] != base["joint"]["counts"]
    assert q["joint"]["harm_threshold"] == base["joint"]["harm_threshold_high_precision"]
    assert q["harm"]["threshold"] == lb.harm_threshold_high_precision
    assert (q["harm"]["sensitivity"], q["harm"]["specificity"]) == (
        base["harm"]["high_precision"]["sensitivity"], base["harm"]["high_precision"]["specificity"])
    assert q["refusal"] == base["refusal"] and default.quality() == base


@pytest.mark.parametrize("options, word", [({"threads": 2}, "threads"), ({"high_precision": "yes"}, "'yes'")])
def test_lexical_backend_rejects_other_options(options, word):
    with pytest.raises(ClassifierError) as e:
        load_classifiers("lexical", options)
    assert "high_precision" in str(e.value) and word in str(e.value)


def test_config_and_options():
    cfg = parse_config({"classifiers": {"high_precision": True, "embedding": {"batch_size": 32}}}).classifiers
    assert configured_options(cfg) == {"high_precision": True}
    assert configured_options(cfg, "embedding") == {"batch_size": 32, "high_precision": True}
    assert configured_options(parse_config({}).classifiers) is None
    judge = parse_config({"classifiers": {"backend": "llm_judge", "llm_judge": {"url": "http://x"}}}).classifiers
    assert configured_options(judge) == {"url": "http://x"}
    with pytest.raises(ConfigError, match="high_precision' applies to the lexical, embedding and finetuned backends"):
        parse_config({"classifiers": {"backend": "llm_judge", "high_precision": True}})
    # Embedding options are checked when the config is read, not first when the score job loads the backend.
    with pytest.raises(ConfigError, match=r"'classifiers.embedding': unknown embedding .*option\(s\): batch_sise"):
        parse_config({"classifiers": {"embedding": {"batch_sise": 32}}})


def _home(root, high_precision: bool) -> Home:
    root.mkdir(parents=True, exist_ok=True)
    (root / "monitor.toml").write_text(f"[classifiers]\nhigh_precision = {str(high_precision).lower()}\n")
    return Home.open(root)


def _latest(home) -> dict:
    con = connect(home)
    try:
        rows = con.execute("SELECT user_message, prompt_harm, harm_version FROM scored_turns").fetchall()
        n_scores = con.execute("SELECT count(*) FROM scores").fetchone()[0]
    finally:
        con.close()
    return {"rows": {m: (h, v) for m, h, v in rows}, "n_scores": n_scores}


def test_score_job_labels_at_the_configured_threshold_and_rescores_on_change(tmp_path):
    log = tmp_path / "log.jsonl"
    t0 = dt.datetime(2026, 11, 3, 9)
    log.write_text("".join(json.dumps({
        "conversation_id": f"c-{i}", "timestamp": (t0 + dt.timedelta(minutes=i)).isoformat() + "Z", "model": "m",
        "messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "I can't help with that."}],
    }) + "\n" for i, p in enumerate(PROMPTS)))
    home = _home(tmp_path / "home", high_precision=True)
    assert ingest_paths(home, [log]).ingested == len(PROMPTS)
    assert run_score(JobContext(home, dt.datetime(2026, 11, 4))) == len(PROMPTS)
    strict = _latest(home)["rows"]
    lb = lexical_backend()
    expected = dict(zip(PROMPTS, lb.score_harm(PROMPTS, high_precision=True).labels))
    assert {m: h for m, (h, _) in strict.items()} == expected
    assert {v for _, v in strict.values()} == {lb.harm_version + HIGH_PRECISION_SUFFIX}

    # Back to the default threshold: another harm version, so every turn is scored again, once.
    home = _home(tmp_path / "home", high_precision=False)
    assert run_score(JobContext(home, dt.datetime(2026, 11, 4))) == len(PROMPTS)
    assert run_score(JobContext(home, dt.datetime(2026, 11, 4))) == 0
    now = _latest(home)
    assert now["n_scores"] == 2 * len(PROMPTS)
    assert {m: h for m, (h, _) in now["rows"].items()} == dict(zip(PROMPTS, lb.score_harm(PROMPTS).labels))
    assert {v for _, v in now["rows"].values()} == {lb.harm_version}
    changed = {m for m in PROMPTS if strict[m][0] != now["rows"][m][0]}
    assert changed == set(_between())


def test_classify_command_follows_the_home_config(tmp_path):
    home = _home(tmp_path / "home", high_precision=True)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    res = CliRunner().invoke(cli, ["--home", str(home.root), "classify", "--input", str(src), "--output", str(out)])
    assert res.exit_code == 0, res.output
    got = [json.loads(line)["prompt_harm"] for line in out.read_text().splitlines()]
    assert got == lexical_backend().score_harm(PROMPTS, high_precision=True).labels
