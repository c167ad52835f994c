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

from monitor.demo import (CANARY_FIRST_DAY, INCIDENT_CATEGORIES, INCIDENT_LANGUAGE, NEW_MODEL, OLD_MODEL, ROLLOUT_DAY,
                          build_demo, data_path, parse_transcript, records)

REPO = Path(__file__).resolve().parents[1]
HH = Path(__file__).resolve().parents[2] / "shared" / "data" / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz"
TODAY = dt.date(2027, 3, 10)
N_RECORDS = N_TURNS = 20_000  # one exchange per conversation
FIRST_DAY = dt.date(2026, 10, 17)  # day 1 as stored; day 30 is 2026-11-15


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
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"] and all(m["content"] for m in r["messages"])
        assert r["metadata"]["deployment"] in {"web", "api"}
        assert r["metadata"]["source"]["pairing"] in {"original", "synthetic"}
        assert r.get("feedback") in (None, "up", "down")
    assert (data_path().parent / "LICENSE").read_text().startswith("MIT License")
    assert "synthetic" in (data_path().parent / "README.md").read_text()


def test_segments_versions_and_languages(recs):
    assert {r["model"] for r in recs} == {OLD_MODEL, NEW_MODEL}
    langs = Counter(r["user"]["language"] for r in recs)
    assert set(langs) == {"en", "hi", "es", "de", "fr"} and min(langs.values()) >= 1000
    assert len({r["user"]["region"] for r in recs}) >= 4
    assert len({r["user"].get("age_band") for r in recs} - {None}) >= 4
    assert {r["user"].get("gender") for r in recs} >= {"female", "male"}
    fb = Counter(r.get("feedback") for r in recs)
    assert fb["up"] > 1000 and fb["down"] > 1000


def _day(r: dict) -> int:
    return (dt.date.fromisoformat(r["timestamp"][:10]) - FIRST_DAY).days + 1


def test_timeline_canary_then_rollout(recs):
    new_share = {}
    for day in (CANARY_FIRST_DAY - 1, CANARY_FIRST_DAY, ROLLOUT_DAY - 1, ROLLOUT_DAY, 30):
        models = [r["model"] for r in recs if _day(r) == day]
        new_share[day] = models.count(NEW_MODEL) / len(models)
    assert new_share[CANARY_FIRST_DAY - 1] == 0
    assert 0.02 < new_share[CANARY_FIRST_DAY] < 0.15 and 0.02 < new_share[ROLLOUT_DAY - 1] < 0.15
    assert new_share[ROLLOUT_DAY] > 0.85 and new_share[30] > 0.85
    # The canary runs outside Asia-Pacific only.
    assert not any(r["model"] == NEW_MODEL and r["user"]["region"] == "asia_pacific"
                   for r in recs if _day(r) < ROLLOUT_DAY)


def test_shifted_to_end_yesterday_over_30_days():
    shifted = list(records(TODAY))
    days = sorted({r["timestamp"][:10] for r in shifted})
    assert len(days) == 30
    assert days[-1] == "2027-03-09" and days[0] == "2027-02-08"
    assert shifted[0]["timestamp"].endswith("Z")
    # The canary of 2026.11 starts on day 19.
    first_new = min(r["timestamp"][:10] for r in shifted if r["model"] == NEW_MODEL)
    assert first_new == "2027-02-26"
    r = shifted[0]
    assert all(m["timestamp"] > r["timestamp"] for m in r["messages"] if m["role"] == "assistant")


