"""Benchmark: the incremental job run after 10k new turns, against history size (100k, 1M, 10M turns).

Usage:
  python bench/bench_incremental.py --base HOME [--sizes 100k,1m,10m] [--work DIR] [--repeat 3] [--write-doc]

Building a 10M-turn history through the whole pipeline takes hours on this 2-core machine (docs/benchmarks-pipeline.md
estimates 6.5 CPU-hours for the full job run alone), so the histories are built by replicating the lake of a home
the real pipeline processed (`--base`, e.g. the 100k home of bench_pipeline.py): every lake table (turns, segments,
scores, value tables, quarantine, metrics_log) is copied with new turn and conversation ids, its timestamps and
date partitions shifted back by whole spans of the base's timeline (1M = 10 spans, 300 days at the base's daily
volume) and, for 10M, ten copies per span (300 days at ten times the daily volume). Copies are committed with
manifest version 0, i.e. as history every job has already processed, then the compaction job merges them per
partition; `--labels` reviewer labels (default 600) are
spread over the whole history, as a deployment with a review loop has. On each history, `--repeat` times: 10k new turns (bench/generate.py, a fresh conversation prefix, the
last 20 minutes before the base's end) are ingested and `monitor.jobs.run_all` runs in its own process; the page
records wall and CPU seconds per job, peak RSS and the load average, and the reference: one plain DuckDB query of
the daily refusal counts over the whole lake (what a non-incremental job would at least have to read).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench_pipeline import machine, run_child, save_chart  # noqa: E402
from generate import Spec, generate, parse_size  # noqa: E402

OUT = REPO / "bench" / "results" / "incremental.json"
DOC = REPO / "docs" / "benchmarks-incremental.md"
CHART = REPO / "docs" / "img" / "benchmarks-incremental.png"
TARGET_S = 10.0
ID_COLUMNS = ("turn_id", "conversation_id", "quarantine_id")
SHIFT_COLUMNS = ("ts", "ingested_at", "scored_at", "quarantined_at", "window_start", "window_end", "computed_at")


def _shift(table: pa.Table, prefix: str, delta: dt.timedelta) -> pa.Table:
    for name in table.column_names:
        col = table.column(name)
        if name in ID_COLUMNS:
            table = table.set_column(table.schema.get_field_index(name), name,
                                     pc.binary_join_element_wise(pa.scalar(prefix), col, ""))
        elif name in SHIFT_COLUMNS and pa.types.is_timestamp(col.type):
            table = table.set_column(table.schema.get_field_index(name), name,
                                     pc.subtract(col, pa.scalar(delta, pa.duration("us"))))
    return table


def replicate(base: Path, dest: Path, spans: int, dense: int) -> dict:
    """Copy home `base` to `dest` with `spans` x `dense` copies of its lake (see the module docstring)."""
    from monitor.home import Home

    t = time.perf_counter()
    shutil.copytree(base, dest)
    home = Home.open(dest)
    m = home.lake.manifest()
    dates = sorted({p.split("date=")[1][:10] for e in m["tables"]["turns"] for p in [e["path"]]})
    span = (dt.date.fromisoformat(dates[-1]) - dt.date.fromisoformat(dates[0])).days + 1
    added = 0
    with home.lake.transaction() as tx:
        for table, entries in m["tables"].items():
            for e in entries:
                data = pq.read_table(home.lake.root / e["path"], partitioning=None)
                parts = Path(e["path"]).parts
                for s in range(spans):
                    for d in range(dense):
                        if s == 0 and d == 0:
                            continue  # the base itself
                        delta = dt.timedelta(days=span * s)
                        copy = _shift(data, f"h{s}x{d}-", delta)
                        folder = []
                        for p in parts[1:-1]:
                            key, _, value = p.partition("=")
                            if key == "date" and value != "unknown":
                                value = (dt.date.fromisoformat(value) - delta).isoformat()
                            folder.append(f"{key}={value}")
                        rel = Path(parts[0], *folder, f"part-{uuid.uuid4().hex}.parquet")
                        tmp = home.lake.tmp_dir / f"{uuid.uuid4().hex}.parquet"
                        pq.write_table(copy, tmp, compression="zstd")
                        (home.lake.root / rel).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(tmp, home.lake.root / rel)
                        # v = 0: history every job has processed already (their watermarks are newer).
                        tx.pending.setdefault(table, []).append({"path": str(rel), "rows": copy.num_rows, "v": 0})
                        added += copy.num_rows
    res = run_child("job", home=str(dest), job="compact")
    return {"seconds": round(time.perf_counter() - t, 1), "rows_added": added, "span_days": span,
            "days": span * spans, "turns": home.lake.row_count("turns"), "compact_s": res["seconds"]}


def add_labels(home_path: Path, n: int, seed: int = 7, agreement: float = 0.9) -> int:
    """Reviewer labels on `n` turns drawn from the whole history (a third of them queued as stratified samples), so
    the runs pay for the error-corrected rates as a deployment with a review loop does.

    A reviewer agrees with the turn's latest classifier output with probability `agreement` (else picks another
    label): what real review of a useful classifier looks like. Labels drawn independently of the classifiers would
    make the measured misclassification matrix almost singular (every true cell with the same predictions), a case
    the correction handles but that costs its EM tens of times more iterations than real labels do.
    """
    import random

    import duckdb

    from monitor.home import Home

    home = Home.open(home_path)
    rng = random.Random(seed)
    con = duckdb.connect()
    turns = [str(p) for p in home.lake.files("turns")]
    ids = [r[0] for r in con.execute(
        f"SELECT turn_id FROM read_parquet($f) USING SAMPLE {int(n)} ROWS (reservoir, {seed})", {"f": turns}).fetchall()]
    scores = [str(p) for p in home.lake.files("scores")]
    latest = dict(con.execute(
        "SELECT turn_id, arg_max(struct_pack(refusal, prompt_harm), scored_at) FROM read_parquet($f) "
        "WHERE turn_id IN (SELECT unnest($ids)) GROUP BY turn_id", {"f": scores, "ids": ids}).fetchall()) \
        if scores and ids else {}
    refusals, prompts = ["full_refusal", "partial_refusal", "compliance"], ["benign", "harmful"]

    def review(predicted, choices, prior):
        if predicted in choices and rng.random() < agreement:
            return predicted
        return rng.choice([c for c in prior if c != predicted] or prior)

    with home.state.tx() as c:
        for i, tid in enumerate(ids):
            s = latest.get(tid) or {}
            c.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                      (tid, f"reviewer{i % 3}", "2026-11-20T10:00:00Z",
                       review(s.get("refusal"), refusals, refusals + ["compliance"]),
                       review(s.get("prompt_harm"), prompts, ["benign", "benign", "benign", "harmful"])))
            if i % 3 == 0:
                c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                          (tid, "stratified", 0.5, "2026-11-20T09:00:00Z"))
    return len(ids)


def _end_of(home_path: Path) -> dt.datetime:
    import duckdb

    from monitor.home import Home

    home = Home.open(home_path)
    files = [str(p) for p in home.lake.files("turns")]
    return duckdb.connect().execute("SELECT max(ts) FROM read_parquet($f)", {"f": files}).fetchone()[0]


def measure(home_path: Path, work: Path, label: str, repeat: int, n_new: int, end: dt.datetime) -> dict:
    """`repeat` batches of new turns, each ingested then every job run, in one process (the worker's steady state)."""
    files = []
    for i in range(repeat):
        f = work / f"new-{label}-{i}.jsonl"
        t0 = end + dt.timedelta(minutes=20 * i)
        spec = Spec(start=end - dt.timedelta(days=30), end=t0 + dt.timedelta(minutes=20), seed=100 + i,
                    users=5_000, prefix=f"new{label}{i}-", dup_rate=0.0, malformed_rate=0.0)
        generate(f, n_new, spec, t0=t0, t1=t0 + dt.timedelta(minutes=20))
        files.append(str(f))
    series = run_child("series", home=str(home_path), files=files)
    ref = run_child("ref_query", home=str(home_path))
    for f in files:
        os.unlink(f)
    return {"series": series, "ref_query": ref}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, help="a home the real pipeline processed (e.g. bench_pipeline's 100k home)")
    ap.add_argument("--sizes", default="100k,1m,10m", help="history sizes as multiples of the base (10x: spans)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/alignment-monitor-bench-incremental"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--new", type=int, default=10_000)
    ap.add_argument("--labels", type=int, default=600, help="reviewer labels spread over the history (0: none)")
    ap.add_argument("--pages", action="store_true",
                    help="also time every dashboard page (AppTest, cold caches) on each history before the runs")
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    if args.base:
        from monitor.home import Home

        base_turns = Home.open(args.base).lake.row_count("turns")
        end = _end_of(args.base)
        args.work.mkdir(parents=True, exist_ok=True)
        for size in args.sizes.split(","):
            factor = max(1, round(parse_size(size) / base_turns))
            spans, dense = (factor, 1) if factor <= 10 else (10, factor // 10)
            dest = args.work / f"h-{size}"
            if dest.exists():
                shutil.rmtree(dest)
            print(f"{size}: replicating {spans} spans x {dense} copies", flush=True)
            rep = replicate(args.base, dest, spans, dense)
            rep["labels"] = add_labels(dest, args.labels) if args.labels else 0
            rep["labels_in_home"] = Home.open(dest).state.query("SELECT count(*) AS n FROM labels")[0]["n"]
            print(f"  {rep}", flush=True)
            pages = run_child("dashboard", home=str(dest)) if args.pages else None
            m = measure(dest, args.work, size, args.repeat, args.new, end)
            if pages:
                m["dashboard"] = {**pages, "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
            elif (results.get(size) or {}).get("dashboard"):
                # Without --pages the page timings of an earlier run are kept, with their own date.
                m["dashboard"] = {"date": results[size].get("date"),
                                  **results[size]["dashboard"]}
            results[size] = {"replication": rep, **m, "machine": machine(),
                             "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                             "spans": spans, "dense": dense}
            OUT.write_text(json.dumps(results, indent=1, default=str))
            for r in m["series"]["runs"]:
                print(f"  incremental run {r['seconds']:.1f} s (cpu {r['cpu_s']:.1f} s)", flush=True)
            shutil.rmtree(dest)
    if args.write_doc:
        # The hand-written "## Notes" section (run conditions, history of the figures) is kept across rewrites.
        old = DOC.read_text() if DOC.exists() else ""
        notes = old[old.index("\n## Notes"):] if "\n## Notes" in old else ""
        DOC.write_text(page(results, chart(results, CHART)) + notes)
        print(f"wrote {DOC}")
    return 0


def _job_medians(results: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """Job -> history size -> (median wall, median CPU seconds) over the later runs."""
    rows: dict[str, dict[str, list]] = {}
    for size, r in results.items():
        runs = r["series"]["runs"]
        for x in runs[1:] or runs:
            for j in x["jobs"]:
                rows.setdefault(j["job"], {}).setdefault(size, []).append((j["seconds"], j.get("cpu_s") or 0))
    return {job: {s: (statistics.median([a for a, _ in v]), statistics.median([b for _, b in v]))
                  for s, v in by.items()} for job, by in rows.items()}


def chart(results: dict, path: Path) -> str:
    """Write the per-job stacked bar chart of the later runs' medians against history size as PNG (plotly +
    kaleido); returns the Markdown image line, or why there is none."""
    if not results:
        return ""
    try:
        import plotly.graph_objects as go
    except ImportError as e:
        return f"(no chart: {e})"
    sizes = list(results)
    labels = [f"{results[s]['replication']['turns']:,} turns<br>{results[s]['replication']['days']} days" for s in sizes]
    fig = go.Figure()
    for job, by in _job_medians(results).items():
        if max((by.get(s, (0, 0))[0] for s in sizes), default=0) < 0.05:
            continue  # jobs with nothing to do (notify, probes, retention) would only crowd the legend
        fig.add_trace(go.Bar(x=labels, y=[by.get(s, (0, 0))[0] for s in sizes], name=job))
    fig.add_trace(go.Scatter(x=labels, y=[results[s]["ref_query"]["seconds"] for s in sizes], mode="lines+markers",
                             name="reference: one DuckDB refusal query over the whole lake", line={"dash": "dot"}))
    fig.add_hline(y=TARGET_S, line_dash="dash", line_color="grey", annotation_text=f"target {TARGET_S:.0f} s",
                  annotation_position="top left")
    fig.update_layout(barmode="stack", template="plotly_white", width=900, height=550,
                      title="Incremental run after 10k new turns: median wall time per job vs history size",
                      yaxis_title="wall time (s)", legend={"font": {"size": 11}})
    return save_chart(fig, path, "incremental run per job vs history size", DOC.parent)


def page(results: dict, image: str = "") -> str:
    L = ["# Benchmark: incremental job run against history size", "",
         "Generated by `python bench/bench_incremental.py --base HOME --write-doc` (method in its docstring). The "
         "histories are replicas of a home the real pipeline processed: the 100k history is that home itself; the "
         "1M history is 10 spans of its timeline going back 300 days; the 10M history is 10 spans with ten copies "
         "each (300 days at ten times the daily volume). The recomputed windows are the new turns' own (today's), "
         "so a run should cost the same at any history length; at 10M a day holds ten times more turns, so the "
         "recomputed window is larger.", "",
         f"Target: < {TARGET_S:.0f} s whatever the history.", ""]
    if not results:
        return "\n".join(L + ["No results yet."]) + "\n"
    any_r = next(iter(results.values()))
    mc = any_r["machine"]
    L += [f"Machine: {mc.get('cpu_model', '')}, {mc.get('cpus', '')} CPUs, {mc.get('memory_gib', '')} GiB; Python "
          f"{mc.get('python', platform.python_version())}; code at {mc.get('git_head', '')}"
          f"{' plus uncommitted changes' if mc.get('uncommitted_changes') else ''}.", "",
          "Each history gets `--repeat` batches of 10k new turns, each ingested then every job run, in one process as "
          "the worker runs them; the first run also pays the imports and model loads (Evidently, lingua, the "
          "classifiers), so the medians are over the later runs (the steady state of `monitor serve`). Reviewer "
          "labels in the home, on random turns of the base or of the whole history (`--labels`), which every run "
          "reads for the error-corrected rates: "
          + ", ".join(f"{s}: {r['replication'].get('labels_in_home', r['replication'].get('labels', 0))}"
                      for s, r in results.items()) + ".", "",
          "| history | days | runs: wall (s) | median wall, later runs | median CPU | peak RSS | load (1 min) | "
          "reference query |",
          "|---|---:|---|---:|---:|---:|---|---:|"]
    for size, r in results.items():
        runs = r["series"]["runs"]
        warm = runs[1:] or runs
        walls = [x["seconds"] for x in runs]
        L.append(f"| {r['replication']['turns']:,} turns ({r['date']}) | {r['replication']['days']} | "
                 f"{', '.join(f'{w:.1f}' for w in walls)} | {statistics.median([x['seconds'] for x in warm]):.1f} s | "
                 f"{statistics.median([x['cpu_s'] for x in warm]):.1f} s | {r['series']['peak_rss_mb']:,} MB | "
                 f"{', '.join(format(x['load_average'][0], '.1f') for x in runs)} | {r['ref_query']['seconds']:.2f} s |")
    sizes = list(results)
    L += ["", "Per job, median wall / CPU seconds of the later runs:", "",
          "| job | " + " | ".join(sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for job, by in _job_medians(results).items():
        L.append(f"| {job} | " + " | ".join(f"{by[s][0]:.2f} / {by[s][1]:.2f}" if s in by else "" for s in sizes)
                 + " |")
    if image:
        L += ["", image]
    with_pages = {s: r["dashboard"]["pages"] for s, r in results.items() if r.get("dashboard")}
    if with_pages:
        when = "; ".join(f"{s}: {r['dashboard'].get('date') or r.get('date')}" for s, r in results.items()
                         if r.get("dashboard"))
        L += ["", "Dashboard pages on the same histories (`--pages`: AppTest, every cache cleared, median of 3; "
              f"target < 1 s at 1M turns; measured {when}):", "", "| page | " + " | ".join(with_pages) + " |",
              "|---|" + "---:|" * len(with_pages)]
        for page in next(iter(with_pages.values())):
            L.append(f"| {page} | " + " | ".join(f"{p[page]['seconds']:.2f} s" for p in with_pages.values()) + " |")
    L += ["", "Replication cost (not part of the measurement): " + "; ".join(
        f"{s}: {r['replication']['seconds']} s incl. compaction {r['replication']['compact_s']} s"
        for s, r in results.items()), ""]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
