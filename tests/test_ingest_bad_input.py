"""Bad input never stops a file: each bad record is quarantined with its line, field and reason."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.errors import FormatError
from monitor.home import Home
from monitor.ingest import ingest_paths, ingest_records, quarantine_rows

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"

# fixture file -> (line of the bad record, field blamed, words of the reason). Each file has good lines 1 and 3.
CASES = {
    "malformed_json.jsonl": (2, None, "malformed JSON"),
    "invalid_utf8.jsonl": (2, None, "invalid UTF-8"),
    "missing_timestamp.jsonl": (2, "timestamp", "missing timestamp"),
    "unparseable_timestamp.jsonl": (2, "timestamp", "unparseable timestamp"),
    "missing_model.jsonl": (2, "model", "missing model"),
    "wrong_types.jsonl": (2, "messages", "must be a list"),
    "wrong_type_turn.jsonl": (2, "turn", "must be an integer"),
    "empty_messages.jsonl": (2, "messages", "empty messages"),
    "no_assistant_message.jsonl": (2, "messages", "no assistant message"),
    "unknown_role.jsonl": (2, "messages[1].role", "unknown role 'narrator'"),
    "future_timestamp.jsonl": (2, "timestamp", "in the future"),
    # model "assistant@2026-10" with model_version "2026-10-28"; line 3 gives "2026-10" both ways (taken once)
    "model_version_conflict.jsonl": (2, "model_version", "'2026-10-28' disagrees with the version '2026-10'"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_record_quarantined_rest_ingested(home, name):
    line, field, words = CASES[name]
    s = ingest_paths(home, [LOGS / name])
    assert (s.read, s.ingested, s.duplicates, s.quarantined) == (3, 2, 0, 1)
    (q,) = quarantine_rows(home)
    assert (q["source_line"], q["field"], q["source_format"]) == (line, field, "canonical")
    assert words in q["reason"], q["reason"]
    assert q["source_file"] == str(LOGS / name)
    assert q["raw"] and "c-101" in q["raw"]


def test_invalid_utf8_raw_kept_visible(home):
    ingest_paths(home, [LOGS / "invalid_utf8.jsonl"])
    (q,) = quarantine_rows(home)
    assert "\\xe9" in q["raw"] and "at byte" in q["reason"]


def test_line_of_several_mb_quarantined_truncated(tmp_path):
    home = Home.open(tmp_path / "home")
    (home.root / "monitor.toml").write_text("[ingest]\nmax_line_bytes = 1000000\n")
    home = Home.open(home.root)
    good = (LOGS / "missing_model.jsonl").read_text().splitlines()[0]
    huge = json.dumps({"conversation_id": "big", "timestamp": "2026-11-03T14:00:00Z", "model": "m",
                       "messages": [{"role": "user", "content": "x" * 3_000_000},
                                    {"role": "assistant", "content": "ok"}]})
    f = tmp_path / "long_line.jsonl"
    f.write_text(good + "\n" + huge + "\n" + good.replace("c-100", "c-103").replace("10 seconds", "12 seconds") + "\n")
    s = ingest_paths(home, [f])
    assert (s.read, s.ingested, s.quarantined) == (3, 2, 1)
    (q,) = quarantine_rows(home)
    assert q["source_line"] == 2 and "over ingest.max_line_bytes" in q["reason"] and "3,000," in q["reason"]
    assert len(q["raw"]) <= 4096


@pytest.mark.parametrize("name", ["not_a_log_format.jsonl", "not_a_log.txt"])
def test_file_in_no_known_format_is_one_clear_error(home, name):
    with pytest.raises(FormatError) as e:
        ingest_paths(home, [LOGS / name])
    assert name in str(e.value) and "canonical" in str(e.value) and "otlp" in str(e.value)
    assert home.lake.row_count("turns") == 0
    r = CliRunner().invoke(cli, ["--home", str(home.root), "ingest", str(LOGS / name)])
    assert r.exit_code == 1 and "not in any known log format" in r.output and "Traceback" not in r.output


def test_unknown_format_inside_folder_is_skipped_with_note(home, tmp_path):
    d = tmp_path / "inbox"
    d.mkdir()
    (d / "a.jsonl").write_bytes((LOGS / "canonical_conversations.jsonl").read_bytes())
    (d / "notes.txt").write_bytes((LOGS / "not_a_log.txt").read_bytes())
    s = ingest_paths(home, [d])
    assert s.ingested == 5 and s.files_skipped == 1
    assert "not in any known log format" in [f for f in s.files if f.skipped][0].note


def test_empty_file_reads_zero_with_note(home):
    s = ingest_paths(home, [LOGS / "empty.jsonl"])
    assert s.read == 0 and s.files[0].note == "empty file"
    r = CliRunner().invoke(cli, ["--home", str(home.root), "ingest", str(LOGS / "empty.jsonl"), "--json"])
    d = json.loads(r.output)
    assert r.exit_code == 0 and d["read"] == 0 and d["files"][0]["note"] == "empty file"


def test_ingest_records_without_a_file(home):
    lines = (LOGS / "malformed_json.jsonl").read_text().splitlines()
    s = ingest_records(home, list(enumerate(lines, 1)), source_name="http:push-1")
    assert (s.files[0].format, s.ingested, s.quarantined) == ("canonical", 2, 1)
    assert quarantine_rows(home)[0]["source_file"] == "http:push-1"


def test_collector_crash_is_quarantined_not_fatal(home, monkeypatch):
    from collectors.canonical import CanonicalCollector

    real = CanonicalCollector.to_turns

    def flaky(self, obj):
        if obj.get("conversation_id") == "c-101":
            raise KeyError("boom")
        return real(self, obj)

    monkeypatch.setattr(CanonicalCollector, "to_turns", flaky)
    s = ingest_paths(home, [LOGS / "future_timestamp.jsonl"])
    assert (s.ingested, s.quarantined) == (2, 1)
    assert "KeyError" in quarantine_rows(home)[0]["reason"]


def test_summary_line_tells_files_not_read_from_files_already_ingested(home, tmp_path):
    # A file in no known format was reported as "skipped (already ingested)": it was never read.
    d = tmp_path / "inbox"
    d.mkdir()
    (d / "a.jsonl").write_bytes((LOGS / "canonical_conversations.jsonl").read_bytes())
    ingest_paths(home, [d])
    (d / "notes.txt").write_bytes((LOGS / "not_a_log.txt").read_bytes())
    r = CliRunner().invoke(cli, ["--home", str(home.root), "ingest", str(d)])
    assert r.exit_code == 0, r.output
    line = r.output.splitlines()[0]
    assert "1 file(s) skipped (already ingested)" in line and "1 file(s) not read" in line, line
    assert f"[{d / 'notes.txt'}: not in any known log format (looked for: " in line, line


def _otlp_span(n: int, model: str, version: str) -> dict:
    def attr(k, v):
        return {"key": k, "value": {"stringValue": v}}

    return {"traceId": f"t{n}", "spanId": f"s{n}", "startTimeUnixNano": str(1762200000000000000 + n * 10**9),
            "attributes": [attr("gen_ai.request.model", model), attr("gen_ai.model.version", version),
                           attr("gen_ai.prompt", f"question {n}"), attr("gen_ai.completion", f"answer {n}")]}


def _version_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Per format: a file whose first record gives a version that disagrees with its name@version model and whose
    second gives the same version both ways, and the field the first is quarantined under."""
    ts = "2026-11-03T14:02:11Z"
    canon = [{"conversation_id": f"c-{i}", "timestamp": ts, "model": "assistant@2026-10", "metadata": {"model_version": v},
              "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
             for i, v in ((1, "2026-10-28"), (2, "2026-10"))]
    openai = [{"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"q{i}"}]},
               "response": {"created": 1762180931, "model": "gpt-4o@2024-08",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"a{i}"}}]},
               "metadata": {"conversation_id": f"o-{i}", "model_version": v}}
              for i, v in ((1, "2024-11"), (2, "2024-08"))]
    share = [{"id": f"s-{i}", "model": "vicuna@13b", "model_version": v,
              "conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
             for i, v in ((1, "7b"), (2, "13b"))]
    otlp = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        _otlp_span(1, "gpt-4o@2024-08", "2024-11"), _otlp_span(2, "gpt-4o@2024-08", "2024-08")]}]}]}
    files = {
        "canonical": ("v.jsonl", "\n".join(json.dumps(r) for r in canon), "metadata.model_version"),
        "openai": ("v.jsonl", "\n".join(json.dumps(r) for r in openai), "metadata.model_version"),
        "sharegpt": ("v.jsonl", "\n".join(json.dumps(r) for r in share), "model_version"),
        "tabular": ("v.csv", "prompt,response,timestamp,model,version\n"
                             f"q1,a1,{ts},bot@v1,v2\nq2,a2,{ts},bot@v1,v1", "version"),
        "otlp": ("v.json", json.dumps(otlp), "gen_ai.model.version"),
    }
    out = {}
    for fmt, (name, text, field) in files.items():
        d = tmp_path / fmt
        d.mkdir()
        (d / name).write_text(text + "\n")
        out[fmt] = (d / name, field)
    return out


