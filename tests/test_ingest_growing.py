"""An inbox file caught while it is still being copied or written is read once whole: its cut-off last line is never
quarantined as a malformed record that is then ingested too."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from monitor.home import Home
from monitor.ingest import quarantine_rows

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"


def _ingest(root: Path, inbox: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "monitor", "--home", str(root), "ingest", str(inbox), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_half_written_inbox_file_waits_then_is_read_whole(tmp_path):
    data = (LOGS / "canonical_conversations.jsonl").read_bytes()
    lines = data.splitlines(keepends=True)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    root = tmp_path / "home"
    with open(inbox / "live.jsonl", "wb") as f:
        # The writer stops halfway through the last line (a copy in progress, a buffered log writer).
        cut = len(lines[-1]) // 2
        f.write(b"".join(lines[:-1]) + lines[-1][:cut])
        f.flush()
        first = _ingest(root, inbox)
        assert first["read"] == 0 and first["files_skipped"] == 1, first
        assert "still being written" in first["files"][0]["note"]
        f.write(lines[-1][cut:])
    second = _ingest(root, inbox)
    assert (second["read"], second["quarantined"]) == (second["ingested"] + second["duplicates"], 0), second
    assert second["ingested"] > 0 and quarantine_rows(Home.open(root)) == []
    # A file that ends without a newline for good is read once it has settled.
    whole = inbox / "no_final_newline.jsonl"
    whole.write_bytes(data.rstrip(b"\n").replace(b'"c-1', b'"d-1'))
    past = time.time() - 60
    os.utime(whole, (past, past))
    third = _ingest(root, inbox)
    assert third["files_skipped"] == 1 and third["quarantined"] == 0 and third["read"] > 0, third
    # So is one stamped an hour ahead (copied with its time from a machine whose clock is fast): not left for ever.
    ahead = inbox / "from_a_fast_clock.jsonl"
    ahead.write_bytes(data.rstrip(b"\n").replace(b'"c-1', b'"e-1'))
    future = time.time() + 3600
    os.utime(ahead, (future, future))
    fourth = _ingest(root, inbox)
    assert fourth["files_skipped"] == 2 and fourth["quarantined"] == 0 and fourth["read"] > 0, fourth
