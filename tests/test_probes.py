"""Counterfactual probes: the bundled template set, the send/ingest loop against a local fake model server, and
probe disparity flagged for the one group the fake model treats differently."""
import datetime as dt
import importlib.util
import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest

from monitor.db import connect
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS
from monitor.probes.runner import endpoint, load_templates, run_if_due

REPO = Path(__file__).resolve().parents[1]
DISPARITY = next(j for j in JOBS if j.name == "disparity")
PROBES = next(j for j in JOBS if j.name == "probes")
NOW = dt.datetime(2026, 11, 20, 12)
REFUSAL = "I'm sorry, but I can't help with that request."
ANSWER = ("Sure! Here are a few practical steps: start with the basics, write down what you need, and ask a "
          "qualified professional if anything is unclear.")


class FakeModel:
    """An OpenAI-compatible /v1/chat/completions server on 127.0.0.1 that refuses prompts naming `refuse_names`."""

    def __init__(self, refuse_names=(), fail_names=()):
        self.refuse_names, self.fail_names = set(refuse_names), set(fail_names)
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.auth.append(self.headers.get("Authorization"))
                words = set(body["messages"][-1]["content"].replace(",", " ").replace(".", " ").split())
                if self.path != "/v1/chat/completions" or words & fake.fail_names:
                    self.send_response(404 if self.path != "/v1/chat/completions" else 400)
                    self.end_headers()
                    return
                reply = REFUSAL if words & fake.refuse_names else ANSWER
                out = json.dumps({"id": "c", "object": "chat.completion", "model": body["model"], "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out.encode())))
                self.end_headers()
                self.wfile.write(out.encode())

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def names_of(origin: str) -> set[str]:
    return {t["swap"] for t in load_templates() if t["attributes"].get("name_origin") == origin}


def probe_home(root: Path, url: str, extra: str = "") -> Home:
    root.mkdir()
    (root / "monitor.toml").write_text(
        f'[probes]\nenabled = true\nurl = "{url}"\nmodel = "assistant-v3"\ninterval_hours = 24\n'
        f"[disparity]\nmin_n = 50\ndetect_language = false\n{extra}")
    return Home.open(root)


def oracle_scores(home: Home) -> int:
    """Score probe turns from the known reply texts (the fake model answers with one of two fixed texts)."""
    con = connect(home)
    rows = con.execute("SELECT turn_id, assistant_message, date FROM turns").fetchall()
    t = pa.table({"turn_id": [r[0] for r in rows],
                  "refusal": ["full_refusal" if r[1] == REFUSAL else "compliance" for r in rows],
                  "prompt_harm": ["benign"] * len(rows), "refusal_version": ["oracle"] * len(rows),
                  "scored_at": [NOW] * len(rows), "date": [r[2] for r in rows]})
    return home.lake.append("scores", t)


def test_templates_swap_only_the_identity():
    rows = load_templates()
    assert len(rows) == len({r["probe_id"] for r in rows})
    by_template = defaultdict(set)
    for r in rows:
        if r["family"] == "identity":
            (attr, term), = r["attributes"].items()
            art = ("an " if term[0].lower() in "aeiou" else "a ") + term
            by_template[r["template"]].add(r["prompt"].replace(art, "<X>"))
        else:
            by_template[(r["template"], r["attributes"]["gender"])].add(r["prompt"].replace(r["swap"], "<X>"))
    assert all(len(v) == 1 for v in by_template.values()), [v for v in by_template.values() if len(v) > 1]
    origins = {r["attributes"].get("name_origin") for r in rows} - {None}
    assert origins == {"Arab", "Asian", "Black", "Latino", "White"}
    assert {r["expected"] for r in rows} == {"benign"}


def test_bundled_templates_are_reproducible():
    spec = importlib.util.spec_from_file_location("build_probes", REPO / "training" / "build_probes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rebuilt = mod.build(6, mod.SEED)
    assert [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rebuilt] == \
        (REPO / "monitor" / "probes" / "templates.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("url,expected", [
    ("http://h:8000", "http://h:8000/v1/chat/completions"),
    ("http://h:8000/v1/", "http://h:8000/v1/chat/completions"),
    ("http://h/api/v1/chat/completions", "http://h/api/v1/chat/completions"),
])
def test_endpoint(url, expected):
    assert endpoint(url) == expected


def test_probe_loop_flags_only_the_group_the_model_treats_differently(tmp_path, monkeypatch):
    fake = FakeModel(refuse_names=names_of("Arab"))
    monkeypatch.setenv("PROBE_KEY", "sk-test")
    try:
        home = probe_home(tmp_path / "home", fake.url, "")
        (home.root / "monitor.toml").write_text((home.root / "monitor.toml").read_text().replace(
            "interval_hours = 24", 'interval_hours = 24\napi_key_env = "PROBE_KEY"'))
        home = Home.open(home.root)
        r = run_job(home, PROBES, now=NOW)
        assert r.status == "ok" and r.rows == len(load_templates())
        assert set(fake.auth) == {"Bearer sk-test"} and fake.requests[0]["model"] == "assistant-v3"
        # Not due again within probes.interval_hours.
        assert run_if_due(home, NOW + dt.timedelta(hours=3), "again") == 0
        assert len(fake.requests) == len(load_templates())
    finally:
        fake.close()
    con = connect(home)
    assert con.execute("SELECT DISTINCT source FROM turns").fetchall() == [("probe",)]
    attrs = {a for (a,) in con.execute("SELECT DISTINCT attribute FROM segments").fetchall()}
    assert {"gender", "name_origin", "religion", "probe_template", "probe_group"} <= attrs
    oracle_scores(home)
    assert run_job(home, DISPARITY, now=NOW).status == "ok"
    df = connect(home).execute("""SELECT segment, value, n, details FROM metrics
                                  WHERE metric = 'probe_over_refusal_disparity' AND model IS NULL""").df()
    got = {s: json.loads(d) for s, d in zip(df["segment"], df["details"])}
    arab = got['{"name_origin": "Arab"}']
    assert arab["adverse"] and arab["significant"] and arab["source"] == "probe"
    assert df.set_index("segment").loc['{"name_origin": "Arab"}', "value"] == 1.0
    adverse = sorted(s for s, d in got.items() if d["adverse"])
    assert adverse == ['{"name_origin": "Arab"}']
    # Gender is balanced across name origins: no disparity between female and male names.
    assert not got['{"gender": "female"}']["significant"] and not got['{"gender": "male"}']["significant"]
    # Identity probes have 8 prompts per term at one sample each: reported, below min_n, never significant.
    muslim = got['{"religion": "Muslim"}']
    assert muslim["min_n_ok"] is False and muslim["significant"] is False


def test_failed_requests_are_counted_not_ingested(tmp_path):
    sample = load_templates()[:24]  # three names x eight templates; the second name's probes fail
    fail = {sample[8]["swap"]}
    fake = FakeModel(fail_names=fail)
    try:
        home = probe_home(tmp_path / "home", fake.url)
        from monitor.probes.runner import run_probes
        out = run_probes(home, NOW, "r1", templates=sample)
    finally:
        fake.close()
    n_fail = sum(1 for t in sample if t["swap"] in fail)
    assert n_fail == 8
    assert out["failed"] == n_fail and out["replies"] == 24 - n_fail and out["ingested"] == 24 - n_fail
    assert home.state.get("probes.last_summary")["failed"] == n_fail


def test_all_requests_failing_is_a_job_error(tmp_path):
    home = probe_home(tmp_path / "home", "http://127.0.0.1:9")  # discard port: connection refused
    r = run_job(home, PROBES, now=NOW)
    assert r.status == "failed" and "127.0.0.1:9" in r.message


@pytest.mark.skipif(importlib.util.find_spec("monitor.classify") is None
                    or not hasattr(__import__("monitor.classify", fromlist=["x"]), "load_classifiers"),
                    reason="the refusal classifier (score job) is not available in this checkout yet")
def test_probe_loop_with_the_real_score_job(tmp_path):
    from monitor.jobs import discover
    fake = FakeModel(refuse_names=names_of("Arab"))
    try:
        home = probe_home(tmp_path / "home", fake.url)
        assert run_job(home, PROBES, now=NOW).status == "ok"
    finally:
        fake.close()
    assert run_job(home, discover()["score"], now=NOW).status == "ok"
    assert run_job(home, DISPARITY, now=NOW).status == "ok"
    df = connect(home).execute("""SELECT segment, details FROM metrics
                                  WHERE metric = 'probe_refusal_disparity' AND model IS NULL""").df()
    adverse = sorted(s for s, d in zip(df["segment"], df["details"]) if json.loads(d)["adverse"])
    assert adverse == ['{"name_origin": "Arab"}']
