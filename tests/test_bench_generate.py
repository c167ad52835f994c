"""The benchmark data generator (bench/generate.py) and the pipeline benchmark's report (bench/bench_pipeline.py)."""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
sys.path.insert(0, str(REPO / "bench"))

pytestmark = pytest.mark.skipif(not (DATA / "refusal" / "xstest_dev.jsonl").exists(), reason="no shared data")

END = dt.datetime(2026, 11, 20)


def spec(**kw):
    from generate import Spec

    return Spec(start=END - dt.timedelta(days=10), end=END, users=500, **kw)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    from generate import generate

    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    generate(a, 3000, spec(seed=1))
    generate(b, 3000, spec(seed=1))
    generate(c, 3000, spec(seed=2))
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_counts_times_and_mix_match_the_file(tmp_path):
    from generate import generate

    path = tmp_path / "h.jsonl"
    meta = generate(path, 5000, spec(dup_rate=0.02, malformed_rate=0.01))
    assert json.loads((tmp_path / "h.jsonl.meta.json").read_text())["turns"] == 5000
    raw = path.read_bytes().splitlines()
    assert len(raw) == meta["lines"] == 5000 + meta["duplicates"] + meta["malformed"]
    assert meta["duplicates"] > 0 and meta["malformed"] > 0
    good = []
    for line in raw:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "timestamp" in rec and "model" in rec and not rec["conversation_id"].startswith("bad-"):
            good.append(rec)
    assert len(good) == 5000 + meta["duplicates"]
    assert len({(r["conversation_id"], r["turn"]) for r in good}) == 5000
    times = [dt.datetime.fromisoformat(r["timestamp"].rstrip("Z")) for r in good]
    assert END - dt.timedelta(days=10) <= min(times) and max(times) < END
    # realistic mixes: several models, deployments, languages; multi-turn conversations; a share of refusals
    assert len({r["model"] for r in good}) >= 3
    assert len({r["metadata"]["deployment"] for r in good}) == 4
    assert len({r["user"]["language"] for r in good}) >= 6
    assert max(r["turn"] for r in good) >= 4
    assert 0.05 < meta["turns_by_source"]["refusal"] / 5000 < 0.2
    assert sum(meta["turns_by_source"].values()) == 5000


def test_ingest_counts_every_line_as_generated(tmp_path):
    from generate import generate

    from monitor.home import Home
    from monitor.ingest import ingest_paths

    path = tmp_path / "h.jsonl"
    meta = generate(path, 4000, spec(dup_rate=0.02, malformed_rate=0.01))
    home = Home.open(tmp_path / "home")
    s = ingest_paths(home, [path])
    assert (s.read, s.ingested, s.duplicates, s.quarantined) == (
        meta["read"], meta["turns"], meta["duplicates"], meta["malformed"])
    # a later batch with its own prefix is all new turns, in its own time range
    later = tmp_path / "later.jsonl"
    m2 = generate(later, 1000, spec(prefix="inc1-", dup_rate=0, malformed_rate=0),
                  END - dt.timedelta(hours=1), END)
    s2 = ingest_paths(home, [later])
    assert (s2.ingested, s2.duplicates, s2.quarantined) == (m2["turns"], 0, 0) == (1000, 0, 0)


def test_parse_size():
    from generate import parse_size

    assert [parse_size(x) for x in ("100k", "1m", "10M", "2500", "1.5m")] == [100_000, 1_000_000, 10_000_000,
                                                                               2500, 1_500_000]


def _step(seconds, **kw):
    return {"seconds": seconds, "peak_rss_mb": 100, "children_peak_rss_mb": 50, "cpu_s": seconds,
            "load_average": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], **kw}


def _result(n, ingest, score, incs, page_s):
    jobs = lambda t: _step(t, jobs=[{"job": "score", "status": "ok", "rows": 1, "seconds": t / 2},  # noqa: E731
                                    {"job": "disparity", "status": "ok", "rows": 1, "seconds": t / 2}])
    steps = {"generate": {"lines": n, "bytes": n * 600, "seconds": n / 1e5}, "ingest": _step(ingest),
             "ref_ingest": _step(ingest / 4),
             "score": _step(score), "ref_keyword": _step(0.1), "jobs_full": jobs(50.0),
             "ref_query_full": _step(0.5),
             "dashboard": _step(page_s, pages={"overview": {"seconds": page_s, "new_version_s": page_s,
                                                             "max_s": page_s, "exception": False}})}
    for i, t in enumerate(incs, 1):
        steps[f"incremental_{i}"] = {"ingest": _step(1.0), "jobs": jobs(t), "ref_query": _step(0.4)}
    return {"turns": n, "label": str(n), "steps": steps, "finished_at": "x",
            "machine": {"cpu_model": "cpu", "cpus": 2, "memory_gib": 1, "python": "3", "git_head": "abc"}}


def test_page_merges_sizes_and_judges_targets(tmp_path):
    from bench_pipeline import summarise, write_page

    out = tmp_path / "results"
    out.mkdir()
    (out / "pipeline-1m.json").write_text(json.dumps(_result(1_000_000, 100.0, 250.0, [12.0, 8.0, 9.0], 0.5)))
    (out / "pipeline-100k.json").write_text(json.dumps(_result(100_000, 10.0, 20.0, [3.0, 2.0, 30.0], 1.5)))
    s = summarise(_result(1_000_000, 100.0, 250.0, [12.0, 8.0, 9.0], 0.5))
    assert s["ingest_score_s"] == 350.0 and s["incremental_s"] == 9.0
    assert s["incremental_jobs"] == {"score": 4.5, "disparity": 4.5}
    text = write_page(out, tmp_path / "page.md", tmp_path / "chart.png")
    rows = {line.split("|")[1].strip() + " @" + line.split("|")[2].strip(): line for line in text.splitlines()
            if line.startswith("| ") and line.count("|") == 5}
    assert "not met" in rows["1M turns ingested and scored < 5 min @1,000,000"]  # 350 s > 300 s
    assert "| met |" in rows["incremental job run after 10k new turns < 10 s @1,000,000"]  # median 9 s
    # median of 3, 2 and 30 s is 3 s: one slow run does not decide it
    assert "| met |" in rows["incremental job run after 10k new turns < 10 s @100,000"]
    assert "| met |" in rows["every dashboard page < 1 s @1,000,000"]
    assert "not met" in rows["every dashboard page < 1 s @100,000"]
    assert (tmp_path / "page.md").read_text() == text


def test_summary_section_is_replaced_between_markers_and_never_added(tmp_path):
    from bench_pipeline import BEGIN, END, update_summary

    # A page kept by hand (no markers) is left alone: no second summary of the same targets is appended.
    summary = tmp_path / "benchmarks.md"
    by_hand = "# Benchmarks\n\n| what | target |\n|---|---|\n| ingest | 3x |\n\nRun any of them.\n"
    summary.write_text(by_hand)
    update_summary(["| t | first |"], ["| g |"], tmp_path / "missing.png", summary)
    assert summary.read_text() == by_hand
    # With the markers, the section between them is replaced and the rest kept.
    summary.write_text(by_hand + f"\n{BEGIN}\nold\n{END}\n\nAfter.\n")
    update_summary(["| t | first |"], ["| g |"], tmp_path / "missing.png", summary)
    update_summary(["| t | second |"], ["| g |"], tmp_path / "missing.png", summary)
    text = summary.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "| t | second |" in text and "| t | first |" not in text and "old" not in text
    assert text.startswith(by_hand) and text.endswith(f"{END}\n\nAfter.\n")