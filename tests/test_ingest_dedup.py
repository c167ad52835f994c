"""Nothing doubled: re-ingest, inbox skip by hash, duplicates within a file, quarantine retry, CLI summary."""
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import connect
from monitor.home import Home
from monitor.ingest import ingest_paths, quarantine_rows, retry_quarantined

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"


def count(home, sql):
    con = connect(home)
    try:
        return con.execute(sql).fetchall()[0][0]
    finally:
        con.close()


def test_duplicates_within_a_file(home):
    s = ingest_paths(home, [LOGS / "duplicate_conversation.jsonl"])
    # Line 2 repeats line 1 (same turn id); line 3 is line 1's content under another conversation id.
    assert (s.read, s.ingested, s.duplicates, s.quarantined) == (4, 2, 2, 0)


def test_reingest_same_file_changes_nothing(home):
    f = LOGS / "malformed_json.jsonl"
    first = ingest_paths(home, [f])
    manifest = home.lake.manifest()
    again = ingest_paths(home, [f])
    assert (first.ingested, first.quarantined) == (2, 1)
    assert (again.read, again.ingested, again.duplicates, again.quarantined) == (3, 0, 3, 0)
    assert home.lake.manifest()["tables"] == manifest["tables"]
    assert count(home, "SELECT count(*) FROM quarantine") == 1


