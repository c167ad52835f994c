"""Real processes: SIGKILL mid-ingest then rerun, and a large ingest with two readers and compaction running."""
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from monitor.home import Home

REPO = Path(__file__).resolve().parents[1]
ROWS = 30_000
BATCH = 2_000
pytestmark = pytest.mark.slow


def _generate(path: Path, rows: int) -> None:
    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "bench" / "bench_ingest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.generate(path, rows)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "big.jsonl"
    _generate(path, ROWS)
    return path


def _home(tmp_path) -> Home:
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text(f"[ingest]\nbatch_rows = {BATCH}\n")
    return Home.open(root)


def _ingest_cmd(home: Home, path: Path) -> list[str]:
    return [sys.executable, "-m", "monitor", "--home", str(home.root), "ingest", str(path), "--json"]


def _counts(home: Home) -> tuple[int, int]:
    con = duckdb.connect()
    files = [str(p) for p in home.lake.files("turns")]
    n, distinct = con.execute("SELECT count(*), count(DISTINCT turn_id) FROM read_parquet($f)", {"f": files}).fetchall()[0]
    return n, distinct


def test_sigkill_mid_ingest_then_rerun_gives_exact_rows(tmp_path, big_file):
    home = _home(tmp_path)
    proc = subprocess.Popen(_ingest_cmd(home, big_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while home.lake.row_count("turns") < 2 * BATCH and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = home.lake.row_count("turns")
    assert 2 * BATCH <= partial < ROWS and partial % BATCH == 0, partial
    out = subprocess.run(_ingest_cmd(home, big_file), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    d = json.loads(out.stdout)
    assert d["read"] == ROWS and d["ingested"] == ROWS - partial and d["duplicates"] == partial
    assert _counts(home) == (ROWS, ROWS)


READER_SQL = textwrap.dedent("""
    import subprocess, sys, time, pathlib
    home, stop, out = sys.argv[1:4]
    q = ("SELECT (SELECT count(*) FROM turns) AS n, "
         "(SELECT count(*) FROM segments s ANTI JOIN turns t USING (turn_id)) AS orphans")
    with open(out, "w") as f:
        while not pathlib.Path(stop).exists():
            r = subprocess.run([sys.executable, "-m", "monitor", "--home", home, "sql", q, "--format", "csv"],
                               capture_output=True, text=True)
            line = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else "ERR " + r.stderr.strip()[-300:]
            f.write(line.replace(",", " ") + "\\n"); f.flush()
""")

READER_CATALOG = textwrap.dedent("""
    import duckdb, sys, time, pathlib
    home, stop, out = sys.argv[1:4]
    cat = pathlib.Path(home) / "catalog.duckdb"
    with open(out, "w") as f:
        while not pathlib.Path(stop).exists():
            if not cat.exists():
                time.sleep(0.05); continue
            try:
                con = duckdb.connect(str(cat), read_only=True)
                n, orphans = con.execute("SELECT (SELECT count(*) FROM turns), "
                    "(SELECT count(*) FROM segments s ANTI JOIN turns t USING (turn_id))").fetchall()[0]
                con.close()
                f.write(f"{n} {orphans}\\n")
            except Exception as e:
                f.write("ERR " + str(e).replace("\\n", " ")[:300] + "\\n")
            f.flush()
            time.sleep(0.05)
""")


def _read_log(path: Path) -> list[tuple[int, int]]:
    rows = []
    for line in path.read_text().splitlines():
        assert not line.startswith("ERR"), line
        if line.startswith("n "):
            continue
        n, orphans = line.split()
        rows.append((int(n), int(orphans)))
    return rows


def test_concurrent_readers_and_compaction_during_large_ingest(tmp_path, big_file):
    home = _home(tmp_path)
    stop = tmp_path / "stop"
    logs = {name: tmp_path / f"{name}.log" for name in ("sql", "catalog")}
    readers = [subprocess.Popen([sys.executable, "-c", code, str(home.root), str(stop), str(logs[name])])
               for name, code in (("sql", READER_SQL), ("catalog", READER_CATALOG))]
    ingest = subprocess.Popen(_ingest_cmd(home, big_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    merged = 0
    try:
        while ingest.poll() is None:
            merged += home.lake.compact("turns", min_files=2) + home.lake.compact("segments", min_files=2)
            time.sleep(0.3)
        assert ingest.returncode == 0, ingest.stderr.read().decode()
        time.sleep(2.5)  # let each reader see the final state at least once
    finally:
        stop.touch()
        for r in readers:
            r.wait(timeout=60)
        if ingest.poll() is None:
            ingest.kill()
    assert merged > 0, "compaction never ran during the ingest"
    for name, log in logs.items():
        rows = _read_log(log)
        assert rows, f"{name} reader made no queries"
        counts = [n for n, _ in rows]
        assert all(o == 0 for _, o in rows), f"{name}: segments referencing missing turns"
        assert all(b >= a for a, b in zip(counts, counts[1:])), f"{name}: count decreased: {counts}"
        assert all(n % BATCH == 0 for n in counts), f"{name}: a partial batch was visible: {counts}"
        assert counts[-1] == ROWS, f"{name}: final count {counts[-1]}"
    assert len(set(_read_log(logs["sql"]))) >= 2, "the sql reader never saw the ingest in progress"
    assert _counts(home) == (ROWS, ROWS)


def test_ctrl_c_reaching_the_parse_workers_prints_nothing_and_the_ingest_goes_on(tmp_path, big_file):
    # Ctrl-C signals the whole foreground process group. Here only the fast path's worker processes get it: they
    # must neither die with a KeyboardInterrupt traceback on stderr nor lose their chunk (the ingest completes).
    home = _home(tmp_path)
    proc = subprocess.Popen(_ingest_cmd(home, big_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[int] = []
    deadline = time.time() + 60
    while len(workers) < 2 and time.time() < deadline and proc.poll() is None:
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        workers = [int(k) for k in kids]
        time.sleep(0.02)
    assert workers, "the ingest started no worker processes"
    time.sleep(0.3)  # past their initializer
    for pid in workers:
        os.kill(pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert b"KeyboardInterrupt" not in err and b"ForkPoolWorker" not in err, err.decode()
    import json

    assert json.loads(out)["read"] == ROWS and _counts(home) == (ROWS, ROWS)
