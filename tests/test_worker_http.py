"""The worker's HTTP endpoints, in-process: live ingestion, OTLP from the real OpenTelemetry SDK, auth, limits."""
import datetime as dt
import json
import threading
import urllib.error
import urllib.request

import pytest

from monitor import db
from monitor.home import Home
from monitor.worker.server import make_server, recover_spool, spool_dir


def _record(i, model="m-1", content="Here is a recipe for bread: flour, water, salt, yeast."):
    ts = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return {"conversation_id": f"http-{i}", "turn": 1, "timestamp": ts, "model": model,
            "messages": [{"role": "user", "content": "How do I bake bread?"},
                         {"role": "assistant", "content": content}],
            "user": {"id": f"u{i}", "language": "en"}}


@pytest.fixture
def worker(tmp_path, monkeypatch):
    home_dir = tmp_path / "home"
    home_dir.mkdir()
    (home_dir / "monitor.toml").write_text('[worker]\ntoken_env = "TEST_MONITOR_TOKEN"\nmax_payload_bytes = 200000\n')
    monkeypatch.setenv("TEST_MONITOR_TOKEN", "s3cret")
    home = Home.open(home_dir)
    server = make_server(home, "127.0.0.1", 0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield home, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _post(url, body: bytes, token="s3cret", ctype="application/x-ndjson"):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _turns(home):
    return db.connect(home).execute("SELECT count(*) FROM turns").fetchone()[0]


def test_post_jsonl_is_ingested_and_counted(worker):
    home, url = worker
    body = "".join(json.dumps(_record(i)) + "\n" for i in range(5)) + "{broken json\n"
    code, reply = _post(url + "/v1/logs", body.encode())
    assert code == 200
    assert reply["read"] == 6 and reply["ingested"] == 5 and reply["quarantined"] == 1 and reply["accepted"] == 5
    assert _turns(home) == 5
    assert list(spool_dir(home).iterdir()) == []  # spooled body removed once committed
    # The same records again are duplicates, not new rows.
    code, reply = _post(url + "/v1/logs", body.encode())
    assert reply["duplicates"] == 5 and reply["ingested"] == 0 and _turns(home) == 5


def test_post_json_array(worker):
    home, url = worker
    code, reply = _post(url + "/v1/logs", json.dumps([_record(10), _record(11)]).encode(), ctype="application/json")
    assert code == 200 and reply["ingested"] == 2


def test_bearer_token_required(worker):
    _, url = worker
    code, reply = _post(url + "/v1/logs", json.dumps(_record(1)).encode(), token=None)
    assert code == 401 and "bearer" in reply["error"]
    code, _ = _post(url + "/v1/logs", json.dumps(_record(1)).encode(), token="wrong")
    assert code == 401


def test_payload_limit(worker):
    home, url = worker
    big = ("x" * 250_000).encode()
    code, reply = _post(url + "/v1/logs", big)
    assert code == 413 and "exceeds the limit" in reply["error"]
    assert _turns(home) == 0


def test_healthz_and_prometheus_metrics(worker):
    home, url = worker
    _post(url + "/v1/logs", json.dumps(_record(1)).encode())
    with urllib.request.urlopen(url + "/healthz") as r:
        h = json.loads(r.read())
    assert h["status"] == "ok" and h["lake_version"] >= 1
    with urllib.request.urlopen(url + "/metrics") as r:
        text = r.read().decode()
    assert 'monitor_ingest_records{outcome="ingested"} 1.0' in text
    assert 'monitor_open_alerts{severity="critical"} 0.0' in text
    assert "monitor_http_requests_total" in text


def test_otlp_spans_from_the_real_sdk(worker):
    """A real OpenTelemetry SDK client exports GenAI spans over OTLP/HTTP protobuf."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    home, url = worker
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", headers={"Authorization": "Bearer s3cret"})
    provider = TracerProvider(resource=Resource.create({"service.name": "assistant-api"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for i in range(3):
        with tracer.start_as_current_span("chat assistant") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", "assistant@2026.11")
            span.set_attribute("gen_ai.response.model", "assistant@2026.11")
            span.set_attribute("gen_ai.conversation.id", f"otel-{i}")
            span.add_event("gen_ai.user.message", {"content": f"How do I sort a list in Python? ({i})"})
            span.add_event("gen_ai.choice", {"message.content": "Use sorted(my_list) or my_list.sort().",
                                             "index": 0, "finish_reason": "stop"})
    provider.shutdown()
    con = db.connect(home)
    rows = con.execute("SELECT conversation_id, model, assistant_message FROM turns ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == ["otel-0", "otel-1", "otel-2"]
    assert rows[0][1].startswith("assistant") and "sorted" in rows[0][2]


def test_spool_left_by_a_crash_is_ingested_on_start(tmp_path):
    home = Home.open(tmp_path / "home")
    (spool_dir(home) / "20261126T000000-abc.jsonl").write_text(json.dumps(_record(99)) + "\n")
    (spool_dir(home) / ".half-written.tmp").write_text("{")
    assert recover_spool(home) == 1
    assert _turns(home) == 1 and list(spool_dir(home).iterdir()) == []
