"""Throughput of the lexical classifiers on one core, and bounded-memory streaming of a 100k-row file.

Usage: python bench/bench_classify.py [--n 20000] [--rows 100000] [--write docs/benchmarks-classify.md]
Pins itself to CPU 0 (os.sched_setaffinity) so the numbers are single-core.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"


def corpus() -> tuple[list[str], list[str]]:
    """Real replies and prompts from XSTest dev when available, else generated ones."""
    path = DATA / "refusal" / "xstest_dev.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in open(path, encoding="utf-8")]
        return [r["response"] for r in rows], [r["prompt"] for r in rows]
    rng = random.Random(0)
    words = "the a model answer python process kill time help sorry cannot here steps first then".split()
    replies = [" ".join(rng.choices(words, k=rng.randint(20, 200))) for _ in range(500)]
    return replies, [" ".join(rng.choices(words, k=10)) for _ in range(500)]


def rate(fn, items: list[str], repeat: int = 7) -> tuple[float, float]:
    """Items per second of wall time and of process CPU time (best of ``repeat`` runs each)."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(items)
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return len(items) / wall, len(items) / cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000, help="replies/prompts per timing run")
    ap.add_argument("--rows", type=int, default=100000, help="rows in the generated JSONL file")
    ap.add_argument("--write", type=Path, help="write a markdown report here")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    load_start = os.getloadavg()[0]

    from monitor.classify import load_classifiers

    t0 = time.perf_counter()
    clf = load_classifiers()
    load_s = time.perf_counter() - t0
    replies, prompts = corpus()
    reps = (args.n // len(replies)) + 1
    many_replies = (replies * reps)[: args.n]
    many_prompts = (prompts * reps)[: args.n]
    mean_len = sum(map(len, many_replies)) / len(many_replies)
    clf.score_refusal(many_replies[:200])
    r_rate = rate(clf.score_refusal, many_replies)
    h_rate = rate(clf.score_harm, many_prompts)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        with open(src, "w", encoding="utf-8") as fh:
            for i in range(args.rows):
                fh.write(json.dumps({"id": i, "prompt": prompts[i % len(prompts)],
                                     "response": replies[i % len(replies)], "model": "bench"}) + "\n")
        # Stream in a fresh process so its peak RSS is the streaming footprint alone.
        code = ("import json, resource, sys, time; sys.path.insert(0, sys.argv[3]); "
                "from monitor.classify import load_classifiers; from monitor.classify.stream import classify_file; "
                "clf = load_classifiers(); t0 = time.perf_counter(); "
                "c = classify_file(sys.argv[1], sys.argv[2], clf, batch_size=2048); "
                "print(json.dumps({'s': time.perf_counter() - t0, 'counts': c, "
                "'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))")
        child = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code, str(src), str(dst), str(REPO)],
                               capture_output=True, text=True, check=True)
        res = json.loads(child.stdout)
        stream_s, counts, rss_stream = res["s"], res["counts"], res["rss_mb"]
        size_mb = src.stat().st_size / 1e6

    cpu = subprocess.run(["bash", "-c", "lscpu | head -15"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# Classifier benchmarks (lexical backend, one core)",
        "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC with `python bench/bench_classify.py` "
        f"(pinned to CPU 0; Python {platform.python_version()}; best of 7 timing runs). The machine is shared with other "
        f"jobs (load average {load_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end of the run, on "
        f"{os.cpu_count()} CPUs), so wall-clock "
        "rates understate a dedicated core; the CPU-time rate is the per-core figure.",
        "",
        "| what | result |",
        "| --- | --- |",
        f"| load both models (cold) | {load_s * 1000:.0f} ms |",
        f"| refusal scoring, XSTest replies (mean {mean_len:.0f} chars), n={len(many_replies):,} | **{r_rate[1]:,.0f} replies per CPU-second** "
        f"({r_rate[0]:,.0f}/s wall; target 10,000) |",
        f"| prompt-harm scoring, XSTest prompts, n={len(many_prompts):,} | {h_rate[1]:,.0f} prompts per CPU-second ({h_rate[0]:,.0f}/s wall) |",
        f"| `classify_file`, {args.rows:,} rows ({size_mb:.0f} MB JSONL, prompt + response each) | {stream_s:.1f} s "
        f"({args.rows / stream_s:,.0f} rows/s, both classifiers) |",
        f"| peak RSS of the streaming process | {rss_stream:.0f} MB (batch 2,048 rows; independent of file size) |",
        "",
        f"Rows scored: {counts['refusal_scored']:,} replies, {counts['harm_scored']:,} prompts.",
        "",
        "Machine (`lscpu | head -15`):",
        "",
        "```",
        cpu,
        "```",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        args.write.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
