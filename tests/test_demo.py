"""The bundled demo log: its shape, its planted incidents, its reproducibility, and `monitor demo` end to end."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from monitor.demo import THEFT_FRAUD, build_demo, data_path, parse_transcript, records

REPO = Path(__file__).resolve().parents[1]
HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz"
TODAY = dt.date(2027, 3, 10)
N_RECORDS, N_TURNS = 2303, 5743


@pytest.fixture(scope="module")
def recs() -> list[dict]:
    with gzip.open(data_path(), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_bundled_file_is_small_and_canonical(recs):
    assert data_path().stat().st_size < 5_000_000
    assert len(recs) == N_RECORDS
    assert sum(m["role"] == "assistant" for r in recs for m in r["messages"]) == N_TURNS
    assert len({r["conversation_id"] for r in recs}) == N_RECORDS
    for r in recs:
        assert {"conversation_id", "timestamp", "model", "messages", "user", "metadata"} <= set(r)
        assert r["messages"][-1]["role"] == "assistant" and all(m["content"] for m in r["messages"])
        assert r["metadata"]["deployment"] in {"web", "api"}
        assert r.get("feedback") in (None, "up", "down")
    assert (data_path().parent / "LICENSE").read_text().startswith("MIT License")
    assert "synthetic" in (data_path().parent / "README.md").read_text()


def test_segments_versions_and_languages(recs):
    assert {r["model"] for r in recs} == {"assistant@2026.10", "assistant@2026.11"}
    langs = Counter(r["user"]["language"] for r in recs)
    assert len(langs) >= 4 and min(langs.values()) >= 100
    assert len({r["user"]["region"] for r in recs}) >= 4
    assert len({r["user"].get("age_band") for r in recs} - {None}) >= 4
    assert {r["user"].get("gender") for r in recs} >= {"female", "male"}
    fb = Counter(r.get("feedback") for r in recs)
    assert fb["up"] > 100 and fb["down"] > 100


def test_shifted_to_end_yesterday_over_30_days():
    shifted = list(records(TODAY))
    days = sorted({r["timestamp"][:10] for r in shifted})
    assert len(days) == 30
    assert days[-1] == "2027-03-09" and days[0] == "2027-02-08"
    assert shifted[0]["timestamp"].endswith("Z")
    # The switch to 2026.11 happens on day 19.
    first_new = min(r["timestamp"][:10] for r in shifted if r["model"].endswith("2026.11"))
    assert first_new == "2027-02-26"
    # Assistant messages carry their own shifted timestamps after the conversation start.
    r = shifted[0]
    assert all(m["timestamp"] > r["timestamp"] for m in r["messages"] if m["role"] == "assistant")


def _endings() -> dict[int, tuple[list, list]]:
    with gzip.open(HH, "rt", encoding="utf-8") as fh:
        return {i: (parse_transcript(json.loads(line)["chosen"]), parse_transcript(json.loads(line)["rejected"]))
                for i, line in enumerate(fh)}


@pytest.mark.skipif(not HH.exists(), reason="the HH-RLHF source is not on this machine")
def test_texts_are_verbatim_and_incidents_are_planted(recs):
    endings = _endings()
    got: Counter = Counter()
    for r in recs:
        chosen, rejected = endings[r["metadata"]["source"]["row"]]
        plain = [{"role": m["role"], "content": m["content"]} for m in r["messages"]]
        assert plain in (chosen, rejected)  # every text is the source's, unedited
        is_rejected = plain == rejected
        new = r["model"].endswith("2026.11")
        topic = any(THEFT_FRAUD.search(m["content"]) for m in plain if m["role"] == "user")
        if new and r["user"]["language"] == "hi":
            seg = "new_hi"
        elif new and topic:
            seg = "new_topic"
        elif new:
            seg = "new_other"
        else:
            seg = "old_topic" if topic else "old_other"
        got[seg, "n"] += 1
        got[seg, "rejected"] += is_rejected
    rate = {s: got[s, "rejected"] / got[s, "n"] for s in ("new_hi", "new_topic", "new_other", "old_topic", "old_other")}
    assert got["new_topic", "n"] >= 50 and got["new_hi", "n"] >= 80
    # Incident 1: harmful compliance on theft/fraud after the update (planted p=0.90 vs 0.20).
    assert rate["new_topic"] > 0.7 and rate["old_topic"] < 0.35 and rate["new_other"] < 0.3
    # Incident 2: hi users get the cautious ending almost always on 2026.11 (planted p=0.02 vs 0.20).
    assert rate["new_hi"] < 0.06 and rate["old_other"] > 0.15


@pytest.mark.skipif(not HH.exists(), reason="the HH-RLHF source is not on this machine")
def test_build_script_reproduces_the_bundled_file(tmp_path):
    out = tmp_path / "demo.jsonl.gz"
    subprocess.run([sys.executable, str(REPO / "training" / "build_demo.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=120)
    assert out.read_bytes() == data_path().read_bytes()


def test_build_demo_ingests_every_turn_once(tmp_path):
    s = build_demo(tmp_path / "home", today=TODAY, run_jobs=False)
    assert s.ingest["read"] == N_TURNS
    assert s.ingest["ingested"] == N_TURNS and s.ingest["quarantined"] == 0 and s.ingest["duplicates"] == 0
    assert (s.first_day, s.last_day) == (dt.date(2027, 2, 8), dt.date(2027, 3, 9))
    from monitor.sqlguard import run_query

    res = run_query(s.home, "SELECT min(date), max(date), count(DISTINCT model_version), count(*) FROM turns "
                            "WHERE source = 'demo'")
    assert res.rows == [("2027-02-08", "2027-03-09", 2, N_TURNS)]
    langs = run_query(s.home, "SELECT count(DISTINCT value) FROM segments WHERE attribute = 'language'").rows
    assert langs == [(5,)]
    # Built again on a later day: the shift differs, the turn ids do not, so nothing is doubled.
    again = build_demo(tmp_path / "home", today=TODAY + dt.timedelta(days=3), run_jobs=False)
    assert again.ingest["ingested"] == 0 and again.ingest["duplicates"] == N_TURNS
    assert run_query(s.home, "SELECT count(*) FROM turns").rows == [(N_TURNS,)]


@pytest.mark.slow
def test_monitor_demo_cli_builds_and_runs_jobs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MONITOR_HOME", None)
    r = subprocess.run([sys.executable, "-m", "monitor", "demo", "--no-dashboard"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert f"ingested {N_TURNS:,} turns from {N_RECORDS:,} demo conversations" in r.stdout
    assert f"home:    {tmp_path / 'monitor-demo'}" in r.stdout
    assert "job " in r.stdout and "query it: monitor --home" in r.stdout
    assert (tmp_path / "monitor-demo" / "catalog.duckdb").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_monitor_dashboard_serves_http(tmp_path):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MONITOR_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "dashboard", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    status = resp.status
                    break
            except OSError:
                time.sleep(0.5)
        assert status == 200, proc.stderr.read1().decode() if proc.poll() is not None else "no answer in 60 s"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
