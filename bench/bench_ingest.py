"""Ingest benchmark: `monitor ingest` of N generated canonical turns vs plain DuckDB `read_json` into a table.

Usage: python bench/bench_ingest.py [--rows 1000000] [--keep DIR] [--repeat N] [--forgotten-keys K]
Each side runs in its own subprocess so peak RSS (ru_maxrss of the child) and CPU time are measured separately.
The reference runs before and after each of ours and the ratio uses their mean, since the load on a shared machine
drifts; the load average is printed with each run. The ingest's worker processes (fast path) report their own
peak RSS and, together, their CPU time.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write "
         "go see number no way could people my than first water been call who oil its now find long down day did "
         "get come made may part recipe bread flour router password reset refund policy doctor symptoms").split()
REFUSALS = ["I'm sorry, but I can't help with that.", "I cannot assist with this request."]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write `rows` canonical JSONL records (one exchange each), a few with PII to redact."""
    rnd = random.Random(seed)
    t0 = dt.datetime(2026, 10, 1)
    langs = ["en", "de", "fr", "es", "hi", "pt"]
    with open(path, "w") as f:
        for i in range(rows):
            prompt = " ".join(rnd.choices(WORDS, k=rnd.randint(8, 40)))
            reply = rnd.choice(REFUSALS) if i % 9 == 0 else " ".join(rnd.choices(WORDS, k=rnd.randint(20, 120)))
            if i % 50 == 0:
                prompt += f" my email is user{i}@example.com and phone +1 415 555 {i % 10000:04d}"
            rec = {"conversation_id": f"conv-{i // 3}", "turn": i % 3 + 1,
                   "timestamp": (t0 + dt.timedelta(seconds=i * 2.6)).isoformat() + "Z",
                   "model": "assistant@2026-10" if i % 2 else "assistant@2026-11",
                   "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}],
                   "user": {"id": f"u{i % 5000}", "language": langs[i % len(langs)], "region": "EU" if i % 3 else "NA",
                            "age_band": ["18-24", "25-34", "35-54", "55+"][i % 4]},
                   "feedback": "up" if i % 7 == 0 else None,
                   "metadata": {"deployment": "web" if i % 4 else "api", "app_version": "3.2"}}
            f.write(json.dumps(rec) + "\n")


CHILD_OURS = """
import sys, time, resource
from monitor.home import Home
from monitor.ingest import ingest_paths
home = Home.open(sys.argv[1])
if int(sys.argv[3]):  # K random keys of records `monitor forget` deleted: ingest checks every record against them
    import secrets
    with home.state.tx() as c:
        c.executemany("INSERT INTO forgotten_keys (key, kind, audit_id) VALUES (?, 'turn_id', 0)",
                      ((secrets.token_hex(32),) for _ in range(int(sys.argv[3]))))
t = time.perf_counter()
s = ingest_paths(home, [sys.argv[2]])
secs = time.perf_counter() - t
# Worker processes have been joined by now, so RUSAGE_CHILDREN holds the largest worker's peak.
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(secs, s.ingested, s.read, me.ru_maxrss, kids.ru_maxrss, me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime)
"""

CHILD_DUCKDB = """
import sys, time, resource, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("SET enable_progress_bar=false")
t = time.perf_counter()
con.execute("CREATE TABLE turns AS SELECT * FROM read_json(?, format='newline_delimited')", [sys.argv[2]])
n = con.execute("SELECT count(*) FROM turns").fetchall()[0][0]
con.execute("CHECKPOINT")
secs = time.perf_counter() - t
me = resource.getrusage(resource.RUSAGE_SELF)
print(secs, n, n, me.ru_maxrss, 0, me.ru_utime + me.ru_stime, 0)
"""


def run(code: str, *args: str, label: str) -> tuple[float, int, int, float, float, float, float, float]:
    print(label, flush=True)
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    secs, n, read, rss_kb, child_kb, cpu, child_cpu = out.stdout.strip().splitlines()[-1].split()
    load = (load + os.getloadavg()[0]) / 2
    print(f"  {secs[:6]} s, load average {load:.2f}, CPU {float(cpu):.1f} s + workers {float(child_cpu):.1f} s",
          flush=True)
    return float(secs), int(n), int(read), int(rss_kb) / 1024, int(child_kb) / 1024, load, float(cpu), float(child_cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", help="folder to keep the generated file in (scratch homes there are deleted)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measurements in a row (reference, ours, reference, ours, ..., reference)")
    ap.add_argument("--forgotten-keys", type=int, default=0,
                    help="record keys of forgotten users in the home before each ingest (the check's cost)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"turns-{args.rows}.jsonl"
    if not data.exists():
        t = time.perf_counter()
        generate(data, args.rows)
        print(f"generated {args.rows:,} rows ({data.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f}s")
    ref = run(CHILD_DUCKDB, str(work / f"ref-{time.time_ns()}.duckdb"), str(data), label="duckdb read_json")
    for i in range(args.repeat):
        ours = run(CHILD_OURS, str(work / f"home-{time.time_ns()}"), str(data), str(args.forgotten_keys),
                   label=f"monitor ingest ({args.forgotten_keys:,} forgotten keys)")
        after = run(CHILD_DUCKDB, str(work / f"ref-{time.time_ns()}.duckdb"), str(data), label="duckdb read_json")
        assert ours[1] == args.rows, f"ingested {ours[1]} of {args.rows}"
        print(json.dumps(_result(args.rows, data, ref, ours, after) | {"forgotten_keys": args.forgotten_keys},
                         indent=2), flush=True)
        ref = after
    for scratch in list(work.glob("home-*")) + list(work.glob("ref-*.duckdb*")):  # the data file stays
        shutil.rmtree(scratch) if scratch.is_dir() else scratch.unlink()


def _result(rows: int, data: Path, ref1: tuple, ours: tuple, ref2: tuple) -> dict:
    """One measurement: ours against the mean of the reference runs just before and just after it."""
    ref_s = (ref1[0] + ref2[0]) / 2
    workers = os.cpu_count() or 1
    return {
        "rows": rows, "file_mb": round(data.stat().st_size / 1e6, 1),
        "duckdb_read_json": {"seconds": [round(ref1[0], 2), round(ref2[0], 2)],
                             "rows_per_s": round(rows / ref_s), "peak_rss_mb": round(max(ref1[3], ref2[3])),
                             "load_average": [round(ref1[5], 2), round(ref2[5], 2)],
                             "cpu_seconds": [round(ref1[6], 1), round(ref2[6], 1)]},
        "monitor_ingest": {"seconds": round(ours[0], 2), "turns_per_s": round(ours[1] / ours[0]),
                           "peak_rss_mb": round(ours[3]), "worker_peak_rss_mb": round(ours[4]),
                           # Forked workers share pages with the parent, so this sum over-counts.
                           "total_peak_rss_mb_upper_bound": round(ours[3] + (workers if workers > 1 else 0) * ours[4]),
                           "load_average": round(ours[5], 2),
                           # CPU time (user + system): this process, and its worker processes together.
                           "cpu_seconds": {"main": round(ours[6], 1), "workers": round(ours[7], 1)}},
        "ratio": round(ours[0] / ref_s, 2),
        # CPU time is distorted by the other load on the machine much less than wall time.
        "cpu_ratio": round((ours[6] + ours[7]) / ((ref1[6] + ref2[6]) / 2), 2),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    main()
