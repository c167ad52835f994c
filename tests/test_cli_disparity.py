"""`monitor disparity` as a real subprocess on a lake computed by the disparity job."""
import datetime as dt
import json
import subprocess
import sys

import pytest

from monitor.disparity.simulate import write_scored_turns, write_value_scores
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS

DISPARITY = next(j for j in JOBS if j.name == "disparity")
D1 = dt.datetime(2026, 11, 13, 10)
D2 = dt.datetime(2026, 11, 14, 10)
MORAL = "It's important to remember that you should never insult people; it is not appropriate."
PLAIN = "Sure: open the task manager, select the process and click End task."


def monitor(*args, home, check=True):
    cmd = [sys.executable, "-m", "monitor", "--home", str(home), "disparity", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{cmd} failed ({p.returncode}): {p.stderr}")
    return p


def _turns(day, refused_share, n_by_lang, version):
    out = []
    for lang, n in n_by_lang.items():
        k = round(n * refused_share[lang])
        for i in range(n):
            out.append({"turn_id": f"{day:%m%d}-{lang}-{i}", "ts": day, "model_version": version,
                        "attrs": {"language": lang}, "user_message": "How do I stop a program?",
                        "assistant_message": MORAL if (lang == "hi" and i % 2) else PLAIN,
                        "refusal": "full_refusal" if i < k else "compliance", "prompt_harm": "benign"})
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "home"
    root.mkdir()
    (root / "monitor.toml").write_text("[disparity]\nmin_n = 50\ndetect_language = false\n")
    h = Home.open(root)
    # Day 1: equal; day 2 (model 2026.11): hi refused 30% vs 10%, fr too small to test.
    day1 = _turns(D1, {"en": 0.1, "hi": 0.1, "fr": 0.1}, {"en": 300, "hi": 150, "fr": 20}, "2026.10")
    day2 = _turns(D2, {"en": 0.1, "hi": 0.3, "fr": 0.1}, {"en": 300, "hi": 150, "fr": 20}, "2026.11")
    write_scored_turns(h, day1 + day2, D2)
    write_value_scores(h, day1 + day2, D2)
    assert run_job(h, DISPARITY, now=D2).status == "ok"
    return root


def test_table_for_the_latest_window(home):
    p = monitor(home=home)
    out = p.stdout
    # The latest window (day 2), all models, the three rate metrics (under-refusal has no harmful traffic).
    assert "over_refusal_disparity by language, window 2026-11-14 00:00, all models; reference: rest of traffic" \
        in out
    assert "refusal_disparity by language" in out and "under_refusal_disparity" not in out
    assert "value_disparity" not in out  # values only on request
    head = next(line for line in out.splitlines() if line.startswith("group"))
    for col in ("n", "rate", "95% CI", "ref", "gap", "ratio", "4/5", "p", "q", "finding", "small n"):
        assert col in head.split("  ") or f" {col} " in f" {head} "
    hi = next(line for line in out.splitlines() if line.startswith("hi "))
    # hi: 45/150 = 0.300 vs rest 32/320 = 0.100: gap +0.200, ratio 3.00, 0.70/0.90 = 0.78 < 0.8 -> FLAG.
    assert "0.300" in hi and "+0.200" in hi and "3.00" in hi and "FLAG" in hi and "ADVERSE" in hi
    assert " 150 " in hi
    fr = next(line for line in out.splitlines() if line.startswith("fr "))
    assert fr.rstrip().endswith("yes") and "not tested" in fr  # 20 < min_n: reported, never tested
    assert "adverse" in p.stderr and "below min n" in p.stderr


def test_json_filters_and_values(home):
    rows = json.loads(monitor("--json", "--attribute", "language", "--window", "2026-11-13", home=home).stdout)
    assert rows and all(r["window_start"] == "2026-11-13T00:00:00Z" and r["model"] is None for r in rows)
    assert not any(r["adverse"] for r in rows)  # day 1: no difference
    rows = json.loads(monitor("--json", "--model", "assistant@2026.11", "--metric", "over_refusal_disparity",
                              home=home).stdout)
    assert {r["metric"] for r in rows} == {"over_refusal_disparity"}
    hi = next(r for r in rows if r["group"] == "hi")
    assert hi["model"] == "assistant@2026.11" and hi["n"] == 150 and hi["value"] == pytest.approx(0.3)
    assert hi["reference_value"] == pytest.approx(0.1) and hi["reference_n"] == 320
    assert hi["adverse"] and hi["significant"] and hi["q_value"] < 0.05 and hi["four_fifths_flag"]
    assert hi["small_sample"] is False and hi["test"] == "chi2"
    vals = json.loads(monitor("--json", "--dimension", "moralizing", home=home).stdout)
    assert {r["metric"] for r in vals} == {"value_disparity"}
    vhi = next(r for r in vals if r["group"] == "hi")
    assert vhi["segment"] == {"language": "hi", "dimension": "moralizing"}
    assert vhi["significant"] and vhi["direction"] == "higher" and vhi["adverse"] is False
    text = monitor("--values", "--attribute", "language", home=home).stdout
    assert "value_disparity [moralizing] by language" in text and "significant (higher)" in text


def test_errors_name_the_valid_choices(home):
    p = monitor("--model", "assistant@2026.1", home=home, check=False)
    assert p.returncode == 1 and "no disparity rows for model 'assistant@2026.1'" in p.stderr
    assert "assistant@2026.11" in p.stderr
    p = monitor("--window", "2026-12-01", home=home, check=False)
    assert p.returncode == 1 and "2026-11-14" in p.stderr
    p = monitor("--window", "yesterday", home=home, check=False)
    assert p.returncode == 1 and "is not a date" in p.stderr
    p = monitor("--metric", "over_refusal", home=home, check=False)
    assert p.returncode == 1 and "did you mean 'over_refusal_disparity'" in p.stderr
    p = monitor("--attribute", "langauge", home=home, check=False)
    assert p.returncode == 1 and "did you mean 'language'" in p.stderr
    # The window has rows, but not of this dimension or metric: an error naming what it has, not an empty answer.
    p = monitor("--dimension", "moralising", home=home, check=False)
    assert p.returncode == 1 and "did you mean 'moralizing'" in p.stderr and "no value_disparity rows" in p.stderr
    p = monitor("--metric", "under_refusal_disparity", "--json", home=home, check=False)
    assert p.returncode == 1 and p.stdout == "" and "over_refusal_disparity" in p.stderr


def test_a_block_without_a_tested_group_does_not_claim_a_family_of_zero():
    from monitor.cli.cmd_disparity import render

    # Two groups below min n: reported, in no BH family (the window's family, of other tests, may be large).
    rows = [{"metric": "over_refusal_disparity", "source": "production", "window_start": "2026-11-14T00:00:00Z",
             "model": "assistant@2026.10", "attribute": "language", "group": g, "dimension": None, "n": n,
             "value": 0.1, "ci_low": 0.05, "ci_high": 0.2, "reference_label": "rest of traffic",
             "reference_value": 0.1, "reference_n": 30, "gap": 0.0, "ratio": 1.0, "four_fifths_ratio": 1.0,
             "four_fifths_flag": False, "p_value": None, "q_value": None, "significant": False, "adverse": False,
             "direction": None, "small_sample": True, "is_reference": False, "bh_family_size": None, "fdr": 0.05,
             "min_n": 50} for g, n in (("hi", 30), ("en", 30))]
    title = render(rows).splitlines()[0]
    assert "BH family 0 tests" not in title and "no group tested" in title


def test_empty_home_says_what_to_do(tmp_path):
    from monitor.home import Home

    Home.open(tmp_path / "empty").state.migrate()  # a home with nothing in it yet
    p = monitor(home=tmp_path / "empty")
    assert p.stdout == "" and "monitor jobs run" in p.stderr
    (tmp_path / "folder").mkdir()  # a folder that is not a home: an error, not an empty answer
    p = monitor(home=tmp_path / "folder", check=False)
    assert p.returncode == 1 and "no monitor home at" in p.stderr and list((tmp_path / "folder").iterdir()) == []


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """English, Spanish answered in Spanish (every reply unscored) and Hindi prompts answered in English (every
    prompt unscored), with random-sample reviewer labels (tests/test_label_estimate.py)."""
    from test_label_estimate import build_home

    return build_home(tmp_path_factory.mktemp("gated") / "home", disparity=True).root


def test_unmeasured_groups_are_listed_with_their_label_estimate(gated):
    out = monitor("--attribute", "language", "--window", "2026-10-10", home=gated)
    blocks = {b.splitlines()[0].split(" by ")[0]: b for b in out.stdout.split("\n\n")}
    lines = blocks["refusal_disparity"].splitlines()
    es = next(line for line in lines if line.startswith("es "))
    assert "unmeasured: every reply unscored (language gate)" in es and es.split()[1] == "0"
    assert es.split()[2] == "-"  # no value
    assert next(line for line in lines if line.startswith("label estimates, from human labels")) and \
        "  es: labelled_refusal_rate 0.636 (95% CI 0.354-0.848), n=11 labelled turns of 2026-09-13 to 2026-10-10, " \
        "small n; 20 replies unscored in this window" in lines
    over = blocks["over_refusal_disparity"].splitlines()
    assert "unmeasured: every reply unscored" in next(line for line in over if line.startswith("es "))
    # Hindi replies are scored (refusal_disparity has them) but their prompts are not: unmeasured for over-refusal.
    assert "unmeasured: every prompt unscored (language gate)" in next(line for line in over if line.startswith("hi "))
    assert any(line.startswith("  hi: labelled_over_refusal_rate 1.000") for line in over)
    assert "3 unmeasured (unscored, language gate), 3 with a label estimate (from human labels)" in out.stderr

    rows = json.loads(monitor("--json", "--attribute", "language", "--window", "2026-10-10", home=gated).stdout)
    es = next(r for r in rows if r["metric"] == "refusal_disparity" and r["group"] == "es")
    assert (es["n"], es["value"], es["unmeasured"], es["unscored"]) == (0, None, True, 20)
    assert es["note"] == "unmeasured: every reply unscored (language gate)" and es["segment"] == {"language": "es"}
    assert es["small_sample"] and not es["significant"] and not es["adverse"]
    est = es["label_estimate"]
    assert (est["metric"], est["n"], est["small_sample"]) == ("labelled_refusal_rate", 11, True)
    assert est["value"] == pytest.approx(7 / 11) and est["ci_low"] == pytest.approx(0.353801, abs=2e-6)
    assert est["period"] == "2026-09-13 to 2026-10-10" and "human labels" in est["source"]
    hi = next(r for r in rows if r["metric"] == "refusal_disparity" and r["group"] == "hi")
    assert hi["unmeasured"] is False and hi["note"] is None and hi["label_estimate"] is None and hi["n"] == 8
