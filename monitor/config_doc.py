"""Help text for every configuration key, and the generator of docs/configuration.md.

A test checks that every key of `Config` has help here and that the committed doc is current, so the reference
never drifts from the code. Regenerate with ``python -m monitor.config_doc --write``.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import typing
from pathlib import Path

from monitor.config import Config, _type_name

HELP: dict[str, str] = {
    "ingest.redact_pii": "Replace e-mails, phone numbers, card numbers, IPs, API keys and tokens by typed placeholders before storing.",
    "ingest.max_future_minutes": "Records stamped further than this in the future are quarantined (clock skew tolerance).",
    "ingest.max_line_bytes": "A line longer than this is quarantined with a truncated raw prefix.",
    "ingest.batch_rows": "Turns per atomic lake commit; a crash loses at most the batch in flight (re-ingest recovers it).",
    "ingest.inbox_dirs": "Folders the worker watches for new files; relative paths are inside the home.",
    "ingest.columns": "CSV/Parquet column mapping: canonical field -> column name, e.g. {assistant_message = \"reply\", \"user.language\" = \"lang\"}.",
    "ingest.formats": "Force a format for files matching a glob, e.g. {\"exports/*.jsonl\" = \"openai\"}.",
    "alerts.history_days": "Days of metric windows the rules evaluate (0 = all history): keeps each run's cost independent of the history's length; must cover every rule's reference windows, and CUSUM / Page-Hinkley start at its beginning.",
    "metrics.history_days": "Days an older computation of a metric (superseded by a newer run for the same window and group) stays in metrics_log before compaction drops it; the newest is always kept. A draft (a computation of a window still in progress, superseded before the window ended) goes after an hour.",
    "classifiers.workers": "Processes the score job classifies with (lexical backend; 0 = one per CPU; the LLM judge, embedding and finetuned backends use one).",
    "ingest.retention_days": "Days of data kept: older date partitions of turns, segments, scores, value tables and quarantine are dropped daily (0 = keep forever; metrics are kept).",
    "metrics.granularity": "Event-time window of every metric: day or hour.",
    "metrics.confidence": "Confidence level of every interval.",
    "metrics.min_n": "Rates with fewer observations are flagged small_sample: shown, never alerted on.",
    "metrics.segment_attributes": "Segment attributes to break refusal metrics down by; empty = every attribute except excluded ones.",
    "metrics.exclude_attributes": "Attributes never used as segments (identifiers).",
    "classifiers.backend": "lexical (offline, default), llm_judge (an OpenAI-compatible endpoint, sampled, with a daily budget) embedding (MiniLM prompt-harm head) or finetuned (fine-tuned MiniLM prompt-harm model, the best held-out figures); the last two need the `embed` extra, see docs/refusal.md.",
    "classifiers.llm_judge": "LLM-judge options: url, model, api_key_env, sample_rate, daily_budget, timeout_s.",
    "classifiers.embedding": "Options of the embedding and finetuned backends: batch_size, threads, verify_encoder (docs/refusal.md).",
    "classifiers.high_precision": "Label a prompt harmful only at the high-precision harm threshold: fewer benign prompts counted as harmful, so raw under-refusal is inflated less, and fewer harmful ones found. The harm version gets `+high_precision`, so the score job re-scores every turn once and the rate correction uses that threshold's error rates. See docs/refusal.md, Thresholds.",
    "values.dimensions": "Extra value dimensions (plugins): [{name, family, terms | terms_file | regex, weight}].",
    "values.reference": "Drift reference: previous_days, baseline_window or baseline_model.",
    "values.reference_days": "Length of the previous-days reference.",
    "values.baseline_start": "Start (ISO date) of the fixed baseline window.",
    "values.baseline_end": "End (ISO date) of the fixed baseline window.",
    "values.baseline_model": "Model identifier (name@version) used as the baseline.",
    "values.drift_method": "Drift test: mean_shift (default), or any Evidently stattest name, or evidently_default.",
    "values.drift_threshold": "Threshold of the chosen drift method (its own scale).",
    "values.min_n": "Replies needed on both sides before a drift verdict is given.",
    "disparity.attributes": "Attributes to analyse; empty = every segment attribute except ids.",
    "disparity.reference_group": "Compare each group with this group instead of the rest of traffic: {language = \"en\"}.",
    "disparity.intersections": "Pairs of attributes to cross, e.g. [[\"language\", \"age_band\"]].",
    "disparity.max_groups_per_attribute": "Largest groups kept per attribute; the rest are pooled as 'other'.",
    "disparity.min_n": "Groups smaller than this are reported but never tested or alerted on.",
    "disparity.fdr": "False discovery rate for the Benjamini-Hochberg correction.",
    "disparity.detect_language": "Detect the language of user messages offline (lingua) and compare with the declared one.",
    "probes.enabled": "Send counterfactual probes to the deployed model on a schedule.",
    "probes.url": "OpenAI-compatible base URL of the deployed model.",
    "probes.model": "Model name to request from that endpoint.",
    "probes.api_key_env": "Name of the environment variable holding the endpoint's API key.",
    "probes.interval_hours": "Hours between probe runs.",
    "probes.samples_per_template": "Replies requested per probe prompt.",
    "probes.timeout_s": "Timeout of one probe request.",
    "alerts.use_default_rules": "Use the built-in rules (docs/alerts.md) in addition to yours.",
    "alerts.rules": "Alert rules: [{name, metric, kind, severity, ...}] (docs/alerts.md).",
    "alerts.dashboard_url": "Base URL of the dashboard, for links in notifications.",
    "alerts.paging_horizon_windows": "Alerts for windows older than this many windows are backfill: recorded, never paged.",
    "notify.channels": "Notification channels: [{name, type = webhook | slack | email | log, min_severity, ...}].",
    "notify.digest_minutes": "Alerts pending for one channel within this interval are grouped into one digest.",
    "notify.max_attempts": "Delivery attempts before a message is marked dead (and audited).",
    "notify.backoff_seconds": "First retry delay; doubles after each failed attempt.",
    "notify.digest_threshold": "More pending messages (one per incident) than this for one channel are sent as a digest.",
    "notify.group_interval_minutes": "A scope joining an incident already notified on a channel is sent as an update, at most once per this interval (an escalation is sent at once).",
    "worker.host": "Address the worker's HTTP server listens on.",
    "worker.port": "Port of the worker's HTTP server.",
    "worker.token_env": "Name of the environment variable holding the bearer token required by POST endpoints.",
    "worker.token": "The bearer token itself (prefer token_env: secrets do not belong in files).",
    "worker.max_payload_bytes": "Larger request bodies are refused with 413.",
    "worker.ingest_interval_s": "Seconds between inbox scans.",
    "worker.jobs_interval_s": "Seconds between runs of the metric job chain.",
    "worker.notify_interval_s": "Seconds between notification deliveries.",
    "worker.compact_interval_s": "Seconds between storage compactions.",
    "worker.retention_interval_s": "Seconds between retention runs (dropping data older than ingest.retention_days).",
    "worker.health_interval_s": "Seconds between runs of the pipeline-health checks (no turns arriving, a job failing run after run, quarantined input; docs/alerts.md).",
    "worker.stale_after_intervals": "GET /readyz answers 503 when a scheduled job's last success is older than this many of its intervals (and than stale_min_s).",
    "worker.stale_min_s": "The least age, in seconds, at which a job's last success counts as stale for /readyz (a 30 s job can wait behind a long metric run).",
    "worker.max_run_s": "Seconds after which a run of a job counts as stuck (hung), per job: {compact = 7200}. GET /readyz reports it and the job_stuck rule pages (docs/alerts.md); a job not named here is judged by its own history (stuck_min_s, stuck_factor).",
    "worker.stuck_min_s": "The least time, in seconds, after which a run counts as stuck, for jobs not in max_run_s (1 h while a job has fewer than 5 timed successful runs).",
    "worker.stuck_factor": "A run of a job not in max_run_s counts as stuck after this many times the 95th percentile of its last 50 successful runs' durations (and at least stuck_min_s).",
    "dashboard.port": "Port of the dashboard.",
    "dashboard.password": "Optional shared password for the dashboard (prefer password_env).",
    "dashboard.password_env": "Name of the environment variable holding the dashboard password.",
    "dashboard.read_only": "Hide every action (acknowledge, label, ...): a read-only dashboard.",
    "dashboard.sql_row_limit": "Row cap of ad hoc SQL (results beyond it are marked truncated).",
    "dashboard.sql_time_limit_s": "Ad hoc SQL queries are stopped after this many seconds.",
}


def keys() -> list[tuple[str, typing.Any, typing.Any]]:
    """(path, type, default) of every configuration key, in declaration order."""
    out = []

    def walk(cls, obj, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "sources":
                continue
            tp, val = hints[f.name], getattr(obj, f.name)
            if dataclasses.is_dataclass(tp):
                walk(tp, val, f"{prefix}{f.name}.")
            else:
                out.append((prefix + f.name, tp, val))

    walk(Config, Config(), "")
    return out


def render() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated by `python -m monitor.config_doc --write` from `monitor/config.py`; do not edit by hand.",
        "",
        "Everything works with no file at all. `monitor.toml` in the home (or `--config FILE`) overrides defaults.",
        "Unknown keys and wrong types are refused with the key's path (`metrics.granularty: unknown key ... did you",
        "mean 'granularity'?`). The dashboard's Settings page shows the effective values and where each came from.",
        "",
    ]
    section = None
    for path, tp, default in keys():
        sec = path.split(".")[0]
        if sec != section:
            section = sec
            lines += ["", f"## [{sec}]", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        d = json.dumps(default) if not isinstance(default, str) else f'"{default}"'
        lines.append(f"| `{path.split('.', 1)[1]}` | {_type_name(tp)} | `{d}` | {HELP.get(path, '')} |")
    return "\n".join(lines) + "\n"


DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(render())
        print(f"wrote {DOC}")
    else:
        print(render())
