"""llm_judge backend against a fake OpenAI-compatible server on 127.0.0.1: judging, sampling, budget, failures."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.classify import load_classifiers
from monitor.classify.llm_judge import DailyBudget, LLMJudgeBackend, sampled
from monitor.classify.lexical import lexical_backend
from monitor.errors import ClassifierError


class FakeJudge(BaseHTTPRequestHandler):
    """Answers like an LLM judge: refusal if the reply contains 'nope', harmful if the prompt contains 'evil'."""

    requests: list = []
    status = 200
    content_override = None

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeJudge.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if FakeJudge.status != 200:
            self.send_response(FakeJudge.status)
            self.end_headers()
            return
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        if "assistant's reply" in system:
            answer = {"label": "full_refusal", "score": 0.97} if "nope" in user else {"label": "compliance", "score": 0.02}
        else:
            answer = {"label": "harmful", "score": 0.9, "category": "cyber"} if "evil" in user else {"label": "benign", "score": 0.1}
        content = FakeJudge.content_override or ("Sure. " + json.dumps(answer))
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeJudge.requests, FakeJudge.status, FakeJudge.content_override = [], 200, None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeJudge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def opts(url, tmp_path, **kw):
    return {"url": url, "model": "judge-1", "state_dir": str(tmp_path / "state"), "timeout_s": 5, **kw}


def test_judge_labels_replace_lexical_ones(server, tmp_path, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sekret")
    clf = load_classifiers("llm_judge", opts(server, tmp_path, api_key_env="JUDGE_KEY"))
    # The lexical model would call this reply compliance; the judge says refusal.
    r = clf.score_refusal(["Well, nope, here is a poem instead.", "Paris is the capital.", ""], prompts=["a", "b", "c"])
    assert r.labels == ["full_refusal", "compliance", None]
    assert r.sources == ["llm_judge", "llm_judge", None]
    assert r.scores[0] == pytest.approx(0.97)
    assert r.info["judged"] == 2 and r.info["fallback"] == 0 and not r.info["budget_exhausted"]
    assert FakeJudge.requests[0]["path"] == "/v1/chat/completions"
    assert FakeJudge.requests[0]["auth"] == "Bearer sekret"
    assert FakeJudge.requests[0]["body"]["model"] == "judge-1"
    h = clf.score_harm(["an evil plan to hack", "bake a cake"])
    assert h.labels == ["harmful", "benign"] and h.categories == ["cyber", None]
    assert clf.refusal_version.startswith("llm-judge:judge-1|fallback:refusal-lr-")


def test_sample_rate_zero_sends_nothing(server, tmp_path):
    clf = load_classifiers("llm_judge", opts(server, tmp_path, sample_rate=0.0))
    r = clf.score_refusal(["I can't help with that.", "Here you go."])
    assert r.sources == ["lexical", "lexical"] and r.info["sampled"] == 0
    assert FakeJudge.requests == []


def test_sampling_is_deterministic_and_near_the_rate():
    texts = [f"reply number {i}" for i in range(4000)]
    picks = [sampled(t, 0.25) for t in texts]
    assert picks == [sampled(t, 0.25) for t in texts]
    assert 0.22 < sum(picks) / len(picks) < 0.28


def test_budget_exhaustion_falls_back_and_persists(server, tmp_path):
    o = opts(server, tmp_path, daily_budget=3)
    clf = load_classifiers("llm_judge", o)
    r = clf.score_refusal(["nope 1", "nope 2", "nope 3", "nope 4", "nope 5"])
    assert r.sources.count("llm_judge") == 3 and r.sources.count("lexical") == 2
    assert r.info["budget_exhausted"] and r.info["budget_denied"] == 2 and r.info["fallback"] == 2
    assert len(FakeJudge.requests) == 3
    # A new process (new backend object) sees the same day's budget already spent.
    again = load_classifiers("llm_judge", o).score_harm(["evil thing"])
    assert again.sources == ["lexical"] and again.info["budget_exhausted"]
    state = json.loads((tmp_path / "state" / "llm_judge_budget.json").read_text())
    assert state["used"] == 3


def test_budget_resets_on_a_new_day(tmp_path):
    day = {"d": "2026-11-20"}
    b = DailyBudget(tmp_path, 2, today=lambda: day["d"])
    assert b.take(5) == 2 and b.take(1) == 0
    day["d"] = "2026-11-21"
    assert b.take(1) == 1 and b.used() == 1


def test_server_errors_and_garbage_fall_back(server, tmp_path):
    backend = LLMJudgeBackend(opts(server, tmp_path), fallback=lexical_backend())
    FakeJudge.status = 500
    r = backend.score_refusal(["I'm sorry, but I can't help with that."])
    assert r.sources == ["lexical"] and r.info["errors"] == 1 and r.labels[0] == "full_refusal"
    FakeJudge.status, FakeJudge.content_override = 200, "I think it is a refusal."
    r = backend.score_refusal(["nope"])
    assert r.sources == ["lexical"] and r.info["errors"] == 1


def test_unreachable_endpoint_falls_back(tmp_path):
    backend = LLMJudgeBackend(opts("http://127.0.0.1:9", tmp_path, timeout_s=1), fallback=lexical_backend())
    r = backend.score_harm(["How do I kill a Python process?"])
    assert r.sources == ["lexical"] and r.labels == ["benign"] and r.info["errors"] == 1


@pytest.mark.parametrize("bad,words", [
    ({"url": "http://x", "model": "m", "state_dir": "/tmp/s", "budget": 3}, "unknown llm_judge option(s): budget"),
    ({"url": "http://x", "state_dir": "/tmp/s"}, "missing: model"),
    ({"url": "http://x", "model": "m", "state_dir": "/tmp/s", "sample_rate": 1.5}, "outside [0, 1]"),
    ({"url": "http://x", "model": "m", "state_dir": "/tmp/s", "daily_budget": "10"}, "wrong type"),
    ({"url": "http://x", "model": "m", "state_dir": "/tmp/s", "api_key_env": "NO_SUCH_VAR_XYZ"}, "not set"),
    (None, "needs an options dict"),
])
def test_bad_options_are_refused(bad, words):
    with pytest.raises(ClassifierError) as e:
        load_classifiers("llm_judge", bad)
    assert words in str(e.value)
