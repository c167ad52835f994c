"""An inbox pass reads only what is new: files it ingested before, unchanged since, are neither sniffed nor hashed
again. The monitor does not own its inputs, so an inbox keeps every file ever dropped; the worker scans it every
`ingest_interval_s`, and hashing every old file on each pass made the pass cost grow with all the logs ever
received (bench/soak.py: a pass with nothing new took 0.1 s with 10 files in the inbox, 0.9 s with 165 twenty minutes
later, about 5 ms a file; 0.004 s with this cache)."""
import json
import os
import time

from monitor import ingest
from monitor.ingest import ALREADY_INGESTED, ingest_paths


def _lines(prefix: str, n: int) -> bytes:
    recs = [{"conversation_id": f"{prefix}-{i}", "turn": 1, "timestamp": f"2026-11-03T14:{i:02d}:00Z",
             "model": "assistant@2026.11", "messages": [{"role": "user", "content": f"Question {prefix} {i}?"},
                                                         {"role": "assistant", "content": f"Answer {prefix} {i}."}]}
            for i in range(n)]
    return b"".join(json.dumps(r).encode() + b"\n" for r in recs)


def _settled(path) -> None:
    """Date the file a minute back: dropped a while ago (a file changed in the last seconds is always read)."""
    past = time.time() - 60
    os.utime(path, (past, past))


def _count_reads(monkeypatch) -> list[str]:
    """Record every file the ingest sniffs or hashes."""
    seen: list[str] = []
    real_hash, real_detect = ingest.file_hash, ingest.detect

    def file_hash(path):
        seen.append(f"hash {path.name}")
        return real_hash(path)

    def detect(path, config):
        seen.append(f"detect {path.name}")
        return real_detect(path, config)

    monkeypatch.setattr(ingest, "file_hash", file_hash)
    monkeypatch.setattr(ingest, "detect", detect)
    return seen


def test_an_inbox_pass_does_not_read_again_the_files_it_ingested(home, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for k in range(3):
        (inbox / f"app-{k}.jsonl").write_bytes(_lines(f"c{k}", 5))
        _settled(inbox / f"app-{k}.jsonl")
    first = ingest_paths(home, [inbox])
    assert (first.ingested, first.files_skipped) == (15, 0)

    reads = _count_reads(monkeypatch)
    second = ingest_paths(home, [inbox])
    assert reads == []  # nothing changed: no file opened
    assert (second.read, second.files_skipped) == (0, 3)
    assert {f.note for f in second.files} == {ALREADY_INGESTED}

    # A file that grew is read again (its old lines are duplicates); a new file is read; the rest are not.
    with open(inbox / "app-1.jsonl", "ab") as f:
        f.write(_lines("c1x", 2))
    (inbox / "app-3.jsonl").write_bytes(_lines("c3", 4))
    _settled(inbox / "app-1.jsonl")
    _settled(inbox / "app-3.jsonl")
    third = ingest_paths(home, [inbox])
    assert sorted(reads) == ["detect app-1.jsonl", "detect app-3.jsonl", "hash app-1.jsonl", "hash app-3.jsonl"]
    assert (third.ingested, third.duplicates, third.files_skipped) == (6, 5, 2)

    # A byte-identical copy under a new name is hashed once and skipped by its content, then not read again.
    (inbox / "copy-of-0.jsonl").write_bytes((inbox / "app-0.jsonl").read_bytes())
    _settled(inbox / "copy-of-0.jsonl")
    reads.clear()
    fourth = ingest_paths(home, [inbox])
    assert reads == ["detect copy-of-0.jsonl", "hash copy-of-0.jsonl"]
    assert (fourth.read, fourth.files_skipped) == (0, 5)
    reads.clear()
    assert ingest_paths(home, [inbox]).files_skipped == 5 and reads == []


def test_a_file_rewritten_in_place_is_read_again(home, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "app.jsonl"
    path.write_bytes(_lines("a", 3))
    _settled(path)
    mtime = path.stat().st_mtime_ns
    assert ingest_paths(home, [inbox]).ingested == 3
    # Same size, and its modification time put back (`rsync -t`, `touch -r`): the change time still tells.
    path.write_bytes(_lines("b", 3))
    os.utime(path, ns=(mtime, mtime))
    assert ingest_paths(home, [inbox]).ingested == 3


def test_a_file_changed_just_now_is_hashed_on_every_pass(home, tmp_path, monkeypatch):
    # Its time stamps may not tick between two writes (coarse file-system clocks): size and times cannot prove a
    # file that changed in the last seconds unchanged, so it is hashed again until it has settled.
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "app.jsonl").write_bytes(_lines("a", 3))
    assert ingest_paths(home, [inbox]).ingested == 3
    reads = _count_reads(monkeypatch)
    assert ingest_paths(home, [inbox]).files_skipped == 1
    assert reads == ["detect app.jsonl", "hash app.jsonl"]
