"""A UTF-8 byte-order mark (Windows exports) is not data: a file starting with one, or a line of concatenated exports
carrying one, reads exactly like the same file without it, in every format. A log in another envelope (gzip, zip,
UTF-16) is named as such, with what to run, not "in no known log format"."""
import shutil
from pathlib import Path

import pytest

import monitor.ingest as ingest_mod
from monitor.home import Home
from monitor.ingest import Ingestor, ingest_paths, quarantine_rows, retry_quarantined

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
BOM = b"\xef\xbb\xbf"
GOOD = ["canonical_conversations.jsonl", "openai_pairs.jsonl", "sharegpt_array.json", "sharegpt_conversations.jsonl",
        "lmsys_conversation.jsonl", "wildchat_conversation.jsonl", "otlp_events.json",
        "otlp_input_output_messages.jsonl", "otlp_prompt_completion.json", "tabular_default.csv"]


def _counts(root: Path, path: Path):
    s = ingest_paths(Home.open(root), [path])
    return s.files[0].format, s.read, s.ingested, s.duplicates, s.quarantined


@pytest.mark.parametrize("name", GOOD)
def test_a_file_starting_with_a_bom_reads_like_the_file_without(tmp_path, name):
    plain = tmp_path / name
    shutil.copy(LOGS / name, plain)
    marked = tmp_path / f"bom_{name}"
    marked.write_bytes(BOM + plain.read_bytes())
    want = _counts(tmp_path / "a", plain)
    assert want[2] > 0
    assert _counts(tmp_path / "b", marked) == want


@pytest.mark.parametrize("workers", [0, 2])
def test_concatenated_exports_with_a_bom_each_lose_no_record(tmp_path, monkeypatch, workers):
    # `cat a.jsonl b.jsonl` of two Windows exports: a BOM at the start of the file and one in the middle, on the fast
    # path in this process and in worker processes.
    monkeypatch.setattr(Ingestor, "workers", workers)
    monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(ingest_mod, "CHUNK_BYTES", 2_000)
    lines = (LOGS / "canonical_conversations.jsonl").read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    f = tmp_path / "both.jsonl"
    f.write_bytes(BOM + b"".join(lines[:half]) + BOM + b"".join(lines[half:]))
    want = _counts(tmp_path / "a", LOGS / "canonical_conversations.jsonl")
    assert _counts(tmp_path / "b", f)[1:] == want[1:]


def test_a_record_quarantined_for_its_bom_is_ingested_on_retry(home, tmp_path):
    # Lakes written before a BOM was understood hold such records in quarantine: a retry takes them.
    from monitor.ingest import _parse_raw
    from collectors import get_collector

    line = (LOGS / "canonical_conversations.jsonl").read_bytes().splitlines()[0]
    c = get_collector("canonical", home.config)
    assert _parse_raw(c, 1, (BOM + line).decode("utf-8"), 1 << 20).error is None
    f = tmp_path / "one.jsonl"
    f.write_bytes(BOM + line + b"\n")
    s = ingest_paths(home, [f])
    assert (s.ingested, s.quarantined) == (s.read, 0)
    assert quarantine_rows(home) == [] and retry_quarantined(home).retried == 0


@pytest.mark.parametrize("kind,words", [("gzip", "gzip-compressed"), ("utf16", "UTF-16 text"), ("zip", "zip archive")])
def test_a_compressed_or_utf16_log_is_named_as_such(home, tmp_path, kind, words):
    import gzip
    import zipfile

    from monitor.errors import FormatError

    data = (LOGS / "canonical_conversations.jsonl").read_bytes()
    f = tmp_path / "export.jsonl"
    if kind == "gzip":
        f.write_bytes(gzip.compress(data))
    elif kind == "utf16":
        f.write_bytes(data.decode("utf-8").encode("utf-16"))
    else:
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("export.jsonl", data)
    with pytest.raises(FormatError) as e:
        ingest_paths(home, [f])
    assert e.value.message == (f"{f}: {words}, not a log as such" if kind != "zip" else
                               f"{f}: a zip archive, not a log as such")
    assert str(f) in e.value.hint
