"""`monitor labels import/export/agreement` (monitor/review_import.py): labels made outside the dashboard come in
all or nothing, every row counted once, errors named by file, line and field, and targeted samples kept out of the
classifiers' error rates."""
import csv
import datetime as dt
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from monitor import review
from monitor.cli import cli
from monitor.review_import import LabelImportError, import_labels


@pytest.fixture()
def home(tmp_path):
    from dashboards.sample import build_sample_home

    return build_sample_home(tmp_path / "home", n_turns=600, days=4, seed=5, alerts=False)


def _ids(home, n):
    from monitor.db import connect

    con = connect(home)
    try:
        return [r[0] for r in con.execute("SELECT turn_id FROM turns ORDER BY turn_id LIMIT ?", [n]).fetchall()]
    finally:
        con.close()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_import_counts_add_up_and_reimport_changes_nothing(home, tmp_path):
    a, b, c = _ids(home, 3)
    f = _jsonl(tmp_path / "batch.jsonl", [
        {"turn_id": a, "refusal_label": "compliance", "prompt_label": "benign"},
        {"turn_id": b, "refusal_label": "full_refusal", "prompt_label": "harmful", "over_refusal": "no"},
        {"turn_id": b, "refusal_label": "full_refusal", "prompt_label": "harmful", "over_refusal": "no"},
        {"turn_id": c, "prompt_label": "benign", "reviewer": "vendor-7", "note": "  ok  "},
    ])
    r = import_labels(home, f, "jane", reviewer="jane", sample="random")
    assert (r.rows, r.added, r.updated, r.unchanged, r.repeated) == (4, 3, 0, 0, 1)
    stored = {(x["turn_id"], x["reviewer"]): x for x in review.labels(home)}
    assert set(stored) == {(a, "jane"), (b, "jane"), (c, "vendor-7")}
    assert stored[(b, "jane")]["over_refusal"] == 0 and stored[(c, "vendor-7")]["note"] == "ok"
    assert {x["sample"] for x in stored.values()} == {"random"}
    again = import_labels(home, f, "jane", reviewer="jane", sample="random")
    assert (again.added, again.updated, again.unchanged, again.repeated) == (0, 0, 3, 1)
    # A changed answer replaces the reviewer's own label, as relabelling in the dashboard does.
    _jsonl(f, [{"turn_id": a, "refusal_label": "partial_refusal", "prompt_label": "benign"}])
    r3 = import_labels(home, f, "jane", sample="random", reviewer="jane")
    assert (r3.added, r3.updated) == (0, 1)
    assert [x["refusal_label"] for x in review.labels(home, [a])] == ["partial_refusal"]
    audit = home.state.query("SELECT action, actor, details FROM audit_log WHERE action LIKE 'label%' ORDER BY id")
    assert [x["action"] for x in audit].count("label.import") == 4  # 3 added + 1 updated; unchanged rows write nothing
    summary = [json.loads(x["details"]) for x in audit if x["action"] == "labels.import"]
    assert [(s["added"], s["unchanged"], s["updated"]) for s in summary] == [(3, 0, 0), (0, 3, 0), (0, 0, 1)]


