"""The worker's HTTP side: live log ingestion, OTLP/HTTP traces, health and Prometheus metrics.

Endpoints:
  POST /v1/logs     canonical JSONL, or a JSON array of canonical records
  POST /v1/traces   OTLP/HTTP traces (application/x-protobuf or application/json) with GenAI spans
  GET  /healthz     liveness plus lake version and last job results
  GET  /readyz      readiness: 200, or 503 with the reasons (scheduler not running, a job failed, stale jobs)
  GET  /metrics     Prometheus text format: ingest counts, job durations, open alerts by severity

Durability: a request body is first written to ``<home>/spool/`` (temp name, fsync, ``os.replace``), then
ingested through the same code path as files; the reply is sent only after the lake commit, and the spool file is
removed after. If the process dies in between, start-up ingests whatever is left in the spool, and content-hash
dedup makes a replay harmless.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily

from monitor.config import env_secret
from monitor.errors import MonitorError
from monitor.home import Home

log = logging.getLogger("monitor.worker.http")


ENDPOINTS = ("/v1/logs", "/v1/traces", "/healthz", "/readyz", "/metrics")


class WorkerError(MonitorError):
    title = "Worker error"


def spool_dir(home: Home) -> Path:
    d = home.root / "spool"
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_spool(home: Home, body: bytes, suffix: str) -> Path:
    """Make a request body durable before anything else happens to it."""
    d = spool_dir(home)
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:10]}{suffix}"
    tmp = d / f".{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    final = d / name
    os.replace(tmp, final)
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return final


def ingest_spooled(home: Home, path: Path, fmt: str | None) -> dict:
    from monitor.ingest import ingest_paths

    summary = ingest_paths(home, [path], fmt=fmt, source="production")
    counts = _summary_dict(summary)
    path.unlink(missing_ok=True)
    return counts


def _summary_dict(summary) -> dict:
    d = summary.as_dict() if hasattr(summary, "as_dict") else dict(summary.__dict__)
    return {k: d.get(k) for k in ("read", "ingested", "duplicates", "quarantined")}


def recover_spool(home: Home) -> int:
    """Ingest request bodies that were made durable but not ingested before a crash."""
    n = 0
    for p in sorted(spool_dir(home).iterdir()):
        if p.name.startswith("."):
            p.unlink(missing_ok=True)  # never renamed into place: the client got no reply, it will retry
            continue
        fmt = "otlp" if p.name.endswith(".otlp.json") else "canonical"
        ingest_spooled(home, p, fmt)
        n += 1
    return n


def json_array_to_jsonl(body: bytes) -> bytes:
    """Accept a JSON array of records as well as JSONL; anything else is passed through line by line."""
    text = body.lstrip()
    if text.startswith(b"["):
        try:
            items = json.loads(body)
        except ValueError:
            return body  # let the collector quarantine it with its usual reason
        if isinstance(items, list):
            return b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in items)
    return body


def otlp_to_json(body: bytes, content_type: str) -> bytes:
    """OTLP/HTTP protobuf -> OTLP JSON (the form the otlp collector reads); JSON bodies pass through."""
    if "protobuf" not in content_type:
        return body
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    return json.dumps(MessageToDict(req)).encode()


class _StateCollector:
    """Prometheus collector reading counts from the state store at scrape time."""

    def __init__(self, home: Home, server: "WorkerHTTPServer | None" = None):
        self.home = home
        self.server = server

    def collect(self):
        from monitor.worker.readiness import readiness

        st = self.home.state
        ingest = GaugeMetricFamily("monitor_ingest_records", "Input records by outcome, all time", labels=["outcome"])
        row = st.query("SELECT coalesce(sum(read),0) r, coalesce(sum(ingested),0) i, coalesce(sum(duplicates),0) d, "
                       "coalesce(sum(quarantined),0) q FROM ingested_files")[0]
        for k, v in (("read", row["r"]), ("ingested", row["i"]), ("duplicate", row["d"]), ("quarantined", row["q"])):
            ingest.add_metric([k], v)
        yield ingest
        dur = GaugeMetricFamily("monitor_job_last_duration_seconds", "Duration of each job's last run", labels=["job"])
        ok = GaugeMetricFamily("monitor_job_last_success", "1 if the job's last run succeeded", labels=["job"])
        # duration_s is measured to the microsecond; runs recorded before it existed fall back on the timestamps.
        for r in st.query(
            "SELECT job, status, coalesce(duration_s, strftime('%s', finished_at) - strftime('%s', started_at)) "
            "AS secs FROM job_runs WHERE id IN (SELECT max(id) FROM job_runs WHERE finished_at IS NOT NULL "
            "GROUP BY job)"
        ):
            dur.add_metric([r["job"]], r["secs"] or 0.0)
            ok.add_metric([r["job"]], 1.0 if r["status"] == "ok" else 0.0)
        yield dur
        yield ok
        success = GaugeMetricFamily("monitor_job_last_success_timestamp_seconds",
                                    "Unix time of each job's last successful run", labels=["job"])
        for r in st.query("SELECT job, strftime('%s', max(finished_at)) AS t FROM job_runs WHERE status='ok' "
                          "GROUP BY job"):
            success.add_metric([r["job"]], float(r["t"]))
        yield success
        ready = GaugeMetricFamily("monitor_ready", "1 if GET /readyz answers 200 (see its reasons otherwise)")
        is_ready, body = readiness(self.home, getattr(self.server, "scheduler", None))
        ready.add_metric([], 1.0 if is_ready else 0.0)
        yield ready
        valid = GaugeMetricFamily("monitor_config_valid", "0 while an edit of the configuration file fails its checks "
                                  "and the worker runs on the last good configuration (GET /readyz: config)")
        valid.add_metric([], 1.0 if body["config"]["valid"] else 0.0)
        yield valid
        alerts = GaugeMetricFamily("monitor_open_alerts", "Alerts firing or acknowledged", labels=["severity"])
        counts = {r["severity"]: r["n"] for r in st.query(
            "SELECT severity, count(*) n FROM alerts WHERE status IN ('firing','acknowledged') GROUP BY 1")}
        for sev in ("info", "warning", "critical"):
            alerts.add_metric([sev], counts.get(sev, 0))
        yield alerts
        lake = GaugeMetricFamily("monitor_lake_version", "Version of the lake manifest")
        lake.add_metric([], self.home.lake.manifest()["version"])
        yield lake


class WorkerHTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # let in-flight requests finish on shutdown
    block_on_close = True

    def __init__(self, home: Home, addr: tuple[str, int]):
        self.home = home
        wc = home.config.worker
        self.token = wc.token or env_secret(wc.token_env)
        self.max_bytes = wc.max_payload_bytes
        self.scheduler = None  # set by `serve` once the scheduler is started; /readyz reports its state
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(home, self))
        self.requests = Counter("monitor_http_requests", "HTTP requests", ["path", "code"], registry=self.registry)
        self.ingest_lock = threading.Lock()
        super().__init__(addr, Handler)


class Handler(BaseHTTPRequestHandler):
    server: WorkerHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # route access logs through logging, not stderr
        log.info("%s %s", self.address_string(), fmt % args)

    def _reply(self, code: int, obj: dict | None = None, body: bytes | None = None,
               ctype: str = "application/json") -> None:
        data = body if body is not None else json.dumps(obj or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        path = self.path.split("?")[0]
        # Any other path is one label value: a scanner trying thousands of URLs must not grow the registry forever.
        self.server.requests.labels(path if path in ENDPOINTS else "other", str(code)).inc()

    def _authorised(self) -> bool:
        token = self.server.token
        if not token:
            return True
        got = self.headers.get("Authorization", "")
        if got == f"Bearer {token}":
            return True
        self._reply(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token",
                                              "hint": "send 'Authorization: Bearer <token>' as configured"})
        return False

    def _body(self) -> bytes | None:
        given = self.headers.get("Content-Length") or "0"
        length = int(given) if given.strip().isdigit() else -1
        if length < 0:
            # Unreadable ('abc') or negative: how much to read is unknown, so the connection cannot be reused.
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"Content-Length {given!r} is not a number of bytes"})
            self.close_connection = True
            return None
        if length > self.server.max_bytes:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        {"error": f"payload of {length} bytes exceeds the limit of {self.server.max_bytes}",
                         "hint": "split the batch or raise worker.max_payload_bytes"})
            # Drain nothing: close the connection instead of reading a huge body.
            self.close_connection = True
            return None
        if length == 0:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "empty body (Content-Length required)"})
            return None
        return self.rfile.read(length)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/healthz":
            from monitor.worker.scheduler import LAST_RESULTS

            jobs = {k: {"status": v.status, "seconds": round(v.seconds, 3)} for k, v in LAST_RESULTS.items()}
            self._reply(200, {"status": "ok", "lake_version": self.server.home.lake.manifest()["version"],
                              "jobs": jobs})
        elif path == "/readyz":
            from monitor.worker.readiness import readiness

            ready, body = readiness(self.server.home, self.server.scheduler)
            self._reply(200 if ready else 503, body)
        elif path == "/metrics":
            self._reply(200, body=generate_latest(self.server.registry), ctype="text/plain; version=0.0.4")
        else:
            self._reply(404, {"error": f"no such endpoint {path}", "hint": "POST /v1/logs, POST /v1/traces, "
                                                                          "GET /healthz, GET /readyz, GET /metrics"})

    def do_POST(self):
        path = self.path.split("?")[0]
        if path not in ("/v1/logs", "/v1/traces"):
            self._reply(404, {"error": f"no such endpoint {path}"})
            return
        if not self._authorised():
            return
        body = self._body()
        if body is None:
            return
        home = self.server.home
        try:
            if path == "/v1/logs":
                spooled = write_spool(home, json_array_to_jsonl(body), ".jsonl")
                fmt = "canonical"
            else:
                ctype = self.headers.get("Content-Type", "application/x-protobuf")
                try:
                    data = otlp_to_json(body, ctype)
                except Exception as e:  # a corrupt protobuf: nothing to quarantine record by record
                    self._reply(400, {"error": f"cannot decode OTLP protobuf: {e}"})
                    return
                spooled = write_spool(home, data, ".otlp.json")
                fmt = "otlp"
            with self.server.ingest_lock:
                counts = ingest_spooled(home, spooled, fmt)
        except MonitorError as e:
            self._reply(400, {"error": e.message, "hint": e.hint})
            return
        counts["accepted"] = (counts.get("ingested") or 0) + (counts.get("duplicates") or 0)
        self._reply(200, counts)


def make_server(home: Home, host: str | None = None, port: int | None = None) -> WorkerHTTPServer:
    wc = home.config.worker
    addr = (host or wc.host, wc.port if port is None else port)
    try:
        return WorkerHTTPServer(home, addr)
    except OSError as e:  # the port is taken (often by a worker already running on it), or the address is wrong
        raise WorkerError(f"cannot listen on {addr[0]}:{addr[1]}: {e.strerror or e}",
                          "is a worker already running? pick another --port, or 0 for any free port") from e