@pytest.mark.parametrize("fmt", ["canonical", "openai", "sharegpt", "tabular", "otlp"])
def test_model_version_given_twice_must_agree_in_every_format(tmp_path, fmt):
    # stored as "assistant@2026-10@2026-10-28" before: a model of its own in every metric grouped by model
    home = Home.open(tmp_path / "home")
    path, field = _version_files(tmp_path)[fmt]
    s = ingest_paths(home, [path])
    assert (s.read, s.ingested, s.duplicates, s.quarantined) == (2, 1, 0, 1)
    (q,) = quarantine_rows(home)
    line = 2 if fmt == "tabular" else 1  # a CSV row's file line (the header is line 1); an OTLP span's number
    assert (q["source_file"], q["source_line"], q["field"], q["source_format"]) == (str(path), line, field, fmt)
    assert "disagrees with the version" in q["reason"] and "\n" not in q["reason"] and "1" in q["raw"]
    con = __import__("monitor.db", fromlist=["connect"]).connect(home)
    try:
        [(model, version)] = con.execute("SELECT model, model_version FROM turns").fetchall()
    finally:
        con.close()
    assert model.count("@") == 1 and model.endswith("@" + version), (model, version)


@pytest.mark.parametrize("endpoint", ["/v1/logs", "/v1/traces"])
def test_worker_endpoints_quarantine_a_disagreeing_version_too(tmp_path, endpoint):
    # the worker spools each request body and ingests it through the same collectors as a file
    from monitor.worker.server import ingest_spooled, write_spool

    home = Home.open(tmp_path / "home")
    fmt = "canonical" if endpoint == "/v1/logs" else "otlp"
    path, _ = _version_files(tmp_path)[fmt]
    counts = ingest_spooled(home, write_spool(home, path.read_bytes(), path.suffix), fmt)
    assert (counts["read"], counts["ingested"], counts["quarantined"]) == (2, 1, 1)


def test_agreeing_or_separate_version_is_taken_once():
    from collectors import RecordError, model_and_version

    assert model_and_version("assistant@2026-10", "2026-10") == ("assistant@2026-10", "2026-10")
    assert model_and_version("assistant", "2026-10") == ("assistant@2026-10", "2026-10")
    assert model_and_version("assistant@", "2026-10") == ("assistant@2026-10", "2026-10")
    assert model_and_version("assistant@2026-10") == ("assistant@2026-10", "2026-10")
    assert model_and_version("assistant", 3) == ("assistant@3", "3")
    assert model_and_version("assistant", "") == ("assistant", None)
    with pytest.raises(RecordError) as e:
        model_and_version("assistant@2026-10", "2026-10-28")
    assert e.value.field == "model_version" and "'2026-10-28' disagrees with the version '2026-10'" in e.value.reason
