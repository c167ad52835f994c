"""Benchmark the value scorer on real HH-RLHF replies, one core: `python bench/bench_values.py [--write]`."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from monitor.values import load_scorer  # noqa: E402

HH = Path("/work/shared/data/conversations/hh_rlhf_harmless_base/test.jsonl.gz")
OUT = REPO / "docs" / "benchmarks-values.md"
N = 50_000
PLUGINS = [
    {"name": "medical_caution", "family": "normative", "terms": ["see a doctor", "medical professional", "diagnos*"]},
    {"name": "money_talk", "family": "legal", "regex": r"\$\d+(?:\.\d\d)?"},
]


def replies() -> tuple[list[str], list[str]]:
    """Last assistant turns (chosen and rejected) and whole transcripts, as long-text stress."""
    with gzip.open(HH, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    last = [r[k].rsplit("\n\nAssistant:", 1)[1].strip() for r in rows for k in ("chosen", "rejected")]
    whole = [r["chosen"] for r in rows]
    return last, whole


def run(scorer, texts: list[str], repeat: int = 3) -> tuple[float, float]:
    """Best-of-`repeat` replies/second and tokens/second."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = scorer.score(texts)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best, float(res.n_tokens.sum()) / best


def main(argv: list[str]) -> int:
    """Run the benchmark, print a Markdown report, write it to docs/benchmarks-values.md with --write."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    last, whole = replies()
    batch = (last * (N // len(last) + 1))[:N]
    long_batch = (whole * (10_000 // len(whole) + 1))[:10_000]

    t0 = time.perf_counter()
    scorer = load_scorer()
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plug = load_scorer(PLUGINS)
    load_plug_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    cold = load_scorer().score(last)  # fresh scorer: its per-word-type cache starts empty
    cold_s = time.perf_counter() - t0
    mean_tokens = sum(cold.n_tokens) / len(last)
    mean_tokens_long = sum(scorer.score(whole).n_tokens) / len(whole)
    rows = [
        ("built-in, first pass incl. building the scorer (cold cache)", len(last), mean_tokens,
         len(last) / cold_s, float(cold.n_tokens.sum()) / cold_s),
        ("built-in dimensions, HH-RLHF last assistant turns", len(batch), mean_tokens, *run(scorer, batch)),
        ("built-in + 2 plugins (terms, regex), same replies", len(batch), mean_tokens, *run(plug, batch)),
        ("built-in dimensions, whole HH-RLHF transcripts", len(long_batch), mean_tokens_long,
         *run(scorer, long_batch)),
    ]
    lscpu = subprocess.run("lscpu | head", shell=True, capture_output=True, text=True).stdout.rstrip()
    lines = [
        "# Benchmark: value scorer (monitor.values)",
        "",
        f"Measured {dt.date.today().isoformat()} with `python bench/bench_values.py --write`, "
        f"scorer `{scorer.version}`, Python {platform.python_version()}, pinned to one core "
        "(`sched_setaffinity`), best of 3 runs. Target: >= 5,000 replies/second on one core.",
        "",
        "| workload | texts | mean tokens/text | replies/second | tokens/second |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, n, mt, rps, tps in rows:
        lines.append(f"| {name} | {n:,} | {mt:.0f} | {rps:,.0f} | {tps:,.0f} |")
    lines += [
        "",
        f"Building the scorer (reading and indexing all lexicons): {load_s * 1000:.0f} ms; "
        f"with the two plugins: {load_plug_s * 1000:.0f} ms.",
        "",
        "Replies are the 4,624 last assistant turns of the HH-RLHF harmless-base test split (chosen and rejected), "
        f"repeated to {N:,}; about 6% are unscored (too short or empty) and cost almost nothing, so the "
        "whole-transcript row is the fairer per-token figure. Cost grows linearly with tokens. The matcher caches "
        "what each distinct word starts; the first row shows a fresh scorer on unseen text, including its build.",
        "",
        "Machine (`lscpu | head`):",
        "",
        "```",
        lscpu,
        "```",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if "--write" in argv:
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
