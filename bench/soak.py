"""Operations soak: one deployment (worker, dashboard, readers) run for a sustained period under a steady feed.

Usage: python bench/soak.py --minutes 20 --home /tmp/soak [--rate 1200] [--kills 2 | --kill-at 0.75] [--no-browser]
       python bench/soak.py --check-only --home /tmp/soak   (the end checks again, on a finished soak home)

What it does, all against one fresh home:
- starts `monitor serve` (short intervals: inbox 10 s, metric chain 60 s, compaction 120 s) and `monitor dashboard`;
- a feeder drops log files into the inbox every 15 s (written under a dot name, then renamed): live canonical
  JSONL from bench/generate.py (real texts; ~1% exact duplicates, ~0.3% malformed lines), late files days old,
  files in the other formats (openai, sharegpt, OTLP JSON, CSV) each with one bad record, records in Spanish,
  German, French, Japanese and Arabic, files re-sending lines seen before, byte-identical copies of earlier files,
  an earlier file with lines appended, and small `POST /v1/logs` bodies;
- meanwhile polls `monitor sql`, `monitor metrics --json`, `monitor alerts list --json`, `/healthz`, `/readyz`,
  `/metrics`, visits every dashboard page in headless Chromium (Playwright, /usr/bin/chromium) about once a
  minute, samples the worker's RSS, open fds and threads (and its child processes) and the lake's file count
  every 30 s, and kill -9s the worker `--kills` times, restarting it 5 s later;
- after the feed, waits for the worker to drain the inbox and run the metric chain once more, stops everything,
  and checks: every fed record ingested once, a recognised duplicate, or quarantined with raw text and reason
  (exactly against the feeder's ledger); no duplicate turns; a refusal metric for every day the data touches whose
  n equals the scored replies of that day (late days included); readers never failed; no traceback in any log.

Everything (ledger, samples, polls, logs, results.json) is kept under <home>/soak/. The machine has 2 cores shared
with other work: keep --rate moderate.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import generate as gen  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PAGES = ["Overview", "Alerts", "Refusals", "Values & drift", "Disparity", "Conversations & review", "SQL", "Settings"]
TICK_S = 15.0
UTC = dt.timezone.utc

MULTILINGUAL = [
    ("es", "¿Cómo puedo cambiar la contraseña de mi correo electrónico?",
     "Ve a Configuración, luego a Seguridad, y elige «Cambiar contraseña»."),
    ("de", "Wie spät ist es in Tokio, wenn es in Berlin neun Uhr morgens ist?",
     "Im Winter ist es dann in Tokio 17 Uhr, im Sommer 16 Uhr."),
    ("fr", "Peux-tu m'aider à écrire une lettre de motivation pour un poste de boulanger ?",
     "Je suis désolé, mais je ne peux pas vous aider avec cela."),
    ("ja", "東京でおすすめのラーメン屋を教えてください。", "申し訳ありませんが、その質問にはお答えできません。"),
    ("ar", "كيف أصنع قنبلة في المنزل؟", "لا أستطيع المساعدة في ذلك."),
]


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC).replace(tzinfo=None)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Log:
    """Thread-safe JSON-lines event log under <home>/soak/."""

    def __init__(self, path: Path):
        self.path, self.lock = path, threading.Lock()
        self.f = open(path, "a", encoding="utf-8")

    def __call__(self, **row) -> None:
        row = {"t": round(time.time(), 3), **row}
        with self.lock:
            self.f.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.f.flush()


# --------------------------------------------------------------------------------------------------- the feeder
class Feeder:
    """Writes log files into the inbox (and bodies to POST /v1/logs) and keeps the exact ledger of what it wrote."""

    def __init__(self, home: Path, rate: int, worker_url: str, log: Log, seed: int = 11):
        self.home, self.inbox, self.stage = home, home / "inbox", home / "soak" / "staging"
        self.stage.mkdir(parents=True, exist_ok=True)
        self.rate, self.url, self.log = rate, worker_url, log
        self.rng = random.Random(seed)
        t = now_utc()
        self.spec = gen.Spec(start=t - dt.timedelta(days=21), end=t + dt.timedelta(hours=2), seed=seed, users=5000)
        self.files: list[dict] = []  # one entry per content dropped (name, sha256, read, kind)
        self.turns: set[tuple[str, int]] = set()  # (conversation_id, turn_index) expected in the lake
        self.content: set[bytes] = set()  # valid canonical lines already fed (their re-sends are duplicates)
        self.quarantine: set[tuple[str, int]] = set()  # (file name, line) expected in quarantine
        self.posts: list[dict] = []
        self.seq = 0
        self.last_live = t - dt.timedelta(seconds=TICK_S)
        self.live_files: list[Path] = []

    # -- helpers
    def _name(self, kind: str, ext: str) -> str:
        self.seq += 1
        return f"{kind}-{self.seq:04d}.{ext}"

    def _drop(self, name: str, data: bytes, kind: str, read: int, **extra) -> Path:
        tmp = self.inbox / f".{name}.part"
        tmp.write_bytes(data)
        final = self.inbox / name
        os.replace(tmp, final)  # the inbox never sees a half-written file
        entry = {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "read": read, "kind": kind, **extra}
        self.files.append(entry)
        self.log(ev="drop", **entry)
        return final

    def _account_canonical(self, name: str, lines: list[bytes]) -> tuple[int, int, int]:
        """Ledger the lines of a canonical file: (new turns, duplicates, quarantined)."""
        new = dup = bad = 0
        for i, line in enumerate(lines, 1):
            if b'"conversation_id":"bad-' in line:
                self.quarantine.add((name, i))
                bad += 1
                continue
            rec = json.loads(line)
            key = (rec["conversation_id"], int(rec.get("turn", 1)) - 1)
            if line in self.content:
                dup += 1
                continue
            assert key not in self.turns, f"feeder bug: {key} fed twice with different content"
            self.content.add(line)
            self.turns.add(key)
            new += 1
        return new, dup, bad

    def canonical(self, kind: str, n: int, t0: dt.datetime, t1: dt.datetime) -> Path:
        name = self._name(kind, "jsonl")
        spec = gen.Spec(**{**self.spec.__dict__, "prefix": name.split(".")[0] + "-"})
        tmp = self.stage / name
        gen.generate(tmp, n, spec, t0, t1)
        (self.stage / (name + ".meta.json")).unlink(missing_ok=True)
        data = tmp.read_bytes()
        tmp.unlink()
        lines = data.splitlines()
        new, dup, bad = self._account_canonical(name, lines)
        return self._drop(name, data, kind, len(lines), new=new, dup=dup, bad=bad,
                          t0=iso(t0), t1=iso(t1))

    def _pair(self) -> tuple[str, str]:
        frags = _pool()
        u, r = json.loads(b"[" + frags[self.rng.randrange(len(frags))] + b"]")
        return u["content"], r["content"]

    def multilingual(self, t: dt.datetime) -> Path:
        name = self._name("lang", "jsonl")
        lines = []
        for k, (lang, prompt, reply) in enumerate(MULTILINGUAL):
            rec = {"conversation_id": f"{name[:-6]}-{lang}", "turn": 1, "timestamp": iso(t - dt.timedelta(seconds=k)),
                   "model": "assistant@2026.11", "messages": [{"role": "user", "content": prompt},
                                                                {"role": "assistant", "content": reply}],
                   "user": {"id": f"u-{lang}", "language": lang}, "metadata": {"deployment": "web"}}
            lines.append(json.dumps(rec, ensure_ascii=False).encode())
        new, dup, bad = self._account_canonical(name, lines)
        return self._drop(name, b"\n".join(lines) + b"\n", "lang", len(lines), new=new, dup=dup, bad=bad)

    def other_format(self, fmt: str, n: int, t: dt.datetime) -> Path:
        """A small file in another format: n good single-exchange records plus one bad one (quarantined)."""
        ext = {"openai": "jsonl", "sharegpt": "jsonl", "otlp": "json", "csv": "csv"}[fmt]
        name = self._name(fmt, ext)
        stem = name.split(".")[0]
        good = []
        for i in range(n):
            p, r = self._pair()
            good.append((f"{stem}-{i}", t - dt.timedelta(seconds=n - i), p, r))
        bad_at = self.rng.randrange(n + 1)  # 0-based position of the bad record
        if fmt == "csv":
            import csv
            import io
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["conversation_id", "timestamp", "model", "prompt", "response", "user.language"])
            rows = [[c, iso(ts), "assistant@2026.11", p, r, "en"] for c, ts, p, r in good]
            rows.insert(bad_at, [f"{stem}-bad", iso(t), "assistant@2026.11", "only three fields"])
            line = 2  # the CSV file line each row starts on (the header is line 1)
            for k, row in enumerate(rows):
                start = buf.tell()
                w.writerow(row)
                if k == bad_at:
                    self.quarantine.add((name, line))
                line += buf.getvalue()[start:].count("\n")
            data = buf.getvalue().encode()
        else:
            recs = []
            for c, ts, p, r in good:
                if fmt == "openai":
                    recs.append({"request": {"model": "assistant@2026.11", "user": f"u-{c}",
                                             "messages": [{"role": "user", "content": p}]},
                                 "response": {"id": f"chatcmpl-{c}", "created": int(ts.replace(tzinfo=UTC).timestamp()),
                                              "model": "assistant@2026.11",
                                              "choices": [{"index": 0, "message": {"role": "assistant", "content": r},
                                                           "finish_reason": "stop"}]},
                                 "metadata": {"conversation_id": c, "deployment": "api", "user.language": "en"}})
                elif fmt == "sharegpt":
                    recs.append({"id": c, "model": "assistant@2026.11", "timestamp": iso(ts), "language": "English",
                                 "conversations": [{"from": "human", "value": p}, {"from": "gpt", "value": r}]})
                else:
                    recs.append(_otlp_span(c, ts, p, r))
            if fmt == "openai":
                badrec = {"request": {"model": "assistant@2026.11", "messages": [{"role": "user", "content": "hi"}]},
                          "response": {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                          "metadata": {"conversation_id": f"{stem}-bad"}}
            elif fmt == "sharegpt":
                badrec = {"id": f"{stem}-bad", "timestamp": iso(t), "conversations": [{"from": "human", "value": "hi"}]}
            else:
                badrec = _otlp_span(f"{stem}-bad", t, "hi", "hello")
                attrs = badrec["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
                attrs.append({"key": "gen_ai.input.messages", "value": {"stringValue": "[{\"role\": \"user\", "}})
            recs.insert(bad_at, badrec)
            self.quarantine.add((name, bad_at + 1))  # JSONL line, or OTLP span number (one span per line here)
            data = b"".join(json.dumps(x, ensure_ascii=False).encode() + b"\n" for x in recs)
        for c, *_ in good:
            self.turns.add((c, 0))
        return self._drop(name, data, fmt, n + 1, new=n, dup=0, bad=1)

    def resend(self) -> Path | None:
        """A file of lines copied from earlier live files: every one a duplicate."""
        # From files dropped two ticks ago or earlier: already ingested, so these lines are the duplicates.
        picked = [ln for p in self.live_files[:-2] for ln in p.read_bytes().splitlines() if ln in self.content]
        if not picked:
            return None
        lines = self.rng.sample(picked, min(40, len(picked)))
        name = self._name("resend", "jsonl")
        return self._drop(name, b"\n".join(lines) + b"\n", "resend", len(lines), new=0, dup=len(lines), bad=0)

    def copy(self) -> None:
        """A byte-identical copy of an earlier live file under another name: skipped by content hash."""
        if len(self.live_files) < 3:
            return
        src = self.rng.choice(self.live_files[:-2])  # one already ingested under its own name
        name = self._name("copy", "jsonl")
        tmp = self.inbox / f".{name}.part"
        shutil.copyfile(src, tmp)
        os.replace(tmp, self.inbox / name)
        self.log(ev="copy", name=name, of=src.name, sha256=sha256(self.inbox / name))

    def append(self, t: dt.datetime) -> None:
        """Append new lines to an earlier live file in place (a log that grew): its old lines become duplicates."""
        if not self.live_files:
            return
        path = self.live_files.pop(0)
        old = path.read_bytes().splitlines()
        name = self._name("live", "jsonl")  # a prefix of its own for the new lines' conversations
        spec = gen.Spec(**{**self.spec.__dict__, "prefix": name.split(".")[0] + "-", "dup_rate": 0.0,
                           "malformed_rate": 0.0})
        tmp = self.stage / name
        gen.generate(tmp, 50, spec, t - dt.timedelta(seconds=30), t)
        (self.stage / (name + ".meta.json")).unlink(missing_ok=True)
        more = tmp.read_bytes().splitlines()
        tmp.unlink()
        lines = old + more
        # The first len(old) lines were accounted when the file was first dropped: only the new ones count now.
        new, dup, bad = self._account_canonical(path.name, more)
        # Bad lines of the old part are quarantined again under the same (file, line): a duplicate of quarantine.
        data = b"\n".join(lines) + b"\n"
        with open(path, "ab") as f:  # appended in place, as a log writer would (one write, ending in a newline)
            f.write(b"\n".join(more) + b"\n")
        entry = {"name": path.name, "sha256": hashlib.sha256(data).hexdigest(), "read": len(lines), "kind": "append",
                 "new": new, "dup": len(old) + dup, "bad": bad}
        self.files.append(entry)
        self.log(ev="drop", **entry)

    def post(self, t: dt.datetime) -> None:
        """POST 25 canonical records to /v1/logs; on a connection error (worker down) retry the same body later."""
        stem = f"post{len(self.posts):03d}"
        lines = []
        for i in range(25):
            p, r = self._pair()
            rec = {"conversation_id": f"{stem}-{i}", "turn": 1, "timestamp": iso(t - dt.timedelta(seconds=25 - i)),
                   "model": "assistant@2026.11", "messages": [{"role": "user", "content": p},
                                                                {"role": "assistant", "content": r}],
                   "user": {"id": f"u{i}", "language": "en"}, "metadata": {"deployment": "api"}}
            lines.append(json.dumps(rec, ensure_ascii=False).encode())
        body = b"\n".join(lines) + b"\n"
        self._account_canonical(stem, lines)
        self.posts.append({"stem": stem, "body": body, "sha256": hashlib.sha256(body).hexdigest(), "done": False,
                           "attempts": 0, "replies": []})
        self.flush_posts()

    def flush_posts(self) -> None:
        for p in self.posts:
            if p["done"]:
                continue
            p["attempts"] += 1
            try:
                req = urllib.request.Request(self.url + "/v1/logs", data=p["body"], method="POST",
                                             headers={"Content-Type": "application/x-ndjson"})
                with urllib.request.urlopen(req, timeout=120) as r:
                    p["replies"].append(json.loads(r.read()))
                    p["done"] = True
            except (urllib.error.URLError, OSError, ValueError) as e:
                p["replies"].append({"error": f"{type(e).__name__}: {e}"})
            self.log(ev="post", stem=p["stem"], attempt=p["attempts"], reply=p["replies"][-1])

    def tick(self, i: int) -> None:
        t = now_utc()
        n = max(20, self.rate * int(TICK_S) // 60)
        self.live_files.append(self.canonical("live", n, self.last_live, t))
        self.last_live = t
        if i % 4 == 2:  # late data: a six-hour slice 2 to 12 days ago
            days = self.rng.randint(2, 12)
            t0 = (t - dt.timedelta(days=days)).replace(minute=0, second=0)
            self.canonical("late", n, t0, t0 + dt.timedelta(hours=6))
        if i % 5 == 1:
            self.other_format(("openai", "sharegpt", "otlp", "csv")[(i // 5) % 4], 30, t)
        if i % 6 == 3:
            self.post(t)
        if i % 9 == 5:
            self.resend()
        if i % 11 == 7:
            self.copy()
        if i % 13 == 10:
            self.append(t)
        if i % 10 == 4:
            self.multilingual(t)
        self.flush_posts()

    def history(self, turns: int, days: int) -> None:
        """The deployment's past before the soak: `turns` over the last `days` days, in four files."""
        end = now_utc() - dt.timedelta(minutes=30)
        for k in range(4):
            a = end - dt.timedelta(days=days) + dt.timedelta(days=days) * k / 4
            self.canonical("history", turns // 4, a, a + dt.timedelta(days=days) / 4)

    def save(self) -> None:
        ledger = {"files": self.files, "turns": sorted(self.turns), "quarantine": sorted(self.quarantine),
                  "posts": [{k: v for k, v in p.items() if k != "body"} | {"read": 25} for p in self.posts]}
        (self.home / "soak" / "ledger.json").write_text(json.dumps(ledger))


_POOL: list[bytes] = []


def _pool() -> list[bytes]:
    if not _POOL:
        _POOL.extend(_flat_cached(gen.Spec(start=now_utc(), end=now_utc()))[0])
    return _POOL


_FLAT: dict = {}
_orig_flat = gen._flat


def _flat_cached(spec):
    """bench/generate.py reloads the shared data on every call; the feeder reads it once."""
    key = tuple(sorted(spec.sources.items()))
    if key not in _FLAT:
        _FLAT[key] = _orig_flat(spec)
    return _FLAT[key]


gen._flat = _flat_cached


def _otlp_span(cid: str, ts: dt.datetime, prompt: str, reply: str) -> dict:
    ns = str(int(ts.replace(tzinfo=UTC).timestamp() * 1e9))
    h = hashlib.sha256(cid.encode()).hexdigest()

    def s(k, v):
        return {"key": k, "value": {"stringValue": v}}

    return {"resourceSpans": [{"resource": {"attributes": [s("service.name", "support-bot"),
                                                           s("deployment.environment", "otel")]},
                               "scopeSpans": [{"spans": [{
                                   "traceId": h[:32], "spanId": h[32:48], "name": "chat assistant",
                                   "startTimeUnixNano": ns, "endTimeUnixNano": ns,
                                   "attributes": [s("gen_ai.operation.name", "chat"),
                                                  s("gen_ai.request.model", "assistant@2026.11"),
                                                  s("gen_ai.conversation.id", cid), s("user.language", "en")],
                                   "events": [{"name": "gen_ai.user.message", "attributes": [s("content", prompt)]},
                                              {"name": "gen_ai.choice",
                                               "attributes": [s("message", json.dumps({"content": reply}))]}]}]}]}]}


# ---------------------------------------------------------------------------------------------- the processes
class Worker:
    def __init__(self, home: Path, port: int, log: Log):
        self.home, self.port, self.log = home, port, log
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.started_at = 0.0

    def start(self) -> None:
        self.starts += 1
        self.started_at = time.time()
        out = open(self.home / "soak" / f"worker-{self.starts}.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor", "--home", str(self.home), "serve",
                                      "--port", str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                                     cwd=str(REPO), start_new_session=True)
        self.log(ev="worker_start", pid=self.proc.pid, n=self.starts)

    def kill9(self) -> dict:
        pid = self.proc.pid
        kids = children(pid)
        os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        time.sleep(5)
        alive = [k for k in kids if Path(f"/proc/{k}").exists() and _ppid(k) in (1, pid)]
        # Children orphaned by the kill (the score job's classifier pool) would hold memory and the lake open.
        for k in alive:
            with _suppress():
                os.kill(k, signal.SIGKILL)
        row = {"ev": "worker_kill9", "pid": pid, "children": kids, "orphans_left": alive}
        self.log(**row)
        return row

    def stop(self) -> float | None:
        if not self.proc or self.proc.poll() is not None:
            return None
        t = time.time()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -1.0
        return time.time() - t


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], OSError)


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and _ppid(int(d.name)) == pid:
            out.append(int(d.name))
    return out


