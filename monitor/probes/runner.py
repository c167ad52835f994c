"""Send the counterfactual probes to an OpenAI-compatible chat endpoint and ingest the replies as source 'probe'.

Each probe becomes one canonical JSONL record whose `user` object carries the swapped attribute(s) (e.g.
``{"gender": "female", "name_origin": "Arab"}`` or ``{"religion": "Muslim"}``) plus `probe_template` and
`probe_group` ("gender=female&name_origin=Arab"), so the records go through the same ingest path as production
logs (redaction, dedup, segments), are scored by the `score` job like any turn, and the `disparity` job compares the
swapped groups within source kind 'probe'. A reply that fails (network, HTTP error, malformed JSON) is counted and
not ingested: a missing reply is not a refusal.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from importlib import resources
from pathlib import Path

import httpx

from monitor.config import env_secret
from monitor.errors import ConfigError, JobError

log = logging.getLogger("monitor.probes")

LAST_RUN_KEY = "probes.last_run"
LAST_SUMMARY_KEY = "probes.last_summary"
MAX_TOKENS = 400
RETRIES = 2
GIVE_UP_AFTER = 5


def load_templates(path: Path | None = None) -> list[dict]:
    """The probe set: the bundled templates.jsonl unless another file is given."""
    if path is None:
        text = resources.files("monitor.probes").joinpath("templates.jsonl").read_text(encoding="utf-8")
        origin = "monitor/probes/templates.jsonl"
    else:
        text, origin = Path(path).read_text(encoding="utf-8"), str(path)
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            _ = row["probe_id"], row["template"], row["prompt"], dict(row["attributes"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{origin}:{i}: bad probe template ({e})", "rebuild it with training/build_probes.py")
        out.append(row)
    return out


def endpoint(url: str) -> str:
    """The chat-completions URL from a base URL ('http://h:8000', '.../v1') or the full path."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return url + ("/chat/completions" if url.endswith("/v1") else "/v1/chat/completions")


def ask(client: httpx.Client, url: str, model: str, prompt: str) -> str:
    """One chat completion; raises httpx.HTTPError or ValueError on a failed or malformed reply."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS}
    last: Exception | None = None
    for attempt in range(RETRIES + 1):
        try:
            r = client.post(url, json=body)
            if r.status_code >= 500 and attempt < RETRIES:
                time.sleep(0.5 * (attempt + 1))
                continue
            r.raise_for_status()
            content = r.json()["choices"][0]["message"]["content"]
            if not isinstance(content, str):
                raise ValueError("choices[0].message.content is not text")
            return content
        except httpx.TransportError as e:
            last = e
            if attempt < RETRIES:
                time.sleep(0.5 * (attempt + 1))
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"reply has no choices[0].message.content ({e})") from e
    raise last  # type: ignore[misc]


def probe_record(p: dict, reply: str, model: str, ts: dt.datetime, run_id: str, sample: int) -> dict:
    """The canonical JSONL record of one probe and its reply."""
    attrs = {k: str(v) for k, v in sorted(p["attributes"].items())}
    user = {**attrs, "probe_template": p["template"],
            "probe_group": "&".join(f"{k}={v}" for k, v in attrs.items()),
            # A per-record id keeps identical replies to an identical prompt from being taken as re-sent records.
            "id": f"probe:{run_id}:{p['probe_id']}:{sample}"}
    return {"conversation_id": f"probe:{run_id}:{p['probe_id']}:{sample}",
            "timestamp": ts.replace(tzinfo=None).isoformat(timespec="seconds") + "Z", "model": model,
            "messages": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": reply}],
            "user": user,
            "metadata": {"probe_id": p["probe_id"], "probe_family": p.get("family"), "swap": p.get("swap"),
                         "expected": p.get("expected"), "probe_run": run_id}}


def run_probes(home, now: dt.datetime, run_id: str, templates: list[dict] | None = None) -> dict:
    """Send every probe `samples_per_template` times, ingest the replies as source 'probe'; returns a summary."""
    cfg = home.config.probes
    if not cfg.url or not cfg.model:
        raise ConfigError("probes.url and probes.model must be set to send probes",
                          "set them in [probes] of monitor.toml")
    url = endpoint(cfg.url)
    key = env_secret(cfg.api_key_env)
    if cfg.api_key_env and not key:
        raise ConfigError(f"probes.api_key_env names ${cfg.api_key_env}, which is not set",
                          f"export {cfg.api_key_env}=... for the worker")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    templates = templates if templates is not None else load_templates()
    records, failures = [], []
    with httpx.Client(timeout=cfg.timeout_s, headers=headers) as client:
        for p in templates:
            for sample in range(cfg.samples_per_template):
                try:
                    reply = ask(client, url, cfg.model, p["prompt"])
                except (httpx.HTTPError, ValueError) as e:
                    failures.append({"probe_id": p["probe_id"], "error": f"{type(e).__name__}: {e}"[:300]})
                    # An endpoint that is down fails every probe slowly: stop after the first few.
                    if not records and len(failures) >= GIVE_UP_AFTER:
                        raise JobError(f"probes: the first {len(failures)} requests to {url} failed; last: "
                                       f"{failures[-1]['error']}", "check probes.url and that the model is up")
                    continue
                records.append(probe_record(p, reply, cfg.model, now, run_id, sample))
    if not records and failures:
        raise JobError(f"probes: all {len(failures)} requests to {url} failed; first: {failures[0]['error']}",
                       "check probes.url and that the model endpoint is up")
    summary = None
    if records:
        # Keep the raw replies first: if ingest fails, the paid-for answers are still on disk to re-ingest
        # (`monitor ingest` of this file, or a rerun of this function's ingest step).
        archive = home.root / "probes" / f"{now.strftime('%Y%m%dT%H%M%S')}-{run_id}.jsonl"
        archive.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(r, ensure_ascii=False) for r in records]
        archive.write_text("\n".join(lines) + "\n", encoding="utf-8")
        from monitor.ingest import ingest_records

        summary = ingest_records(home, list(enumerate(lines, 1)), fmt="canonical", source_name=str(archive),
                                 source="probe", now=now)
    fs = summary.files[0] if summary else None
    out = {"run_id": run_id, "at": now.isoformat(), "sent": len(records) + len(failures), "replies": len(records),
           "failed": len(failures), "failures": failures[:20],
           "ingested": getattr(fs, "ingested", 0), "duplicates": getattr(fs, "duplicates", 0),
           "quarantined": getattr(fs, "quarantined", 0)}
    home.state.put(LAST_SUMMARY_KEY, out)
    log.info("probes: %d sent, %d replies, %d failed, %d ingested", out["sent"], out["replies"], out["failed"],
             out["ingested"])
    return out


def run_if_due(home, now: dt.datetime, run_id: str) -> int:
    """Run the probes when enabled and `probes.interval_hours` have passed since the last run; returns turns ingested."""
    cfg = home.config.probes
    if not cfg.enabled:
        return 0
    last = home.state.get(LAST_RUN_KEY)
    if last and now - dt.datetime.fromisoformat(last) < dt.timedelta(hours=cfg.interval_hours):
        return 0
    out = run_probes(home, now, run_id)
    home.state.put(LAST_RUN_KEY, now.isoformat())
    return int(out["ingested"])
