"""Worker results handed over as shared-memory Arrow files, and the lake's partition split, change no stored row."""
import io
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import monitor.ingest as ingest_mod
from monitor import lake as lake_mod

from test_ingest_fastpath import _assert_same, _mixed_file, _run, _snapshot


def _shared_files(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(ingest_mod._SHARED_PREFIX))


def test_shared_memory_handoff_same_rows_as_pipe_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_mod, "CHUNK_BYTES", 3_000)
    monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 0)
    f = _mixed_file(tmp_path / "mixed.jsonl", n=700, seed=3)
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.setattr(ingest_mod, "SHARED_DIR", str(shm))
    handed = []
    load = ingest_mod.load_shared
    monkeypatch.setattr(ingest_mod, "load_shared", lambda r: handed.append(isinstance(r[0], str)) or load(r))
    # Against the general path, with the hand-off through files.
    snap, counts = _assert_same(tmp_path, monkeypatch, [f], batch_rows=31, workers=2)
    assert len(handed) > 10 and all(handed) and _shared_files(shm) == []
    # The pipe (pickles) gives the same rows and counts.
    monkeypatch.setattr(ingest_mod, "SHARED_DIR", None)
    home, pipe_counts = _run(tmp_path, "pipe", [f], True, monkeypatch, batch_rows=31, workers=2)
    assert pipe_counts == counts and _snapshot(home) == snap
    # A hand-off folder that does not exist falls back to the pipe as well.
    monkeypatch.setattr(ingest_mod, "SHARED_DIR", str(tmp_path / "missing"))
    home, miss_counts = _run(tmp_path, "missing", [f], True, monkeypatch, batch_rows=31, workers=2)
    assert miss_counts == counts and _snapshot(home) == snap


def test_failed_shared_write_sends_tables_through_the_pipe(tmp_path, monkeypatch):
    from collectors import fast_canonical

    f = _mixed_file(tmp_path / "mixed.jsonl", n=200, seed=4)
    fast_canonical.init_worker(ingest_mod.dt.datetime(2026, 11, 20), 10, True, "canonical")
    want = fast_canonical.range_rows(str(f), 0, 1 << 62, 1 << 20)
    got = fast_canonical.range_rows_shared(str(f), 0, 1 << 62, 1 << 20, str(tmp_path / "no" / "such" / "dir"))
    assert not isinstance(got[0], str) and got[0].equals(want[0]) and got[1].equals(want[1]) and got[2:] == want[2:]
    out = str(tmp_path / "handoff")
    shared = fast_canonical.range_rows_shared(str(f), 0, 1 << 62, 1 << 20, out)
    assert shared[0] == out and os.path.exists(out + ".t") and os.path.exists(out + ".s")
    assert os.stat(out + ".t").st_mode & 0o077 == 0  # not readable by other users of a shared /dev/shm
    loaded = fast_canonical.load_shared(shared)
    assert loaded[0].equals(want[0]) and loaded[1].equals(want[1]) and loaded[2:] == want[2:]
    assert not os.path.exists(out + ".t") and not os.path.exists(out + ".s")


def test_sweep_deletes_files_of_dead_ingests_only(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    p = ingest_mod._SHARED_PREFIX
    names = [f"{p}{dead_pid}-aaaa-1.t", f"{p}{os.getpid()}-bbbb-2.t", f"{p}{os.getpid()}-cccc-3.s", "other-file"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    ingest_mod._sweep_shared(str(tmp_path), None)  # only the dead process's file goes
    assert sorted(os.listdir(tmp_path)) == sorted(names[1:])
    ingest_mod._sweep_shared(str(tmp_path), f"{p}{os.getpid()}-bbbb-")  # one run's files
    assert sorted(os.listdir(tmp_path)) == sorted(names[2:])


def _filter_partitions(data: pa.Table, key: str):
    """The lake's partition split before runs were sliced: one filter per distinct value."""
    col = data.column(key)
    if col.null_count:
        col = pc.fill_null(col, "unknown")
        data = data.set_column(data.schema.get_field_index(key), key, col)
    for value in pc.unique(col).to_pylist():
        yield [(key, str(value))], data.filter(pc.equal(data.column(key), value))


def _parquet_bytes(parts) -> list[tuple]:
    out = []
    for values, part in parts:
        buf = io.BytesIO()
        pq.write_table(part, buf, compression="zstd")
        out.append((values, buf.getvalue()))
    return out


def test_partition_split_writes_the_same_files_sorted_or_not():
    cases = [
        ["2026-01-01"] * 3 + ["2026-01-02"] * 2 + ["2026-01-03"],  # grouped: sliced
        ["2026-01-02", "2026-01-01", "2026-01-02"],  # a value in two runs: filtered
        ["2026-01-01", None, None, "2026-01-01"],  # nulls become "unknown"
        ["2026-01-05"] * 4,  # one value
        ["2026-01-05"],
    ]
    for dates in cases:
        n = len(dates)
        t1 = pa.table({"x": list(range(n)), "s": [f"v{i}" for i in range(n)], "date": pa.array(dates, pa.string())})
        chunked = pa.concat_tables([t1.slice(0, n // 2), t1.slice(n // 2)])  # batches arrive in chunks
        for t in (t1, chunked):
            want = _parquet_bytes(_filter_partitions(t, "date"))
            got = _parquet_bytes(lake_mod._partitions(t, ("date",)))
            assert got == want, dates