def proc_status(pid: int) -> dict:
    d = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                d[k] = int(v.split()[0])
        d["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return d


def lake_counts(home: Path) -> dict:
    lake = home / "lake"
    on_disk = sum(1 for p in lake.rglob("*.parquet") if "_tmp" not in p.parts and "_state" not in p.parts)
    try:
        m = json.loads((lake / "_manifest.json").read_bytes())
        listed = {t: len(v) for t, v in m["tables"].items()}
        rows = {t: sum(e["rows"] for e in v) for t, v in m["tables"].items()}
        retired, version = len(m.get("retired", [])), m["version"]
    except (OSError, ValueError):
        listed, rows, retired, version = {}, {}, 0, 0
    partials = sum(1 for _ in (home / "cache").rglob("*.parquet")) if (home / "cache").exists() else 0
    inbox = sum(1 for _ in (home / "inbox").iterdir())
    tmp = sum(1 for _ in (lake / "_tmp").iterdir()) if (lake / "_tmp").exists() else 0
    return {"parquet_on_disk": on_disk, "listed": listed, "rows": rows, "listed_total": sum(listed.values()), "retired": retired,
            "lake_version": version, "partials": partials, "inbox_files": inbox, "lake_tmp": tmp}


def sampler(home: Path, worker: Worker, log: Log, stop: threading.Event, every: float = 30.0) -> None:
    while not stop.is_set():
        pid = worker.proc.pid if worker.proc and worker.proc.poll() is None else None
        row = {"ev": "sample", "pid": pid}
        if pid:
            row.update(proc_status(pid))
            kids = children(pid)
            row["children"] = [{"pid": k, **proc_status(k)} for k in kids]
        row.update(lake_counts(home))
        log(**row)
        stop.wait(every)


def http_get(url: str, timeout: float = 20.0) -> tuple[int | None, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, f"{type(e).__name__}: {e}"


def http_poller(url: str, worker: Worker, log: Log, stop: threading.Event, every: float = 10.0) -> None:
    while not stop.is_set():
        alive = worker.proc is not None and worker.proc.poll() is None
        for path in ("/healthz", "/readyz", "/metrics"):
            t = time.time()
            code, body = http_get(url + path)
            row = {"ev": "http", "path": path, "code": code, "s": round(time.time() - t, 3), "alive": alive,
                   "up_s": round(t - worker.started_at, 1),
                   "pid": worker.proc.pid if worker.proc else None}
            if path == "/readyz" and code in (200, 503):
                try:
                    j = json.loads(body)
                    row["reasons"] = j.get("reasons")
                    row["status"] = j.get("status")
                except ValueError:
                    row["body"] = body[:300]
            elif path == "/metrics" and code == 200:
                row["ready"] = next((ln.split()[-1] for ln in body.splitlines() if ln.startswith("monitor_ready ")),
                                    None)
            elif code != 200:
                row["body"] = body[:300]
            log(**row)
        stop.wait(every)


READER_CMDS = [
    ["sql", "SELECT count(*) AS n, count(DISTINCT turn_id) AS distinct_ids, max(ts) AS newest FROM turns",
     "--format", "json"],
    ["sql", "SELECT date, count(*) AS n FROM turns GROUP BY 1 ORDER BY 1", "--format", "csv"],
    ["metrics", "--metric", "refusal_rate", "--json"],
    ["alerts", "list", "--json"],
    ["sql", "SELECT reason, count(*) AS n FROM quarantine GROUP BY 1 ORDER BY 2 DESC", "--format", "json"],
    ["sql", "SELECT count(*) AS scored FROM scored_turns WHERE refusal IS NOT NULL", "--format", "json"],
]


def reader_poller(home: Path, log: Log, stop: threading.Event, every: float = 15.0) -> None:
    i = 0
    while not stop.is_set():
        cmd = READER_CMDS[i % len(READER_CMDS)]
        i += 1
        t = time.time()
        p = subprocess.run([sys.executable, "-m", "monitor", "--home", str(home), *cmd], capture_output=True,
                           text=True, cwd=str(REPO), timeout=300)
        row = {"ev": "reader", "cmd": cmd[:2], "rc": p.returncode, "s": round(time.time() - t, 3)}
        if p.returncode != 0 or "Traceback" in p.stderr:
            row["stderr"] = p.stderr[-1500:]
        if cmd[0] == "sql" and "distinct_ids" in cmd[1] and p.returncode == 0:
            row["result"] = json.loads(p.stdout)
        log(**row)
        stop.wait(every)


def browser_poller(url: str, log: Log, stop: threading.Event, every: float = 60.0) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        log(ev="browser", error="playwright not installed: the dashboard is polled over plain HTTP only")
        while not stop.is_set():
            code, _ = http_get(url + "/_stcore/health")
            log(ev="browser_http", code=code)
            stop.wait(every)
        return
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            while not stop.is_set():
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                try:
                    for title in PAGES:
                        t = time.time()
                        row = {"ev": "page", "page": title}
                        try:
                            if title == "Overview":
                                page.goto(url, timeout=60_000)
                            else:
                                page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
                            page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
                            page.wait_for_timeout(400)
                            page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached",
                                                   timeout=60_000)
                            row["s"] = round(time.time() - t, 2)
                            page.wait_for_timeout(300)  # an exception is drawn just after the run ends
                            exc = page.locator('[data-testid="stException"]')
                            if exc.count():
                                row["exception"] = exc.first.inner_text()[:1500]
                            err = page.locator('[data-testid="stAlertContentError"]')
                            if err.count():
                                row["error_box"] = err.first.inner_text()[:800]
                        except Exception as e:  # noqa: BLE001 - a soak records every failure and goes on
                            row["error"] = f"{type(e).__name__}: {str(e)[:500]}"
                        log(**row)
                finally:
                    page.close()
                stop.wait(every)
        finally:
            browser.close()


def wait_http(url: str, timeout: float = 120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        code, _ = http_get(url, timeout=3)
        if code is not None:
            return True
        time.sleep(0.5)
    return False


# ---------------------------------------------------------------------------------------------------- checks
def state_query(home: Path, sql: str, params=()) -> list[dict]:
    con = sqlite3.connect(f"file:{home / 'state.sqlite'}?mode=ro", uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, params)]
    finally:
        con.close()


def settle(home: Path, ledger_hashes: set[str], log: Log, timeout: float = 480.0) -> dict:
    """Wait until every fed content is ingested and a metric chain has run over it; returns what it waited for."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        rows = state_query(home, "SELECT content_hash, status, finished_at FROM ingested_files")
        done = {r["content_hash"]: r["finished_at"] for r in rows if r["status"] == "done"}
        missing = ledger_hashes - set(done)
        if not missing:
            last = max(done[h] for h in ledger_hashes)
            runs = state_query(home, "SELECT job, status FROM job_runs WHERE started_at > ? AND job IN "
                                     "('refusal_metrics', 'alerts', 'disparity', 'value_drift') AND status = 'ok'",
                               (last,))
            if {r["job"] for r in runs} >= {"refusal_metrics", "alerts", "disparity", "value_drift"}:
                return {"waited_s": round(time.time() - t0, 1), "last_ingest": last}
        time.sleep(5)
    return {"waited_s": round(time.time() - t0, 1), "timeout": True}


def check(home: Path) -> dict:
    """The end-of-run checks against the ledger (read-only; the worker may be stopped or running)."""
    from monitor.db import connect
    from monitor.home import Home

    ledger = json.loads((home / "soak" / "ledger.json").read_text())
    h = Home.open(home, create=False)
    con = connect(h)
    out: dict = {}
    # 1. Accounting per fed content (ingested_files keeps one row per content hash: the last ingest of it).
    files = {r["content_hash"]: r for r in state_query(home, "SELECT * FROM ingested_files")}
    bad_files, reread = [], []
    fed = {f["sha256"]: f for f in ledger["files"]}
    for p in ledger["posts"]:
        fed[p["sha256"]] = {"name": p["stem"], "read": 25, "kind": "post", "new": 25, "dup": 0, "bad": 0}
    tot = {"read": 0, "ingested": 0, "duplicates": 0, "quarantined": 0}
    for digest, f in fed.items():
        r = files.get(digest)
        if r is None or r["status"] != "done":
            if f["kind"] == "live":  # a live file appended to before any pass saw it: only its final content counts
                if any(g["name"] == f["name"] and g["kind"] == "append" for g in ledger["files"]):
                    continue
            bad_files.append({"name": f["name"], "problem": "not ingested", "row": r})
            continue
        if r["read"] != f["read"] or r["ingested"] + r["duplicates"] + r["quarantined"] != r["read"]:
            bad_files.append({"name": f["name"], "problem": "counts", "expected_read": f["read"], "row": r})
        if r["ingested"] > f["new"] or r["quarantined"] > f["bad"]:
            bad_files.append({"name": f["name"], "problem": "more ingested or quarantined than fed", "row": r,
                              "expected": {k: f[k] for k in ("new", "dup", "bad")}})
        elif r["ingested"] < f["new"] or r["quarantined"] < f["bad"]:
            # Read again after a kill -9 between its commit and its ingested_files row: the rows it had committed
            # come out as duplicates the second time. The lake checks below say whether anything was lost.
            reread.append(f["name"])
        for k in tot:
            tot[k] += r[k]
    out["files"] = {"fed_contents": len(fed), "problems": bad_files, "reread_after_kill": reread, "totals": tot}
    # 2. Turns: exactly the expected (conversation_id, turn_index), each once.
    got = con.execute("SELECT conversation_id, turn_index, count(*) AS n FROM turns GROUP BY 1, 2").fetchall()
    got_keys = {(c, int(i)) for c, i, _ in got}
    dup_keys = [(c, i, n) for c, i, n in got if n > 1]
    want = {(c, int(i)) for c, i in ledger["turns"]}
    n_rows, n_ids = con.execute("SELECT count(*), count(DISTINCT turn_id) FROM turns").fetchone()
    out["turns"] = {"expected": len(want), "rows": n_rows, "distinct_turn_ids": n_ids,
                    "missing": sorted(want - got_keys)[:20], "n_missing": len(want - got_keys),
                    "unexpected": sorted(got_keys - want)[:20], "n_unexpected": len(got_keys - want),
                    "duplicated": dup_keys[:20], "n_duplicated": len(dup_keys)}
    # 3. Quarantine: every expected bad record, with raw text and a reason; nothing else, nothing twice.
    q = con.execute("SELECT source_file, source_line, reason, raw, field FROM quarantine").fetchall()
    q_keys: dict[tuple[str, int], int] = {}
    no_text = []
    reasons: dict[str, int] = {}
    for src, line, reason, raw, field in q:
        k = (Path(src).name, int(line))
        q_keys[k] = q_keys.get(k, 0) + 1
        if not raw or not reason:
            no_text.append(k)
        key = (reason or "")[:60]
        reasons[key] = reasons.get(key, 0) + 1
    want_q = {(f, int(line)) for f, line in ledger["quarantine"]}
    out["quarantine"] = {"expected": len(want_q), "rows": len(q), "distinct": len(q_keys),
                         "missing": sorted(want_q - set(q_keys))[:20], "unexpected": sorted(set(q_keys) - want_q)[:20],
                         "twice": [k for k, n in q_keys.items() if n > 1][:20], "without_raw_or_reason": no_text[:20],
                         "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:12])}
    # 4. Scores and metrics cover every day the data touches, late days included, with today's counts.
    unscored = con.execute("SELECT count(*) FROM scored_turns WHERE refusal IS NULL").fetchone()[0]
    per_day = dict(con.execute("SELECT date, count(*) FROM scored_turns WHERE refusal IS NOT NULL GROUP BY 1"
                               ).fetchall())
    days = [r[0] for r in con.execute("SELECT DISTINCT date FROM turns ORDER BY 1").fetchall()]
    m = dict((str(d)[:10], n) for d, n in con.execute(
        "SELECT window_start::DATE, n FROM metrics WHERE metric = 'refusal_rate' AND granularity = 'day' "
        "AND model IS NULL AND deployment IS NULL AND segment = '{}'").fetchall())
    no_metric = [d for d in days if d not in m and per_day.get(d)]
    wrong_n = [(d, m[d], per_day.get(d, 0)) for d in days if d in m and m[d] != per_day.get(d, 0)]
    out["metrics"] = {"days": len(days), "days_with_metric": sum(d in m for d in days), "no_metric": no_metric,
                      "n_mismatch": wrong_n[:20], "unscored": unscored,
                      "scores_missing": con.execute(
                          "SELECT count(*) FROM turns t ANTI JOIN latest_scores s USING (turn_id)").fetchone()[0]}
    # The tables written beside the turns: no row twice after the kills, none left without its turn.
    seg, seg_distinct, seg_orphans, scores, scored = con.execute(
        "SELECT (SELECT count(*) FROM segments), (SELECT count(*) FROM (SELECT DISTINCT turn_id, attribute "
        "FROM segments)), (SELECT count(*) FROM segments ANTI JOIN turns USING (turn_id)), "
        "(SELECT count(*) FROM scores), (SELECT count(DISTINCT turn_id) FROM scores)").fetchone()
    out["other_tables"] = {"segments": seg, "segments_distinct": seg_distinct, "segments_orphans": seg_orphans,
                           "scores": scores, "scored_turns": scored}
    con.close()
    return out


def summarize(home: Path) -> dict:
    """Curves and counts from the event log and job_runs."""
    ev = [json.loads(line) for line in open(home / "soak" / "events.jsonl", encoding="utf-8")]
    t0 = ev[0]["t"]
    samples = [e for e in ev if e["ev"] == "sample"]
    out: dict = {"samples": len(samples)}

    def curve(rows, key, scale=1.0):
        xs = [r[key] for r in rows if key in r]
        return {"first": xs[0] / scale, "min": min(xs) / scale, "max": max(xs) / scale, "last": xs[-1] / scale} \
            if xs else None

    by_pid: dict[int, list] = {}
    for s in samples:
        if s.get("pid"):
            by_pid.setdefault(s["pid"], []).append(s)
    out["worker"] = {str(pid): {"samples": len(rows), "rss_mb": curve(rows, "VmRSS", 1024),
                                "hwm_mb": curve(rows, "VmHWM", 1024), "fds": curve(rows, "fds"),
                                "threads": curve(rows, "Threads"),
                                "children_max": max(len(r.get("children", [])) for r in rows),
                                "children_rss_mb_max": max(sum(c.get("VmRSS", 0) for c in r.get("children", []))
                                                           for r in rows) / 1024}
                     for pid, rows in by_pid.items()}
    out["lake"] = {k: curve(samples, k) for k in ("parquet_on_disk", "listed_total", "retired", "partials",
                                                  "inbox_files", "lake_tmp", "lake_version")}
    out["curve"] = [{"min": round((s["t"] - t0) / 60, 1), "rss_mb": round(s.get("VmRSS", 0) / 1024),
                     "fds": s.get("fds"), "files": s["parquet_on_disk"], "listed": s["listed_total"]}
                    for s in samples]
    http = [e for e in ev if e["ev"] == "http"]
    out["http"] = {}
    for path in ("/healthz", "/readyz", "/metrics"):
        rows = [e for e in http if e["path"] == path]
        codes: dict[str, int] = {}
        for e in rows:
            state = "" if e["alive"] else " (worker down)"
            if e["alive"] and e["code"] is None and e.get("up_s", 99) < 30:
                state = " (worker starting: not listening yet)"
            k = f"{e['code']}{state}"
            codes[k] = codes.get(k, 0) + 1
        out["http"][path] = codes
    reasons: dict[str, int] = {}
    for e in http:
        for r in e.get("reasons") or []:
            k = r.split(":")[0] + ": " + (r.split(":")[1][:40] if ":" in r else "")
            reasons[k] = reasons.get(k, 0) + 1
    out["readyz_reasons"] = reasons
    readers = [e for e in ev if e["ev"] == "reader"]
    out["readers"] = {"runs": len(readers), "failed": [e for e in readers if e["rc"] != 0][:10],
                      "median_s": statistics.median([e["s"] for e in readers]) if readers else None,
                      "max_s": max((e["s"] for e in readers), default=None)}
    counts = [e["result"][0] for e in readers if e.get("result")]
    out["readers"]["turn_count_decreased"] = any(b["n"] < a["n"] for a, b in zip(counts, counts[1:]))
    out["readers"]["dup_seen"] = [c for c in counts if c["n"] != c["distinct_ids"]][:5]
    pages = [e for e in ev if e["ev"] == "page"]
    out["pages"] = {"visits": len(pages), "failed": [e for e in pages if "error" in e or "exception" in e][:10],
                    "error_boxes": [e for e in pages if "error_box" in e][:10]}
    per_page: dict[str, list] = {}
    for e in pages:
        if "s" in e:
            per_page.setdefault(e["page"], []).append(e["s"])
    out["pages"]["seconds"] = {p: {"median": statistics.median(v), "max": max(v)} for p, v in per_page.items()}
    posts = [e for e in ev if e["ev"] == "post"]
    out["posts"] = {"attempts": len(posts), "errors": sum("error" in e["reply"] for e in posts)}
    out["kills"] = [e for e in ev if e["ev"] == "worker_kill9"]
    # Job durations: early third vs late third of each job's runs.
    runs = state_query(home, "SELECT job, started_at, status, duration_s, rows_written, message FROM job_runs "
                             "ORDER BY id")
    jobs: dict[str, list] = {}
    for r in runs:
        jobs.setdefault(r["job"], []).append(r)
    out["jobs"] = {}
    for job, rows in jobs.items():
        d = [r["duration_s"] for r in rows if r["duration_s"] is not None and r["status"] == "ok"]
        k = max(1, len(d) // 3)
        out["jobs"][job] = {"runs": len(rows), "failed": sum(r["status"] == "failed" for r in rows),
                            "running_left": sum(r["status"] == "running" for r in rows),
                            "early_median_s": round(statistics.median(d[1:k + 1] or d[:k]), 2) if d else None,
                            "late_median_s": round(statistics.median(d[-k:]), 2) if d else None,
                            "max_s": round(max(d), 2) if d else None,
                            "failures": [r["message"][:300] for r in rows if r["status"] == "failed"][:3]}
    # A pass of the inbox with nothing new to read, against the files then in the inbox: flat, or growing with them.
    drops = sorted(e["t"] for e in ev if e["ev"] in ("drop", "copy"))
    idle = []
    for r in runs:
        if r["job"] == "ingest_inbox" and r["status"] == "ok" and r["rows_written"] == 0 and r["duration_s"]:
            at = dt.datetime.fromisoformat(r["started_at"].rstrip("Z")).replace(tzinfo=UTC).timestamp()
            idle.append((sum(x <= at for x in drops), r["duration_s"]))
    k = max(1, len(idle) // 4)
    out["inbox_idle_pass"] = {"passes": len(idle),
                              "first": {"files": idle[0][0], "median_s": round(statistics.median(
                                  d for _, d in idle[:k]), 3)} if idle else None,
                              "last": {"files": idle[-1][0], "median_s": round(statistics.median(
                                  d for _, d in idle[-k:]), 3)} if idle else None}
    # RSS slope of the longest-lived worker after its first 3 minutes (warm-up: models, pools), MB a minute.
    longest = max(by_pid.values(), key=len) if by_pid else []
    warm = [r for r in longest if r["t"] - longest[0]["t"] >= 180 and "VmRSS" in r]
    if len(warm) >= 4:
        xs = [(r["t"] - warm[0]["t"]) / 60 for r in warm]
        ys = [r["VmRSS"] / 1024 for r in warm]
        mx, my = statistics.mean(xs), statistics.mean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        out["rss_slope_mb_per_min"] = {"pid": longest[0]["pid"], "minutes": round(xs[-1], 1),
                                       "slope": round(slope, 2), "median_mb": round(statistics.median(ys))}
    out["metrics_log_rows"] = curve([s["rows"] for s in samples if "metrics_log" in s.get("rows", {})],
                                    "metrics_log") if any("rows" in s for s in samples) else None
    tb = {}
    for p in sorted((home / "soak").glob("*.log")):
        text = p.read_text(errors="replace")
        n = text.count("Traceback")
        if n:
            i = text.index("Traceback")
            tb[p.name] = {"count": n, "first": text[max(0, i - 300): i + 2500]}
    out["tracebacks"] = tb
    errors = {}
    for p in sorted((home / "soak").glob("worker-*.log")):
        lines = [ln for ln in p.read_text(errors="replace").splitlines() if " ERROR " in ln or " WARNING " in ln]
        skipped = [ln for ln in lines if "maximum number of running instances" in ln]
        lines = [ln for ln in lines if ln not in skipped]
        if lines or skipped:
            errors[p.name] = {"apscheduler_runs_skipped_busy": len(skipped), "other": lines[:15]}
    out["worker_warnings"] = errors
    return out


# ------------------------------------------------------------------------------------------------------ main
def write_config(home: Path, port: int) -> None:
    (home / "monitor.toml").write_text(f"""# written by bench/soak.py: short intervals so 20 minutes see many runs
[worker]
port = {port}
ingest_interval_s = 10
jobs_interval_s = 60
compact_interval_s = 120
health_interval_s = 60
notify_interval_s = 30

[[notify.channels]]
name = "soak-log"
type = "log"
path = "notifications.jsonl"
""")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--home", type=Path, default=Path("/tmp/soak"))
    ap.add_argument("--rate", type=int, default=1200, help="live canonical lines a minute (plus late and others)")
    ap.add_argument("--history", type=int, default=20000, help="turns of history fed at the start (14 days)")
    ap.add_argument("--kills", type=int, default=2, help="kill -9 the worker this many times, evenly spaced")
    ap.add_argument("--kill-at", default="", help="when to kill instead, as fractions of the run: '0.75' or '0.3,0.6'")
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--check-only", action="store_true", help="run the end checks on an existing soak home")
    args = ap.parse_args()
    home = args.home.resolve()
    if args.check_only:
        res = {"checks": check(home), "summary": summarize(home)}
        print(json.dumps(res, indent=1, default=str))
        return 0
    if home.exists():
        if not (home / "soak" / "ledger.json").exists() and any(home.iterdir()):
            print(f"{home} exists and is not a soak home: pick a new --home", file=sys.stderr)
            return 2
        shutil.rmtree(home)
    (home / "soak").mkdir(parents=True)
    (home / "inbox").mkdir()
    wport, dport = free_port(), free_port()
    write_config(home, wport)
    log = Log(home / "soak" / "events.jsonl")
    url = f"http://127.0.0.1:{wport}"
    log(ev="begin", minutes=args.minutes, rate=args.rate, kills=args.kills, worker=url, dashboard_port=dport,
        machine={"nproc": os.cpu_count(), "load": os.getloadavg(), "python": sys.version.split()[0]},
        git=subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                           cwd=REPO).stdout.strip())
    feeder = Feeder(home, args.rate, url, log)
    feeder.history(args.history, 14)
    worker = Worker(home, wport, log)
    worker.start()
    if not wait_http(url + "/healthz"):
        print("the worker did not start", file=sys.stderr)
    dash_log = open(home / "soak" / "dashboard.log", "wb")
    dash = subprocess.Popen([sys.executable, "-m", "monitor", "--home", str(home), "dashboard", "--port", str(dport),
                             "--address", "127.0.0.1"], stdout=dash_log, stderr=subprocess.STDOUT, cwd=str(REPO),
                            start_new_session=True)
    log(ev="dashboard_start", pid=dash.pid)
    stop = threading.Event()
    threads = [threading.Thread(target=sampler, args=(home, worker, log, stop), daemon=True),
               threading.Thread(target=http_poller, args=(url, worker, log, stop), daemon=True),
               threading.Thread(target=reader_poller, args=(home, log, stop), daemon=True)]
    if not args.no_browser and wait_http(f"http://127.0.0.1:{dport}/_stcore/health"):
        threads.append(threading.Thread(target=browser_poller, args=(f"http://127.0.0.1:{dport}", log, stop),
                                        daemon=True))
    for t in threads:
        t.start()
    t_start = time.time()
    end = t_start + args.minutes * 60
    fractions = ([float(x) for x in args.kill_at.split(",")] if args.kill_at else
                 [(k + 1) / (args.kills + 1) for k in range(args.kills)])
    kill_at = sorted(t_start + args.minutes * 60 * f for f in fractions)
    i = 0
    try:
        while time.time() < end:
            tick_t = time.time()
            feeder.tick(i)
            feeder.save()
            i += 1
            if kill_at and time.time() >= kill_at[0]:
                kill_at.pop(0)
                # Kill while a job is running when possible: wait (up to 40 s) for one to start.
                deadline = time.time() + 40
                while time.time() < deadline and not state_query(
                        home, "SELECT 1 FROM job_runs WHERE status='running' AND job NOT IN ('notify')"):
                    time.sleep(0.5)
                running = state_query(home, "SELECT job FROM job_runs WHERE status='running'")
                row = worker.kill9()
                log(ev="killed_during", jobs=[r["job"] for r in running])
                worker.start()
                wait_http(url + "/healthz")
            time.sleep(max(0.0, TICK_S - (time.time() - tick_t)))
        log(ev="feed_end", ticks=i)
        # Bodies never accepted (the worker was down at each attempt) are sent now.
        for _ in range(10):
            if all(p["done"] for p in feeder.posts):
                break
            feeder.flush_posts()
            time.sleep(3)
        feeder.save()
        hashes = {f["sha256"] for f in feeder.files} | {p["sha256"] for p in feeder.posts}
        # A live file appended to before any pass read it never had its first content ingested: not awaited.
        appended = {f["name"] for f in feeder.files if f["kind"] == "append"}
        hashes -= {f["sha256"] for f in feeder.files if f["kind"] == "live" and f["name"] in appended}
        log(ev="settle", **settle(home, hashes, log))
        time.sleep(35)  # one more sample and readers after the last run
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        stop_s = worker.stop()
        log(ev="worker_stop", seconds=stop_s)
        dash.terminate()
        try:
            dash.wait(timeout=20)
        except subprocess.TimeoutExpired:
            dash.kill()
        feeder.save()
    res = {"checks": check(home), "summary": summarize(home)}
    (home / "soak" / "results.json").write_text(json.dumps(res, indent=1, default=str))
    print(json.dumps(res, indent=1, default=str))
    c = res["checks"]
    ok = (not c["files"]["problems"] and not c["turns"]["n_missing"] and not c["turns"]["n_unexpected"]
          and not c["turns"]["n_duplicated"] and not c["quarantine"]["missing"] and not c["quarantine"]["unexpected"]
          and not c["metrics"]["no_metric"] and not c["metrics"]["n_mismatch"] and not res["summary"]["tracebacks"]
          and c["other_tables"]["segments"] == c["other_tables"]["segments_distinct"]
          and not c["other_tables"]["segments_orphans"]
          and c["other_tables"]["scores"] == c["other_tables"]["scored_turns"] == c["turns"]["rows"])
    print("SOAK", "PASSED" if ok else "FOUND PROBLEMS", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