def test_folder_is_an_inbox_skipping_seen_files(home, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(LOGS / "canonical_conversations.jsonl", inbox / "a.jsonl")
    assert ingest_paths(home, [inbox]).ingested == 5
    shutil.copy(LOGS / "openai_pairs.jsonl", inbox / "b.jsonl")
    shutil.copy(LOGS / "canonical_conversations.jsonl", inbox / "a-copy.jsonl")  # same bytes, new name
    s = ingest_paths(home, [inbox])
    skipped = sorted(Path(f.path).name for f in s.files if f.skipped)
    assert skipped == ["a-copy.jsonl", "a.jsonl"] and s.ingested == 3
    rows = home.state.query("SELECT path, status, ingested FROM ingested_files ORDER BY path")
    assert [(Path(r["path"]).name, r["status"]) for r in rows] == [("a.jsonl", "done"), ("b.jsonl", "done")]


def test_inbox_job(home):
    from monitor.jobs import run_job
    from monitor.jobs.ingest_inbox import JOBS

    inbox = home.inbox_dirs()[0]
    inbox.mkdir(parents=True)
    shutil.copy(LOGS / "sharegpt_conversations.jsonl", inbox / "x.jsonl")
    r = run_job(home, JOBS[0])
    assert (r.status, r.rows) == ("ok", 3)
    assert run_job(home, JOBS[0]).rows == 0
    assert home.catalog_path.exists()


def test_redaction_can_be_switched_off(tmp_path):
    home = Home.open(tmp_path / "home")
    (home.root / "monitor.toml").write_text("[ingest]\nredact_pii = false\n")
    home = Home.open(home.root)
    ingest_paths(home, [LOGS / "canonical_conversations.jsonl"])
    assert count(home, "SELECT count(*) FROM turns WHERE user_message LIKE '%jane.doe@example.com%'") == 1
    assert count(home, "SELECT sum(redactions) FROM turns") == 0


def test_quarantine_retry_after_fixing_column_mapping(tmp_path):
    home = Home.open(tmp_path / "home")
    csv = tmp_path / "chats.csv"
    csv.write_text("id,when,llm,q,a\nx-1,2026-11-05T08:00:00Z,m1,Hi there,Hello!\n"
                   "x-2,2026-11-05T08:01:00Z,m1,What is 2+2?,4\n")
    s = ingest_paths(home, [csv])
    assert (s.ingested, s.quarantined) == (0, 2)
    q = quarantine_rows(home)
    assert {r["field"] for r in q} == {"assistant_message"} and "ingest.columns" in q[0]["reason"]
    # Still failing: stays quarantined, marked retried.
    out = retry_quarantined(home)
    assert (out.retried, out.ingested, out.still_quarantined) == (2, 0, 2)
    assert {r["status"] for r in quarantine_rows(home)} == {"retried"}
    (home.root / "monitor.toml").write_text('[ingest.columns]\nconversation_id = "id"\ntimestamp = "when"\n'
                                            'model = "llm"\nuser_message = "q"\nassistant_message = "a"\n')
    home = Home.open(home.root)
    r = CliRunner().invoke(cli, ["--home", str(home.root), "quarantine", "retry", "--all"])
    assert r.exit_code == 0, r.output
    assert "2 ingested (2 turns), 0 still quarantined" in r.output
    assert count(home, "SELECT count(*) FROM turns") == 2
    assert quarantine_rows(home) == []
    assert [r["status"] for r in quarantine_rows(home, include_resolved=True)] == ["ingested", "ingested"]
    audit = home.state.query("SELECT action, details FROM audit_log WHERE action='quarantine.retry'")
    assert len(audit) == 2 and json.loads(audit[-1]["details"])["ingested"] == 2
    # Retrying again finds nothing open; ingesting the file again now gives duplicates only.
    assert retry_quarantined(home).retried == 0
    s2 = ingest_paths(home, [csv])
    assert (s2.ingested, s2.duplicates) == (0, 2)


def test_cli_summary_line_json_and_quarantine_commands(home):
    runner = CliRunner()
    f = LOGS / "unknown_role.jsonl"
    r = runner.invoke(cli, ["--home", str(home.root), "ingest", str(f)])
    assert r.exit_code == 0, r.output
    assert f"ingested 2 turns from {f} (canonical); 0 duplicates; 1 quarantined; read 3 = 2 + 0 + 1" in r.output
    r = runner.invoke(cli, ["--home", str(home.root), "ingest", str(f), "--json"])
    d = json.loads(r.output)
    assert (d["read"], d["ingested"], d["duplicates"], d["quarantined"]) == (3, 0, 3, 0)
    assert d["files"][0]["format"] == "canonical" and d["balanced"] is True
    r = runner.invoke(cli, ["--home", str(home.root), "quarantine", "list", "--json"])
    (row,) = json.loads(r.output)
    assert row["field"] == "messages[1].role" and row["status"] == "open"
    r = runner.invoke(cli, ["--home", str(home.root), "quarantine", "show", row["quarantine_id"][:10]])
    assert r.exit_code == 0 and "narrator" in r.output and "unknown role" in r.output
    r = runner.invoke(cli, ["--home", str(home.root), "quarantine", "retry", row["quarantine_id"]])
    assert "1 still quarantined" in r.output
    r = runner.invoke(cli, ["--home", str(home.root), "quarantine", "show", "ffffffffffff"])
    assert r.exit_code == 1 and "no quarantined record" in r.output
    for args in (["ingest", "--help"], ["quarantine", "--help"], ["quarantine", "retry", "--help"]):
        assert "Example" in runner.invoke(cli, args).output


def test_batches_commit_turns_segments_and_quarantine_together(tmp_path):
    home = Home.open(tmp_path / "home")
    (home.root / "monitor.toml").write_text("[ingest]\nbatch_rows = 2\n")
    home = Home.open(home.root)
    ingest_paths(home, [LOGS / "canonical_conversations.jsonl", LOGS / "malformed_json.jsonl"])
    m = home.lake.manifest()
    batches = {pq.read_table(home.lake.root / e["path"]).column("batch_id")[0].as_py()
               for e in m["tables"]["turns"]}
    assert len(batches) >= 3
    assert count(home, "SELECT count(*) FROM segments s ANTI JOIN turns t USING (turn_id)") == 0
    # 5 + 2 good lines of the second file, one of which (c-100) the first file already delivered.
    assert count(home, "SELECT count(DISTINCT turn_id) FROM turns") == count(home, "SELECT count(*) FROM turns") == 6


def test_quarantine_list_shows_the_reason_of_a_failed_retry(home):
    """A retry with another format fails differently: the list says why the record fails now, and why it did."""
    runner = CliRunner()
    runner.invoke(cli, ["--home", str(home.root), "ingest", str(LOGS / "unknown_role.jsonl")])
    r = runner.invoke(cli, ["--home", str(home.root), "quarantine", "retry", "--all", "--format", "openai"])
    assert "1 still quarantined" in r.output, r.output
    r = runner.invoke(cli, ["--home", str(home.root), "quarantine", "list"])
    line = r.output.strip()
    assert "retried" in line and line.index("request: missing request object") < line.index("first: messages[1].role")
    # Retried with the original format again: the same reason as at first, said once.
    runner.invoke(cli, ["--home", str(home.root), "quarantine", "retry", "--all"])
    line = runner.invoke(cli, ["--home", str(home.root), "quarantine", "list"]).output.strip()
    assert line.endswith("messages[1].role: unknown role 'narrator'") and "first:" not in line
