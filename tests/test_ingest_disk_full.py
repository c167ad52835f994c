"""A lake write that fails (disk full, file size limit) is one line naming the lake, and publishes nothing."""
import json
import os
import resource
import signal
import subprocess
import sys

from monitor.home import Home


def _limit_file_size():
    # What a full disk looks like to the writer: writes past 256 KB fail with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_ingest_on_a_full_disk_fails_in_one_line_then_a_rerun_adds_everything(tmp_path):
    log = tmp_path / "big_replies.jsonl"
    with open(log, "w") as f:
        for i in range(600):
            f.write(json.dumps({"conversation_id": f"c-{i}", "timestamp": "2026-11-14T09:00:00Z", "model": "m@1",
                                "messages": [{"role": "user", "content": f"question {i}"},
                                             {"role": "assistant", "content": f"answer {i} " + os.urandom(1000).hex()}]})
                    + "\n")
    root = tmp_path / "home"
    cmd = [sys.executable, "-m", "monitor", "--home", str(root), "ingest", str(log), "--json"]
    Home.open(root).state  # the home and its state database exist: only the lake files are over the limit
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=_limit_file_size)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines and "cannot write to the lake at" in lines[0] and str(root / "lake") in lines[0], out.stderr
    home = Home.open(root)
    assert home.lake.row_count("turns") == 0
    assert list(home.lake.tmp_dir.iterdir()) == []  # no partial file left behind
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ingested"] == 600 and home.lake.row_count("turns") == 600


def test_a_state_database_that_cannot_be_written_is_one_line(tmp_path):
    """A fresh home's migrations on a full disk: one line naming the state database, not a SQLite traceback."""
    root = tmp_path / "home"
    Home.open(root)  # the folder and lake exist; state.sqlite is created by the next command, over the limit
    cmd = [sys.executable, "-m", "monitor", "--home", str(root), "alerts", "list", "--json"]

    def tiny():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    (root / "state.sqlite").unlink(missing_ok=True)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=tiny)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    first = out.stderr.strip().splitlines()[0]
    assert "state database" in first and "state.sqlite" in first and "disk I/O error" in first, out.stderr
