"""A file name that is not UTF-8 (copied from another system) is ingested and stored with its odd bytes escaped;
it no longer stops the run, which left every file after it in the inbox unread."""
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