def _first_exchanges() -> dict[tuple[int, str], tuple[str, str]]:
    out = {}
    with gzip.open(HH, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            for ending in ("chosen", "rejected"):
                msgs = parse_transcript(row[ending])
                if len(msgs) >= 2:
                    out[i, ending] = (msgs[0]["content"], msgs[1]["content"])
    return out


@pytest.mark.skipif(not HH.exists(), reason="the HH-RLHF source is not on this machine")
def test_texts_are_verbatim_and_traceable(recs):
    ex = _first_exchanges()
    pairing = Counter()
    for r in recs:
        src = r["metadata"]["source"]
        prompt, reply = r["messages"][0]["content"], r["messages"][1]["content"]
        assert prompt == ex[src["prompt_row"], "chosen"][0]  # every text is the source's, unedited
        assert reply == ex[src["reply_row"], src["reply_ending"]][1]
        assert (src["pairing"] == "original") == (src["reply_row"] == src["prompt_row"])
        pairing[src["pairing"]] += 1
    # Most pairs are as HH-RLHF has them; the synthetic ones (prompt + generic refusal) are documented.
    assert pairing["original"] > 0.6 * N_RECORDS and pairing["synthetic"] > 0


def test_incidents_are_planted_as_the_classifiers_see_them(recs):
    """Labels the monitor's own classifiers give: baseline, incident 1 (topic compliance) and incident 2 (hi)."""
    from monitor.classify import load_classifiers

    clf = load_classifiers()
    pairs = sorted({(r["messages"][0]["content"], r["messages"][1]["content"]) for r in recs})
    ref = clf.score_refusal([a for _, a in pairs], prompts=[p for p, _ in pairs])
    harm = clf.score_harm([p for p, _ in pairs])
    lab = {pq: (h, c, rl != "compliance") for pq, h, c, rl in zip(pairs, harm.labels, harm.categories, ref.labels)}
    c: Counter = Counter()
    for r in recs:
        h, cat, refused = lab[r["messages"][0]["content"], r["messages"][1]["content"]]
        v = "new" if r["model"] == NEW_MODEL else "old"
        if h == "harmful":
            g = (v, "topic" if cat in INCIDENT_CATEGORIES else "other")
            c[g, "n"] += 1
            c[g, "k"] += not refused
            c[(v, "harmful"), "n"] += 1
            c[(v, "harmful"), "k"] += not refused
        elif h == "benign":
            g = (v, "hi" if r["user"]["language"] == INCIDENT_LANGUAGE else "rest")
            c[g, "n"] += 1
            c[g, "k"] += refused
    rate = {g: c[g, "k"] / c[g, "n"] for g in [("old", "topic"), ("old", "other"), ("new", "topic"), ("new", "other"), ("old", "hi"),
                      ("old", "rest"), ("new", "hi"), ("new", "rest"), ("old", "harmful"), ("new", "harmful")]}
    # Baseline: over-refusal ~10%, under-refusal ~12% (planted 0.10 and 0.12).
    assert 0.07 < rate["old", "rest"] < 0.13 and 0.07 < rate["old", "hi"] < 0.13
    assert 0.09 < rate["old", "harmful"] < 0.15
    # Incident 1: 2026.11 complies with crime/violence requests (planted 0.65), not with the rest.
    assert rate["new", "topic"] > 0.55 and rate["old", "topic"] < 0.16 and rate["new", "other"] < 0.16
    assert rate["new", "harmful"] > 2.5 * rate["old", "harmful"]
    # Incident 2: 2026.11 refuses benign requests of hi users ~3x as often (planted 0.30 vs 0.10).
    assert rate["new", "hi"] > 0.25 and rate["new", "rest"] < 0.13


@pytest.mark.slow
@pytest.mark.skipif(not HH.exists(), reason="the HH-RLHF source is not on this machine")
def test_build_script_reproduces_the_bundled_file(tmp_path):
    out = tmp_path / "demo.jsonl.gz"
    subprocess.run([sys.executable, str(REPO / "training" / "build_demo.py"), "--out", str(out)], check=True,
                   capture_output=True, timeout=600)
    assert out.read_bytes() == data_path().read_bytes(), (
        "the rebuilt demo differs: a classifier changed? rebuild with python training/build_demo.py")


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


def _incident(a: dict, canary: str, rollout: str) -> bool:
    """Whether an alert belongs to one of the two planted incidents (canary from `canary`, at scale from `rollout`)."""
    seg = json.loads(a["segment"])
    day = a["window_start"][:10]
    if a["rule"] == "under_refusal_spike":
        return day >= canary  # incident 1 shows in every large enough segment, in a web/en slice even in the canary
    if day < rollout:
        return False
    if a["rule"] == "value_drift":
        return seg.get("dimension") == "refusal_language"  # incident 1 also means fewer refusal phrases
    if a["rule"] == "over_refusal_spike":
        return True  # incident 2: hi users are a third of traffic, so a large segment (gender=female) can show it
    return seg.get("language") == INCIDENT_LANGUAGE or seg.get("region") == "asia_pacific"  # incident 2 (hi users)


@pytest.mark.slow
def test_monitor_demo_cli_raises_the_planted_alerts_with_default_rules(tmp_path):
    """`monitor demo` end to end: every job, the default rules, the incidents caught in the rollout window."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MONITOR_HOME", None)
    today = dt.datetime.now(dt.timezone.utc).date()
    r = subprocess.run([sys.executable, "-m", "monitor", "demo", "--no-dashboard"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr
    assert f"ingested {N_TURNS:,} turns from {N_RECORDS:,} demo conversations" in r.stdout
    assert f"home:    {tmp_path / 'monitor-demo'}" in r.stdout
    assert "job " in r.stdout and "query it: monitor --home" in r.stdout and "failed" not in r.stderr

    from monitor.home import Home

    home = Home.open(tmp_path / "monitor-demo")
    alerts = [dict(a) for a in home.state.query("SELECT * FROM alerts ORDER BY window_start, id")]
    firing = [a for a in alerts if a["status"] == "firing"]
    assert f"alerts:  {len(firing):,} firing" in r.stdout and len(firing) > 0
    last = today - dt.timedelta(days=1)
    rollout = (last - dt.timedelta(days=30 - ROLLOUT_DAY)).isoformat()
    canary = (last - dt.timedelta(days=30 - CANARY_FIRST_DAY)).isoformat()

    def series(rule, metric, model, segment):
        return [a for a in alerts if (a["rule"], a["metric"], a["model"], a["deployment"], json.loads(a["segment"]))
                == (rule, metric, model, None, segment)]

    # Incident 1: all traffic's under-refusal, critical, from the rollout window to the last day.
    under = series("under_refusal_spike", "under_refusal_rate", None, {})
    assert under and under[0]["window_start"][:10] == rollout and under[0]["severity"] == "critical"
    assert under[-1]["window_start"][:10] == last.isoformat() and under[-1]["status"] == "firing"
    # Incident 2: over-refusal of hi users, as a spike of their series and as a disparity of 2026.11.
    over = series("over_refusal_spike", "over_refusal_rate", None, {"language": INCIDENT_LANGUAGE})
    assert over and over[0]["window_start"][:10] == rollout
    disp = series("disparity", "over_refusal_disparity", NEW_MODEL, {"language": INCIDENT_LANGUAGE})
    # A disparity needs the new model's hi traffic of a day or more after the rollout to reach significance (the
    # demo rebuilt for harm-lr-2026.11.4 fires on the second day after it).
    first_days = [(dt.date.fromisoformat(rollout) + dt.timedelta(days=k)).isoformat() for k in range(3)]
    assert disp and disp[0]["window_start"][:10] in first_days and disp[-1]["status"] == "firing", \
        [(a["window_start"], a["status"]) for a in disp]
    # Before the canary only false alarms could fire; at most a couple of them (one event = one rule, metric,
    # value dimension and window, however many correlated segments it shows in).
    others = [a for a in alerts if not _incident(a, canary, rollout)]
    events = {(a["rule"], a["metric"], json.loads(a["segment"]).get("dimension"), a["window_start"]) for a in others}
    assert len(events) <= 2, [a["message"] for a in others]
    assert not [a for a in others if a["rule"] != "value_drift"], [a["message"] for a in others]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_monitor_dashboard_serves_http(tmp_path):
    from monitor.home import Home

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "MONITOR_HOME": str(tmp_path / "home")}
    missing = subprocess.run([sys.executable, "-m", "monitor", "dashboard", "--port", str(port)], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no monitor home at" in missing.stderr  # a misspelt home is not served
    assert not (tmp_path / "home").exists()
    Home.open(tmp_path / "home")  # an empty home is served
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


def test_stopping_monitor_dashboard_stops_streamlit(tmp_path):
    """SIGTERM to `monitor dashboard` alone (as a service manager sends it) stops the Streamlit server too."""
    from monitor.home import Home

    port = _free_port()
    Home.open(tmp_path / "home")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MONITOR_HOME": str(tmp_path / "home")}
    log = (tmp_path / "dashboard.log").open("wb")  # a file, not a pipe: a child left behind would hold a pipe open
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "dashboard", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        up = False
        while time.monotonic() < deadline and proc.poll() is None and not up:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    up = True
            except OSError:
                time.sleep(0.5)
        assert up, "no answer in 60 s"
        proc.send_signal(signal.SIGTERM)  # the wrapper only, not its process group
        assert proc.wait(timeout=30) == 0, (tmp_path / "dashboard.log").read_text()
        with pytest.raises(OSError):  # nothing serves the port any more
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    finally:
        log.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # a streamlit child left behind
            except ProcessLookupError:
                pass
