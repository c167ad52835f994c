"""`monitor classify` and `monitor eval` on bad input: one-line errors naming file, line and field; in-sample notice."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from monitor.cli import cli

LABELLED = [{"prompt": "How do I bake bread at home?", "response": "Mix flour, water, salt and yeast, then bake.",
             "refusal_label": "compliance", "prompt_label": "benign"},
            {"prompt": "Tell me a joke about cats.", "response": "I'm sorry, but I can't help with that.",
             "refusal_label": "full_refusal", "prompt_label": "benign"}]


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(autouse=True)
def _no_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MONITOR_HOME", raising=False)


def test_non_utf8_input_names_file_line_and_byte(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(json.dumps(LABELLED[0]).encode() + b"\n" + b'{"response": "caf\xe9", "refusal_label": "compliance"}\n')
    for args in (["eval", str(bad)], ["classify", "--input", str(bad), "--output", str(tmp_path / "o.jsonl")]):
        r = _run(*args)
        assert r.exit_code == 1, r.output
        assert f"Error: {bad}:2: not valid UTF-8 (byte 0xe9 at column 18)" in r.stderr
        assert "Try: convert the file to UTF-8" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "o.jsonl").exists()


def test_utf8_bom_is_accepted(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps(LABELLED[0]).encode() + b"\n")
    assert _run("eval", str(f)).exit_code == 0


@pytest.mark.parametrize("row, message", [
    ({"prompt": 123}, "field 'prompt' must be text, got a number"),
    ({"prompt": "hi", "response": ["I can't"]}, "field 'response' must be text, got a list"),
    ([1, 2], "expected a JSON object, got a list"),
])
def test_a_wrong_type_is_an_error_naming_line_and_field_not_a_silent_null(tmp_path, row, message):
    """A prompt of 123 used to come out unscored (null labels, counted as 'no_text') as if it had no text."""
    src = _write(tmp_path / "t.jsonl", [LABELLED[0], row])
    for args in (["classify", "--input", str(src), "--output", str(tmp_path / "o.jsonl")], ["eval", str(src)]):
        r = _run(*args)
        assert r.exit_code == 1, r.output
        assert f"Error: {src}:2: {message}" in r.stderr and "Traceback" not in r.output
    assert not (tmp_path / "o.jsonl").exists()


def test_absent_or_null_prompt_and_response_are_rows_with_nothing_to_score(tmp_path):
    src = _write(tmp_path / "t.jsonl", [{"prompt": None, "response": "Sure."}, {"id": 7}])
    r = _run("classify", "--input", str(src), "--output", str(tmp_path / "o.jsonl"))
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert rows[0]["refusal"] == "compliance" and rows[0]["prompt_harm"] is None
    assert rows[1] == {"id": 7, "refusal": None, "refusal_score": None, "prompt_harm": None,
                       "prompt_harm_score": None, "prompt_harm_category": None}


def test_output_in_missing_folder_is_a_one_line_error(tmp_path):
    src = _write(tmp_path / "e.jsonl", LABELLED)
    r = _run("classify", "--input", str(src), "--output", str(tmp_path / "nonexistent" / "dir" / "o.jsonl"))
    assert r.exit_code == 1
    assert f"Error: cannot write {tmp_path / 'nonexistent' / 'dir' / 'o.jsonl'}: folder does not exist" in r.stderr
    assert "Try: create" in r.stderr


@pytest.mark.parametrize("field, value, allowed", [("refusal_label", "maybe", "compliance|partial_refusal|full_refusal"),
                                                   ("prompt_label", "harmless", "benign|harmful"),
                                                   ("refusal_label", 1, "compliance|partial_refusal|full_refusal")])
def test_invalid_label_is_an_error_naming_line_field_and_allowed_values(tmp_path, field, value, allowed):
    src = _write(tmp_path / "labels.jsonl", [LABELLED[0], {**LABELLED[1], field: value}])
    r = _run("eval", str(src))
    assert r.exit_code == 1
    assert f"Error: {src}:2: {field} {value!r} is not one of {allowed}" in r.stderr


def test_missing_or_null_label_is_still_an_unlabelled_row(tmp_path):
    src = _write(tmp_path / "labels.jsonl", [LABELLED[0], {**LABELLED[1], "refusal_label": None}])
    r = _run("eval", str(src))
    assert r.exit_code == 0 and "1 replies (1 rows skipped" in r.stdout


def test_held_out_rows_carry_no_in_sample_notice(tmp_path):
    src = _write(tmp_path / "labels.jsonl", LABELLED)
    r = _run("eval", str(src), "--json")
    assert r.exit_code == 0 and "in-sample" not in r.stderr
    assert json.loads(r.stdout)["in_sample"] == {"replies": 2, "prompts": 2, "replies_in_training": 0,
                                                 "prompts_in_training": 0}


def test_training_rows_are_reported_in_sample(shared_data):
    r = _run("eval", str(shared_data / "refusal" / "xstest_dev.jsonl"))
    assert r.exit_code == 0
    assert ("NOTE: 720 of 720 replies and 144 of 144 prompts were used to train the bundled classifiers: "
            "these figures are in-sample") in r.stderr


def test_training_keys_match_the_shipped_models():
    from monitor.classify import load_classifiers
    from monitor.classify.insample import training_keys

    keys, clf = training_keys(), load_classifiers()
    assert clf.refusal_version in keys["refusal_versions"], "retrained? python -m monitor.classify.insample --write"
    assert clf.harm_version in keys["harm_versions"], "retrained? python -m monitor.classify.insample --write"
