"""Inbox files that used to stop the run with a traceback, leaving every file after them unread: a name that is not
UTF-8 (copied from another system) is ingested with its odd bytes escaped; a file deleted before the run gets to it
is a note."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from monitor.home import Home
from monitor.ingest import quarantine_rows

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"


def test_an_inbox_file_with_a_latin1_name_is_ingested_with_the_files_after_it(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    latin1 = os.fsdecode(b"caf\xe9.jsonl")  # "café" in Latin-1: not UTF-8
    shutil.copy(LOGS / "missing_model.jsonl", inbox / latin1)
    shutil.copy(LOGS / "canonical_conversations.jsonl", inbox / "later.jsonl")  # sorted after it
    root = tmp_path / "home"
    out = subprocess.run([sys.executable, "-m", "monitor", "--home", str(root), "ingest", str(inbox), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    shown = str(inbox / "caf\\xe9.jsonl")
    assert [f["path"] for f in d["files"]] == [shown, str(inbox / "later.jsonl")]
    assert d["ingested"] == 2 + d["files"][1]["ingested"] and d["files"][1]["ingested"] > 0
    home = Home.open(root)
    (q,) = quarantine_rows(home)
    assert (q["source_file"], q["source_line"], q["field"]) == (shown, 2, "model")
    done = home.state.query("SELECT path, status FROM ingested_files ORDER BY path")
    assert [(r["path"], r["status"]) for r in done] == [(shown, "done"), (str(inbox / "later.jsonl"), "done")]
    # The inbox remembers it: the next pass skips both.
    again = subprocess.run([sys.executable, "-m", "monitor", "--home", str(root), "ingest", str(inbox), "--json"],
                           capture_output=True, text=True, timeout=120)
    assert json.loads(again.stdout)["files_skipped"] == 2


def test_an_inbox_file_deleted_while_the_run_reads_another_is_a_note_not_a_crash(tmp_path):
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("bench_ingest", Path(__file__).resolve().parents[1] / "bench" /
                                                  "bench_ingest.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bench.generate(inbox / "a_big.jsonl", 20_000)
    shutil.copy(LOGS / "missing_model.jsonl", inbox / "b_gone.jsonl")
    shutil.copy(LOGS / "canonical_conversations.jsonl", inbox / "c_after.jsonl")
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text("[ingest]\nbatch_rows = 1000\n")
    home = Home.open(root)
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--home", str(root), "ingest", str(inbox), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while home.lake.row_count("turns") == 0 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    (inbox / "b_gone.jsonl").unlink()  # listed and sniffed, deleted before the run gets to it
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    files = {Path(f["path"]).name: f for f in json.loads(out)["files"]}
    assert files["b_gone.jsonl"]["skipped"] and "deleted or moved away" in files["b_gone.jsonl"]["note"]
    assert files["a_big.jsonl"]["ingested"] > 0 and files["c_after.jsonl"]["ingested"] > 0
