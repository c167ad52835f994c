"""The project's own training and evaluation data (training/data/): well-formed, labelled as documented, and apart
from the data it must not overlap."""
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "training"))

import common  # noqa: E402

HH_CATEGORIES = {"violence", "weapons", "cyber", "fraud", "drugs", "self_harm", "hate", "sexual", "privacy", "other"}


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (common.WRITTEN / name).read_text(encoding="utf-8").splitlines()]


def test_hh_labels_cover_every_first_turn_once_with_valid_labels():
    rows = _rows("hh_labels.jsonl")
    first_turns = list(dict.fromkeys(h for h, _, _ in common.hh_first_turns()))
    assert [r["prompt"] for r in rows] == first_turns  # every distinct first turn, in file order, once
    assert len({r["id"] for r in rows}) == len(rows)
    assert Counter(r["prompt_label"] for r in rows).keys() <= {"harmful", "benign", "unclear"}
    for r in rows:
        if r["prompt_label"] == "harmful":
            assert r["category"] in HH_CATEGORIES, r["id"]
        else:
            assert r["category"] is None, r["id"]


def test_hh_labelled_keeps_harmful_and_benign_and_refuses_a_changed_source(monkeypatch, tmp_path):
    rows = common.hh_labelled()
    assert {r["prompt_label"] for r in rows} == {"harmful", "benign"}
    assert len(rows) == sum(r["prompt_label"] != "unclear" for r in _rows("hh_labels.jsonl"))
    # A label row whose text is not in the shared HH-RLHF file is an error, not a silent mismatch.
    bad = tmp_path / "hh_labels.jsonl"
    bad.write_text(json.dumps({"id": "hh-first-turn-9999", "prompt": "a text HH-RLHF never had",
                               "prompt_label": "harmful", "category": "other"}) + "\n", encoding="utf-8")
    monkeypatch.setattr(common, "WRITTEN", tmp_path)
    with pytest.raises(ValueError, match="hh-first-turn-9999"):
        common.hh_labelled()


def test_hh_labels_are_never_training_rows_and_shared_texts_are_left_out_of_the_evaluation():
    import numpy as np
    import train_harm

    extra, xs, _ = train_harm.load(with_alpaca=False)
    trained = [p for p, _ in extra] + [p for p, _, _ in xs]
    labelled = common.hh_labelled()
    shared = set(trained) & {r["prompt"] for r in labelled}
    # Only a short common question written independently ("How can I rob a casino?") is in both.
    assert len(shared) <= 2
    res = train_harm.hh_eval(lambda texts: np.ones(len(texts)), trained, 0.5, 0.9)
    assert res["n_left_out_training_texts"] == len(shared)
    assert res["n_harmful"] + res["n_benign"] + len(shared) == len(labelled)
    assert res["recall"] == 1.0 and res["benign_false_alarm_rate"] == 1.0


def test_written_instructions_are_benign_unique_and_not_benchmark_or_eval_texts():
    rows = _rows("written_instructions.jsonl")
    texts = [r["prompt"] for r in rows]
    assert len(rows) == len(common.written_instructions()) == 2396
    assert {r["prompt_label"] for r in rows} == {"benign"}
    assert len({t.lower() for t in texts}) == len(texts)
    rd = common.read_jsonl(common.DATA / "prompts" / "refusal_direction_trainval.jsonl")
    others = {r["prompt"].lower() for r in rd} | {r["prompt"].lower() for r in common.xstest_prompts()}
    others |= {r["prompt"].lower() for r in common.harm_probe()} | {r["prompt"].lower() for r in common.hh_labelled()}
    assert not {t.lower() for t in texts} & others
    # No near-copy of an XSTest prompt or a probe prompt (evaluation texts).
    assert common.near_duplicates(texts, [r["prompt"] for r in common.xstest_prompts()]
                                  + [r["prompt"] for r in common.harm_probe()]) == []


TASK_CATEGORIES = {"cyber", "hacking_tools", "weapons", "cbrn", "violence", "extremism", "fraud", "economic_crime",
                   "drugs", "illegal_trade", "harassment", "hate", "disinformation", "deception_civic", "privacy",
                   "sexual_selfharm"}


def test_written_tasks_are_labelled_unique_and_never_training_rows():
    import train_harm

    rows = _rows("written_tasks.jsonl")
    assert rows == common.written_tasks()
    assert [r["id"] for r in rows] == [f"task-{i:04d}" for i in range(1, len(rows) + 1)]
    assert Counter(r["prompt_label"] for r in rows) == {"harmful": 1433, "benign": 1382}
    assert {r["category"] for r in rows if r["prompt_label"] == "harmful"} == TASK_CATEGORIES
    assert {r["category"] for r in rows if r["prompt_label"] == "benign"} == TASK_CATEGORIES | {"general"}
    texts = [r["prompt"] for r in rows]
    assert len({t.lower() for t in texts}) == len(texts)
    extra, xs, _ = train_harm.load(with_alpaca=False)
    assert not set(texts) & ({p for p, _ in extra} | {p for p, _, _ in xs})
    # Apart from the other evaluation sets and the benchmark prompts: no near-copy of a probe prompt, an HH-RLHF first
    # turn or a refusal_direction harmful prompt.
    rd = common.read_jsonl(common.DATA / "prompts" / "refusal_direction_trainval.jsonl")
    assert common.near_duplicates(texts, [r["prompt"] for r in common.harm_probe()], 0.5) == []
    assert common.near_duplicates(texts, [r["prompt"] for r in common.hh_labelled()], 0.5) == []
    assert common.near_duplicates(texts, [r["prompt"] for r in rd if r["prompt_label"] == "harmful"]) == []


@pytest.mark.slow
def test_written_instructions_are_no_near_copies_of_alpaca():
    # The Alpaca instructions (CC BY-NC) are only scored, never trained on; three generic questions the authors wrote
    # that matched an Alpaca one at word-set Jaccard >= 0.8 were removed from the file.
    rd = common.read_jsonl(common.DATA / "prompts" / "refusal_direction_trainval.jsonl")
    alpaca = [r["prompt"] for r in rd if r["prompt_label"] == "benign"]
    assert common.near_duplicates(common.written_instructions(), alpaca, threshold=0.8) == []
    # The written task-style requests (evaluation only) were kept further from them: none at Jaccard >= 0.5.
    assert common.near_duplicates([r["prompt"] for r in common.written_tasks()], alpaca, threshold=0.5) == []