def test_one_bad_row_imports_nothing_and_every_error_names_line_and_field(home, tmp_path):
    a, b = _ids(home, 2)
    f = tmp_path / "bad.jsonl"
    f.write_text("\n".join([
        json.dumps({"turn_id": a, "prompt_label": "benign"}),
        json.dumps({"turn_id": b, "refusal_lable": "compliance"}),
        json.dumps({"turn_id": "no-such-turn", "prompt_label": "harmful"}),
        json.dumps({"turn_id": a, "prompt_label": "harmfull"}),
        "[1, 2]",
        "{broken",
        json.dumps({"turn_id": b, "harmful_compliance": "maybe"}),
        json.dumps({"turn_id": a, "prompt_label": "harmful"}),
    ]) + "\n")
    with pytest.raises(LabelImportError) as err:
        import_labels(home, f, "jane", reviewer="jane", sample="random")
    errors = err.value.errors
    assert errors == [
        f"{f}:2: unknown column 'refusal_lable' (did you mean 'refusal_label'?)",
        f"{f}:3: field 'turn_id': no turn 'no-such-turn' in this home's lake (another home's export, a forgotten "
        "user, or not ingested yet)",
        f"{f}:4: field 'prompt_label' must be one of harmful, benign, got 'harmfull'",
        f"{f}:5: not a JSON object (got list)",
        f"{f}:6: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{f}:7: field 'harmful_compliance' must be yes/no (true/false), got 'maybe'",
        f"{f}:8: field 'turn_id': turn {a} is labelled again by jane with other answers (first at {f}:1)",
    ]
    assert err.value.total == 7 and "nothing was imported" in err.value.message
    assert review.labels(home) == []  # row 1 was fine, and still nothing is stored
    res = CliRunner().invoke(cli, ["--home", str(home.root), "labels", "import", str(f), "--by", "jane",
                                   "--sample", "random"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = res.output.splitlines()
    assert lines[0].startswith(f"Error: {f}:2: unknown column") and "(and 6 more errors)" in lines[0]
    assert sum(f"{f}:" in x for x in lines) == 7 and lines[-1].startswith("  Try:")


def test_how_the_turns_were_chosen_must_be_said_once(home, tmp_path):
    a, b = _ids(home, 2)
    f = _jsonl(tmp_path / "nosample.jsonl", [{"turn_id": a, "prompt_label": "benign"},
                                              {"turn_id": b, "prompt_label": "benign"}])
    with pytest.raises(LabelImportError) as err:
        import_labels(home, f, "jane", reviewer="jane")
    assert err.value.errors == [f"{f}:1: field 'sample' is missing here and 1 more rows: say how the labelled turns "
                                "were chosen, with a 'sample' column or --sample random|targeted"]
    _jsonl(f, [{"turn_id": a, "prompt_label": "benign", "sample": "random"},
               {"turn_id": b, "prompt_label": "benign", "sample": "by hand"}])
    with pytest.raises(LabelImportError, match=r"nosample.jsonl:2: field 'sample' must be one of random, targeted"):
        import_labels(home, f, "jane", reviewer="jane")
    with pytest.raises(review.ReviewError, match="reviewer name is required"):
        import_labels(home, f, "  ", sample="random")


def test_csv_cells_and_a_multiline_note_keep_their_line_numbers(home, tmp_path):
    a, b, c = _ids(home, 3)
    f = tmp_path / "sheet.csv"
    with f.open("w", newline="", encoding="utf-8-sig") as fh:  # a spreadsheet's byte-order mark is not data
        w = csv.writer(fh)
        w.writerow(["turn_id", "refusal_label", "prompt_label", "harmful_compliance", "note"])
        w.writerow([a, "compliance", "harmful", "1", "line one\nline two"])
        w.writerow([b, "", "benign", "no", ""])
        w.writerow([c, "complied", "", "", ""])
    with pytest.raises(LabelImportError) as err:
        import_labels(home, f, "jane", reviewer="jane", sample="targeted")
    assert err.value.errors == [f"{f}:5: field 'refusal_label' must be one of full_refusal, partial_refusal, "
                                "compliance, got 'complied'"]
    rows = f.read_text(encoding="utf-8-sig").splitlines()
    f.write_text("\n".join(rows[:-1]) + "\n", encoding="utf-8")
    r = import_labels(home, f, "jane", reviewer="jane", sample="targeted")
    assert (r.rows, r.added) == (2, 2)
    got = {x["turn_id"]: x for x in review.labels(home)}
    assert got[a]["harmful_compliance"] == 1 and got[a]["note"] == "line one\nline two"
    assert got[b]["refusal_label"] is None and got[b]["harmful_compliance"] == 0 and got[b]["sample"] == "targeted"


def test_an_export_reimports_as_is_jsonl_and_parquet(home, tmp_path):
    ids = _ids(home, 4)
    for t in ids[:2]:
        review.add_label(home, t, "ana", refusal_label="compliance", prompt_label="benign")
    _jsonl(tmp_path / "v.jsonl", [{"turn_id": ids[2], "prompt_label": "harmful", "reviewer": "vendor"}])
    import_labels(home, tmp_path / "v.jsonl", "ana", sample="random")
    runner = CliRunner()
    base = ["--home", str(home.root), "labels"]
    res = runner.invoke(cli, [*base, "export", "--by", "ana", "-o", str(tmp_path / "all.parquet")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, [*base, "export", "--by", "ana"])
    exported = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(exported) == 3 and {x["sample"] for x in exported} == {None, "random"}
    (tmp_path / "all.jsonl").write_text(res.stdout)
    for name in ("all.jsonl", "all.parquet"):
        res = runner.invoke(cli, [*base, "import", str(tmp_path / name), "--by", "ana", "--sample", "random",
                                  "--dry-run", "--json"])
        assert res.exit_code == 0, res.output
        # The two dashboard labels had no sample; --sample gives them one, which is a change.
        assert json.loads(res.stdout) == {"rows": 3, "added": 0, "updated": 2, "unchanged": 1, "repeated": 0,
                                          "dry_run": True}
    assert {x["sample"] for x in review.labels(home)} == {None, "random"}  # the dry runs stored nothing
    res = runner.invoke(cli, [*base, "export", "--by", "ana", "-o", "-", "--format", "parquet"])
    assert res.exit_code == 1 and "pass --output FILE.parquet" in res.output


def test_agreement_command_reports_kappa(home, tmp_path):
    ids = _ids(home, 6)
    rows = [{"turn_id": t, "prompt_label": lab, "reviewer": who}
            for who, labs in (("r1", "HHBBHB"), ("r2", "HHBBBB"))
            for t, lab in zip(ids, labs)]
    for r in rows:
        r["prompt_label"] = {"H": "harmful", "B": "benign"}[r["prompt_label"]]
    import_labels(home, _jsonl(tmp_path / "two.jsonl", rows), "lead", sample="random")
    res = CliRunner().invoke(cli, ["--home", str(home.root), "labels", "agreement", "--json"])
    got = {r["field"]: r for r in json.loads(res.stdout)}["prompt_label"]
    # 5 of 6 items agree; Cohen's kappa by hand: p_o = 5/6, p_e = (3/6)(2/6) + (3/6)(4/6) = 1/2, kappa = 2/3.
    assert (got["items"], got["reviewers"]) == (6, 2)
    assert got["percent_agreement"] == pytest.approx(5 / 6) and got["cohen_kappa_mean"] == pytest.approx(2 / 3)


def test_targeted_imports_stay_out_of_the_classifiers_error_rates(home, tmp_path):
    from monitor.jobs import JobContext
    from monitor.jobs.refusal_metrics import STATE_KEY, run_refusal_metrics

    ids = _ids(home, 90)
    rnd = [{"turn_id": t, "refusal_label": "compliance", "prompt_label": "benign"} for t in ids[:60]]
    tgt = [{"turn_id": t, "refusal_label": "full_refusal", "prompt_label": "harmful"} for t in ids[60:]]
    import_labels(home, _jsonl(tmp_path / "rnd.jsonl", rnd), "lead", sample="random")
    import_labels(home, _jsonl(tmp_path / "tgt.jsonl", tgt), "lead", sample="targeted")
    # A turn the review queue chose stays the queue's, however a later reviewer found it: 5 of the targeted
    # imports are stratified queue items, so they count; 5 of the random ones are uncertain items, so they don't.
    with home.state.tx() as con:
        for t, reason in [*((t, "stratified") for t in ids[60:65]), *((t, "uncertain_harm") for t in ids[:5])]:
            con.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                        (t, reason, 0.5, "2026-11-20T00:00:00Z"))
    run_refusal_metrics(JobContext(home, dt.datetime(2026, 11, 21)), draws=50)
    note = home.state.get(STATE_KEY)["labels"]
    assert (note["labelled_turns"], note["random_sample"], note["targeted_excluded"]) == (90, 60, 30)


def test_labels_command_is_listed_in_the_help():
    out = subprocess.run([sys.executable, "-m", "monitor", "labels", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "import" in out.stdout and "agreement" in out.stdout


def _cli_import(home, path, *extra):
    return CliRunner().invoke(cli, ["--home", str(home.root), "labels", "import", str(path), "--by", "jane",
                                    "--reviewer", "jane", *extra])


def test_a_spreadsheet_csv_imports_as_a_person_saved_it(home, tmp_path):
    """Excel and Google Sheets files: a header in other case and spacing, ';' (Excel where the decimal mark is a
    comma), CRLF, a byte-order mark, empty trailing rows and columns, cells with spaces and capitals, pandas' 1.0."""
    a, b, c = _ids(home, 3)
    f = tmp_path / "excel.csv"
    f.write_bytes(("\ufeff Turn ID ;Refusal_Label ; Over-Refusal;SAMPLE;;\r\n"
                   f" {a} ; Compliance ; Yes ; Random ;;\r\n"
                   f"{b};full_refusal;1.0;random;;\r\n"
                   f"{c};;0.0;targeted;;\r\n"
                   ";;;;;\r\n;;;;;\r\n").encode("utf-8"))
    res = _cli_import(home, f, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows"] == 3  # the empty rows are not label rows
    got = {x["turn_id"]: x for x in review.labels(home)}
    assert (got[a]["refusal_label"], got[a]["over_refusal"], got[a]["sample"]) == ("compliance", 1, "random")
    assert (got[b]["over_refusal"], got[c]["over_refusal"], got[c]["sample"]) == (1, 0, "targeted")
    assert set(got) == {a, b, c}


def test_pandas_missing_values_are_missing_not_errors(home, tmp_path):
    a, b = _ids(home, 2)
    f = tmp_path / "pandas.jsonl"  # json.dumps of a DataFrame's records writes NaN for a missing float
    f.write_text(f'{{"turn_id": "{a}", "refusal_label": "compliance", "over_refusal": NaN, "note": NaN}}\n'
                 f'{{"turn_id": "{b}", "refusal_label": null, "over_refusal": 1.0, "note": "x"}}\n')
    r = import_labels(home, f, "jane", sample="random")
    assert (r.rows, r.added) == (2, 2)
    got = {x["turn_id"]: x for x in review.labels(home)}
    assert got[a]["over_refusal"] is None and got[a]["note"] is None and got[b]["over_refusal"] == 1
    f.write_text(f'{{"turn_id": "{a}", "refusal_label": "compliance", "over_refusal": Infinity}}\n')
    with pytest.raises(LabelImportError, match="field 'over_refusal' must be yes/no .*got inf"):
        import_labels(home, f, "jane", sample="random")


def test_file_wide_mistakes_are_reported_once_with_what_to_try(home, tmp_path):
    a, b = _ids(home, 2)
    f = tmp_path / "typo.csv"
    f.write_text(f"turn_id,refusal_lable,note\n{a},compliance,x\n{b},compliance,y\n")
    with pytest.raises(LabelImportError) as err:
        import_labels(home, f, "jane", sample="random")
    assert err.value.errors == [f"{f}:2: unknown column 'refusal_lable' (did you mean 'refusal_label'?)"]
    f.write_text(f"turn_id,refusal_label,\n{a},compliance,oops\n")
    with pytest.raises(LabelImportError, match=r"typo.csv:2: a value \('oops'\) in a column with no name"):
        import_labels(home, f, "jane", sample="random")
    f.write_text(f"turn_id,Turn ID,refusal_label\n{a},{a},compliance\n")
    with pytest.raises(LabelImportError, match="column 'turn_id' appears 2 times in the header"):
        import_labels(home, f, "jane", sample="random")
    f.write_text(f"turn_id,value_concern\n{a},Moralizing\n{b},preachy\n")
    with pytest.raises(LabelImportError) as err:
        import_labels(home, f, "jane", sample="random")
    assert err.value.errors == [f"{f}:3: field 'value_concern' must be one of moralizing, cultural_assumption, "
                                "deference, political_slant, religious_framing, other, got 'preachy' (free text "
                                "goes in 'note')"]
    other = _jsonl(tmp_path / "other_home.jsonl", [{"turn_id": "t1", "prompt_label": "benign"},
                                                    {"turn_id": 2, "prompt_label": "benign"}])
    res = _cli_import(home, other, "--sample", "random")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "field 'turn_id' must be text (a turn id as `monitor sql` shows it), got 2" in res.output
    assert "Try: none of the file's 1 turns is in this home's lake: check --home" in res.output
    assert review.labels(home) == []


def test_a_reviewer_written_another_way_is_not_a_second_reviewer(home, tmp_path):
    a, b, c = _ids(home, 3)
    review.add_label(home, a, "Jane Doe", prompt_label="benign")
    f = _jsonl(tmp_path / "case.jsonl", [
        {"turn_id": b, "prompt_label": "benign", "reviewer": "Sam"},
        {"turn_id": a, "prompt_label": "harmful", "reviewer": "jane  doe"},
        {"turn_id": c, "prompt_label": "benign", "reviewer": "sam "},
        {"turn_id": a, "prompt_label": "benign", "reviewer": "SAM"},
    ])
    with pytest.raises(LabelImportError) as err:
        import_labels(home, f, "lead", sample="random")
    assert err.value.errors == [
        f"{f}:2: field 'reviewer': 'jane  doe' is this home's reviewer 'Jane Doe' written another way (case or "
        "spacing); write 'Jane Doe', or one person counts as two reviewers",
        f"{f}:3: field 'reviewer': 'sam' is 'Sam' (at {f}:1) written another way (case or spacing); write one "
        "spelling, or one person counts as two reviewers",
        f"{f}:4: field 'reviewer': 'SAM' is 'Sam' (at {f}:1) written another way (case or spacing); write one "
        "spelling, or one person counts as two reviewers",
    ]
    assert len(review.labels(home)) == 1
    _jsonl(f, [{"turn_id": a, "prompt_label": "harmful", "reviewer": "Jane Doe"},
               {"turn_id": b, "prompt_label": "benign", "reviewer": "Sam"}])
    r = import_labels(home, f, "lead", sample="random")
    assert (r.added, r.updated) == (1, 1)
    assert sorted({x["reviewer"] for x in review.labels(home)}) == ["Jane Doe", "Sam"]
    # a name from --by or --reviewer is fixed there, not in the file
    _jsonl(f, [{"turn_id": c, "prompt_label": "benign"}])
    with pytest.raises(LabelImportError, match="'jane doe' is this home's reviewer 'Jane Doe' written another way "
                                               r"\(case or spacing\); pass --reviewer 'Jane Doe'"):
        import_labels(home, f, "jane doe", sample="random")


def test_an_export_keeps_how_queue_items_were_chosen_in_another_home(home, tmp_path):
    """A turn the queue picked because its score was uncertain must stay out of the error rates in the home its
    labels are imported into, whose queue never held it (and whatever --sample says for the other rows)."""
    import shutil

    from monitor.home import Home

    ids = _ids(home, 4)
    with home.state.tx() as con:
        for t, reason in zip(ids, ("uncertain_refusal", "stratified", "alert_example")):
            con.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                        (t, reason, 0.5, "2026-11-20T00:00:00Z"))
    for t in ids[:3]:
        review.add_label(home, t, "ana", refusal_label="compliance")
    review.add_label(home, ids[3], "ana", refusal_label="compliance", sample="targeted")
    export = tmp_path / "all.jsonl"
    export.write_bytes(review.export_labels(home, actor="ana"))
    rows = [json.loads(x) for x in export.read_text().splitlines()]
    assert [(r["sample"], r["queue_reason"]) for r in rows] == [
        (None, "uncertain_refusal"), (None, "stratified"), (None, "alert_example"), ("targeted", None)]
    # Its own home: unchanged, and the queue items keep no sample of their own.
    r = import_labels(home, export, "ana", sample="random")
    assert (r.rows, r.unchanged, r.updated) == (4, 4, 0)
    assert [x["sample"] for x in review.labels(home)] == [None, None, None, "targeted"]
    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(home.root / "lake", other / "lake")
    b = Home.open(other)
    r = import_labels(b, export, "ana", sample="random")
    assert (r.rows, r.added) == (4, 4)
    assert [x["sample"] for x in review.labels(b)] == ["targeted", "random", "targeted", "targeted"]
    bad = _jsonl(tmp_path / "bad.jsonl", [{"turn_id": ids[0], "refusal_label": "compliance", "queue_reason": "x"}])
    with pytest.raises(LabelImportError, match="field 'queue_reason' must be one of uncertain_refusal"):
        import_labels(b, bad, "ana", sample="random")


def test_an_import_racing_monitor_forget_leaves_no_label_on_a_forgotten_turn(tmp_path, monkeypatch):
    """`monitor forget` starting after the import checked the turns but before it stored the labels: the forget
    waits for the import (the lake's writer lock) and then deletes the new label with the user's others."""
    import threading

    import monitor.db
    from close_hook import hook_connect
    from monitor.home import Home
    from monitor.ingest import ingest_paths
    from monitor.retention import forget_user

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({
        "conversation_id": f"c{i}", "timestamp": "2026-11-10T10:00:00Z", "model": "m",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        "user": {"id": f"u{i}"}}) + "\n" for i in range(2)))
    home = Home.open(tmp_path / "home")
    ingest_paths(home, [log])
    con = monitor.db.connect(home)
    tid, user = con.execute("SELECT turn_id, user_id FROM turns ORDER BY turn_id LIMIT 1").fetchone()
    con.close()
    f = _jsonl(tmp_path / "one.jsonl", [{"turn_id": tid, "refusal_label": "compliance"}])
    forget, threads = [], []

    def start_forget():  # after the import's turn check
        t = threading.Thread(target=lambda: forget.append(forget_user(home, user, "dpo", "user request")))
        t.start()
        t.join(timeout=3)  # without the lock the forget is done here, before the import stores its label
        threads.append(t)

    hook_connect(monkeypatch, start_forget)
    import_labels(home, f, "jane", sample="random")
    threads[0].join(timeout=60)
    assert forget[0].rows["labels"] == 1  # the forget found the imported label and deleted it
    assert review.labels(home, [tid]) == []


def test_a_json_array_file_imports_item_by_item(home, tmp_path):
    """A .json file holding one array (json.dump of a list, pandas' to_json(orient='records')), pretty-printed."""
    a, b = _ids(home, 2)
    f = tmp_path / "labels.json"
    f.write_text(json.dumps([{"turn_id": a, "refusal_label": "compliance"},
                             {"turn_id": b, "refusal_label": "full_refusal"}], indent=2))
    r = import_labels(home, f, "jane", sample="random")
    assert (r.rows, r.added) == (2, 2)
    f.write_text(json.dumps([{"turn_id": a, "refusal_label": "compliance"}, "oops"], indent=2))
    with pytest.raises(LabelImportError) as err:
        import_labels(home, f, "jane", sample="random")
    assert err.value.errors == [f"{f}: item 2: not a JSON object (got str)"]
    f.write_text('[{"turn_id": "x",\n  "refusal_label": }]')
    with pytest.raises(LabelImportError, match=r"labels.json:2: not valid JSON \(Expecting value at column 20\)"):
        import_labels(home, f, "jane", sample="random")


def test_a_file_that_is_not_what_its_name_says_gets_a_hint(home, tmp_path):
    f = tmp_path / "labels.parquet"
    f.write_text("turn_id,refusal_label\nt1,compliance\n")
    res = _cli_import(home, f, "--sample", "random")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "not a readable Parquet file" in res.output and "name a CSV .csv" in res.output


def test_an_export_with_unicode_line_separators_in_its_texts_reimports(tmp_path):
    """JSON keeps U+2028, U+2029 and U+0085 raw inside strings (the export writes ensure_ascii=False): they are not
    line ends of a JSONL file."""
    from monitor.home import Home
    from monitor.ingest import ingest_paths

    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({
        "conversation_id": "c1", "timestamp": "2026-11-10T10:00:00Z", "model": "m",
        "messages": [{"role": "user", "content": "Two lines\u2028please"},
                     {"role": "assistant", "content": "One\u2029two\x85three"}]}, ensure_ascii=False) + "\n")
    home = Home.open(tmp_path / "home")
    ingest_paths(home, [log])
    tid = _ids(home, 1)[0]
    review.add_label(home, tid, "ana", refusal_label="compliance", note="first\u2028second", sample="random")
    export = tmp_path / "export.jsonl"
    export.write_bytes(review.export_labels(home, actor="ana"))
    assert "\u2028" in export.read_text()
    r = import_labels(home, export, "ana")
    assert (r.rows, r.unchanged) == (1, 1)
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(export.read_bytes().replace(b"\n", b"\r\n"))
    assert import_labels(home, crlf, "ana").unchanged == 1


def test_a_csv_excel_saved_in_its_windows_encoding_says_how_to_save_it(home, tmp_path):
    f = tmp_path / "excel.csv"
    f.write_bytes("turn_id,note\r\nt1,café\r\n".encode("cp1252"))
    res = _cli_import(home, f, "--sample", "random")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "not UTF-8 text (byte 20)" in res.output and "Save As 'CSV UTF-8 (Comma delimited)'" in res.output
