"""Strict configuration: `monitor.toml` in the home, every key typed, unknown keys refused with their path.

Each section is a dataclass; its fields are the only keys allowed. A value's type is checked against the
annotation, and a wrong key or type raises ConfigError naming the key path (``alerts.rules[2].severity``) and,
for a misspelt key, the closest valid one. Lists of tables (rules, channels, value plugins) are checked by the
module that owns them, which is handed the path prefix for its messages.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import ClassifierError, ConfigError

CONFIG_NAME = "monitor.toml"


@dataclass
class IngestConfig:
    redact_pii: bool = True
    # Records whose timestamp is further than this in the future are quarantined (clock skew tolerance).
    max_future_minutes: int = 60
    max_line_bytes: int = 8_000_000
    batch_rows: int = 50_000
    # Folders that `monitor serve` watches; relative paths are resolved against the home.
    inbox_dirs: list[str] = field(default_factory=lambda: ["inbox"])
    # CSV / Parquet column mapping: canonical field -> column name in the file.
    # e.g. {conversation_id = "conv_id", user_message = "prompt", assistant_message = "reply", timestamp = "ts",
    #       model = "model_name", "user.language" = "lang"}
    columns: dict[str, str] = field(default_factory=dict)
    # Per-format detection can be forced for files matching a glob: {"exports/*.jsonl" = "openai"}
    formats: dict[str, str] = field(default_factory=dict)
    # Days of turns (and their scores, segments, value rows, quarantine) kept; 0 = forever. docs/data-retention.md
    retention_days: int = 0


@dataclass
class MetricsConfig:
    granularity: str = "day"  # day | hour
    confidence: float = 0.95
    min_n: int = 30  # below this a rate is flagged small_sample (still shown, never alerted on)
    # Segment attributes (user.* keys) to break metrics down by; empty = every attribute except ids.
    segment_attributes: list[str] = field(default_factory=list)
    exclude_attributes: list[str] = field(default_factory=lambda: ["id", "user_id", "email", "name"])
    history_days: float = 7.0  # superseded metric rows are dropped from metrics_log this long after


@dataclass
class ClassifiersConfig:
    backend: str = "lexical"  # lexical | llm_judge | embedding | finetuned (the last two: extra `embed`)
    llm_judge: dict[str, Any] = field(default_factory=dict)
    embedding: dict[str, Any] = field(default_factory=dict)  # options of the embedding and finetuned backends
    # Label prompts harmful only at the high-precision harm threshold (lexical, embedding and finetuned backends)
    high_precision: bool = False
    workers: int = 0  # scoring processes; 0 = one per CPU


@dataclass
class ValuesConfig:
    # Extra dimensions ("value plugins"): [{name, family, terms | terms_file | regex, weight?}]
    dimensions: list[dict[str, Any]] = field(default_factory=list)
    # Drift reference: "previous_days" | "baseline_window" | "baseline_model"
    reference: str = "previous_days"
    reference_days: int = 7
    baseline_start: str | None = None
    baseline_end: str | None = None
    baseline_model: str | None = None
    # None = mean_shift, this project's test; "evidently_default" = Evidently's choice per column type and size
    drift_method: str | None = None
    drift_threshold: float | None = None
    min_n: int = 100


@dataclass
class DisparityConfig:
    attributes: list[str] = field(default_factory=list)  # empty = every segment attribute except ids
    reference_group: dict[str, str] = field(default_factory=dict)  # attribute -> group; else "rest of traffic"
    intersections: list[list[str]] = field(default_factory=list)
    max_groups_per_attribute: int = 20
    min_n: int = 50
    fdr: float = 0.05
    detect_language: bool = True


@dataclass
class ProbesConfig:
    enabled: bool = False
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    interval_hours: float = 24.0
    samples_per_template: int = 1
    timeout_s: float = 30.0


@dataclass
class AlertsConfig:
    use_default_rules: bool = True
    rules: list[dict[str, Any]] = field(default_factory=list)
    dashboard_url: str = "http://127.0.0.1:8501"
    # Alerts for windows that ended more than this many windows before now are backfill: recorded, never paged.
    paging_horizon_windows: int = 2
    # Rules see the metric windows of the last this many days (0 = all history), so evaluating costs the same
    # however long the history; it must cover every rule's reference windows.
    history_days: float = 60.0


@dataclass
class NotifyConfig:
    channels: list[dict[str, Any]] = field(default_factory=list)
    digest_minutes: int = 15
    max_attempts: int = 8
    backoff_seconds: float = 30.0
    # More than this many alerts due for one channel at once are sent as one digest message.
    digest_threshold: int = 3
    # A scope joining an incident already notified on a channel is an update, sent at most once per this interval.
    group_interval_minutes: int = 60


@dataclass
class WorkerConfig:
    host: str = "127.0.0.1"
    port: int = 8600
    token_env: str | None = None  # name of the env var holding the bearer token
    token: str | None = None
    max_payload_bytes: int = 10_000_000
    ingest_interval_s: float = 30.0
    jobs_interval_s: float = 300.0
    notify_interval_s: float = 30.0
    compact_interval_s: float = 3600.0
    retention_interval_s: float = 86400.0
    # The pipeline-health checks (no turns, failing jobs, quarantined input): cheap, so often.
    health_interval_s: float = 60.0
    # /readyz: a scheduled job whose last success is older than this many of its intervals (and than stale_min_s)
    # makes the worker not ready. The floor keeps a 30 s job behind a long metric run from flapping it.
    stale_after_intervals: float = 3.0
    stale_min_s: float = 900.0
    # A run in progress longer than its limit is stuck (hung): /readyz says so and the job_stuck rule pages. The limit
    # is max_run_s[job] when set, else max(stuck_min_s, stuck_factor x the p95 of its recent successful runs).
    max_run_s: dict[str, float] = field(default_factory=dict)
    stuck_min_s: float = 600.0
    stuck_factor: float = 5.0


@dataclass
class DashboardConfig:
    port: int = 8501
    password: str | None = None
    password_env: str | None = None
    read_only: bool = False
    sql_row_limit: int = 1000
    sql_time_limit_s: float = 10.0


@dataclass
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    classifiers: ClassifiersConfig = field(default_factory=ClassifiersConfig)
    values: ValuesConfig = field(default_factory=ValuesConfig)
    disparity: DisparityConfig = field(default_factory=DisparityConfig)
    probes: ProbesConfig = field(default_factory=ProbesConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    # Where each value came from: key path -> "default" | file path. Filled by load_config.
    sources: dict[str, str] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("sources", None)
        return d


_CHOICES = {
    "metrics.granularity": ("day", "hour"),
    "classifiers.backend": ("lexical", "llm_judge", "embedding", "finetuned"),
    "values.reference": ("previous_days", "baseline_window", "baseline_model"),
}


def _type_problem(value: Any, tp: Any, kp: str) -> tuple[str, Any, Any] | None:
    """The (key path, expected type, value) of the first part of `value` that does not match `tp`, else None.

    Points inside tables and lists, so `[ingest.columns] reply = 5` is reported at 'ingest.columns.reply'."""
    if _type_ok(value, tp):
        return None
    origin = typing.get_origin(tp)
    if origin is dict and isinstance(value, dict):
        _, vt = typing.get_args(tp) or (Any, Any)
        for k, v in value.items():
            if not _type_ok(v, vt):
                return _type_problem(v, vt, f"{kp}.{k}")
    if origin is list and isinstance(value, list):
        (it,) = typing.get_args(tp) or (Any,)
        for i, v in enumerate(value):
            if not _type_ok(v, it):
                return _type_problem(v, it, f"{kp}[{i}]")
    return kp, tp, value


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        k, v = typing.get_args(tp) or (Any, Any)
        return isinstance(value, dict) and all(_type_ok(x, v) for x in value.values())
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":  # None is written by omitting the key
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_EXAMPLES = {bool: "true", int: "10", float: "1.5", str: '"text"'}


def _example(tp: Any) -> str:
    """A TOML value of type `tp`, for the hint of a type error."""
    origin = typing.get_origin(tp)
    if origin is list:
        (it,) = typing.get_args(tp) or (str,)
        return f"[{_example(it)}]"
    if origin is dict:
        _, vt = typing.get_args(tp) or (str, str)
        return "{ name = " + (_example(vt) if vt is not Any else '"text"') + " }"
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return _example(next(a for a in typing.get_args(tp) if a is not type(None)))
    return _EXAMPLES.get(tp, '"text"')


def _build(cls: type, data: dict[str, Any], path: str, origin: str, sources: dict[str, str]):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "sources"]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        kp = f"{path}.{key}" if path else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(names)}"
            raise ConfigError(f"{origin}: unknown key '{kp}'", hint)
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: '{kp}' must be a table ([{kp}])")
            kwargs[key] = _build(tp, value, kp, origin, sources)
            continue
        problem = _type_problem(value, tp, kp)
        if problem:
            bad_path, bad_tp, bad = problem
            leaf = bad_path.rsplit(".", 1)[-1]
            example = f"{leaf} = {_example(bad_tp)}" if "[" not in leaf else f"{key} = {_example(tp)}"
            raise ConfigError(f"{origin}: '{bad_path}' must be {_type_name(bad_tp)}, got {type(bad).__name__} {bad!r}",
                              f"write it as {example}")
        if kp in _CHOICES and value not in _CHOICES[kp]:
            raise ConfigError(f"{origin}: '{kp}' must be one of {', '.join(_CHOICES[kp])}, got {value!r}")
        kwargs[key] = value
        sources[kp] = origin
    return cls(**kwargs)


def parse_config(data: dict[str, Any], origin: str = "<config>") -> Config:
    """Build a Config from a parsed TOML mapping, refusing unknown keys and wrong types."""
    sources: dict[str, str] = {}
    cfg = _build(Config, data, "", origin, sources)
    _check_values(cfg, origin)
    cfg.sources = sources
    return cfg


# Numbers that must be positive (> 0), and numbers that may be 0 but not negative. Upper bounds keep date
# arithmetic in range: `now + timedelta(minutes=max_future_minutes)` overflows past the year 9999.
_POSITIVE = ("metrics.min_n", "disparity.min_n", "values.min_n", "ingest.batch_rows", "ingest.max_line_bytes",
             "values.reference_days", "disparity.max_groups_per_attribute", "probes.interval_hours",
             "probes.samples_per_template", "probes.timeout_s", "notify.max_attempts", "worker.max_payload_bytes",
             "worker.ingest_interval_s", "worker.jobs_interval_s", "worker.notify_interval_s",
             "worker.compact_interval_s", "worker.retention_interval_s", "worker.health_interval_s",
             "worker.stale_after_intervals", "worker.stuck_min_s", "worker.stuck_factor",
             "dashboard.sql_row_limit",
             "dashboard.sql_time_limit_s", "dashboard.port")
_NON_NEGATIVE = ("ingest.max_future_minutes", "alerts.paging_horizon_windows", "notify.digest_minutes",
                 "notify.backoff_seconds", "notify.digest_threshold", "notify.group_interval_minutes", "worker.port",
                 "worker.stale_min_s")
MAX_DAYS = 36_500  # a hundred years: the longest period a day count in the config or on the command line may span
_AT_MOST = {"ingest.max_future_minutes": (MAX_DAYS * 1440, "a hundred years"),
            "ingest.retention_days": (MAX_DAYS, "a hundred years"),
            "values.reference_days": (MAX_DAYS, "a hundred years"),
            "metrics.history_days": (MAX_DAYS, "a hundred years"),
            "alerts.history_days": (MAX_DAYS, "a hundred years"),
            "probes.interval_hours": (MAX_DAYS * 24, "a hundred years"),
            "notify.digest_minutes": (MAX_DAYS * 1440, "a hundred years"),
            "notify.group_interval_minutes": (MAX_DAYS * 1440, "a hundred years"),
            "alerts.paging_horizon_windows": (MAX_DAYS, "a hundred years of daily windows"),
            "dashboard.port": (65535, "the largest port"), "worker.port": (65535, "the largest port"),
            "worker.stale_min_s": (MAX_DAYS * 86400, "a hundred years"),
            "worker.stale_after_intervals": (1e6, "a million intervals"),
            "worker.stuck_min_s": (MAX_DAYS * 86400, "a hundred years"),
            "worker.stuck_factor": (1e6, "a million times its usual duration")}


def _value(cfg: Config, key: str):
    sec, name = key.split(".")
    return getattr(getattr(cfg, sec), name)


def _check_ranges(cfg: Config, origin: str) -> None:
    for key in _POSITIVE + _NON_NEGATIVE + tuple(_AT_MOST):
        v = _value(cfg, key)
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{origin}: '{key}' must be a finite number, got {v}", "write a plain number")
    for key in _POSITIVE:
        if _value(cfg, key) <= 0:
            raise ConfigError(f"{origin}: '{key}' must be positive, got {_value(cfg, key)}",
                              f"set it to a number above 0, or remove it for the default ({_default(key)})")
    for key in _NON_NEGATIVE:
        if _value(cfg, key) < 0:
            raise ConfigError(f"{origin}: '{key}' must be 0 or more, got {_value(cfg, key)}",
                              f"remove it for the default ({_default(key)})")
    for key, (most, what) in _AT_MOST.items():
        if _value(cfg, key) > most:
            raise ConfigError(f"{origin}: '{key}' must be at most {most:,} ({what}), got {_value(cfg, key):,}",
                              f"remove it for the default ({_default(key)})")


def _default(key: str):
    sec, name = key.split(".")
    return getattr(Config(), sec).__dict__[name]


def _check_values(cfg: Config, origin: str) -> None:
    if not 0.5 < cfg.metrics.confidence < 1:
        raise ConfigError(f"{origin}: 'metrics.confidence' must be between 0.5 and 1, got {cfg.metrics.confidence}")
    _check_ranges(cfg, origin)
    if not 0 < cfg.disparity.fdr < 1:
        raise ConfigError(f"{origin}: 'disparity.fdr' must be between 0 and 1")
    if cfg.alerts.history_days < 0:
        raise ConfigError(f"{origin}: 'alerts.history_days' must be 0 (all history) or a number of days")
    if cfg.metrics.history_days < 0:
        raise ConfigError(f"{origin}: 'metrics.history_days' must be 0 or more days")
    if cfg.classifiers.high_precision and cfg.classifiers.backend == "llm_judge":
        raise ConfigError(f"{origin}: 'classifiers.high_precision' applies to the lexical, embedding and finetuned backends, "
                          "not to llm_judge", "drop it, or choose backend = \"lexical\", \"embedding\" or \"finetuned\"")
    if cfg.classifiers.embedding:
        from monitor.classify.embedding import validate_options  # light: numpy only; torch loads with the encoder

        try:
            validate_options(cfg.classifiers.embedding)
        except ClassifierError as e:
            raise ConfigError(f"{origin}: 'classifiers.embedding': {e.message}", e.hint) from e
    if cfg.classifiers.workers < 0:
        raise ConfigError(f"{origin}: 'classifiers.workers' must be 0 (one per CPU) or a number of processes")
    if cfg.ingest.retention_days < 0:
        raise ConfigError(f"{origin}: 'ingest.retention_days' must be 0 (keep forever) or a number of days")
    _check_max_run(cfg, origin)


def _check_max_run(cfg: Config, origin: str) -> None:
    """`worker.max_run_s` names jobs, each with a positive number of seconds: a typo would leave the job judged by
    its history instead, silently."""
    limits = cfg.worker.max_run_s
    if cfg.worker.stuck_factor < 1:
        raise ConfigError(f"{origin}: 'worker.stuck_factor' must be at least 1, got {cfg.worker.stuck_factor}: a run "
                          "as long as the job's usual runs would count as stuck", "remove it for the default (5.0)")
    for job, seconds in limits.items():
        if not math.isfinite(seconds) or not 0 < seconds <= MAX_DAYS * 86400:
            raise ConfigError(f"{origin}: 'worker.max_run_s.{job}' must be a positive number of seconds, got "
                              f"{seconds}", f"e.g. {job} = 3600 for an hour")
    if not limits:
        return
    from monitor.jobs import discover  # imports every job module (~1 s): only when the key is set

    names = sorted(discover())
    for job in limits:
        if job not in names:
            close = difflib.get_close_matches(job, names, n=1)
            raise ConfigError(f"{origin}: 'worker.max_run_s.{job}': no job is named {job!r}",
                              f"did you mean '{close[0]}'?" if close else f"jobs: {', '.join(names)}")


def load_config(home: Path, config_file: Path | None = None) -> Config:
    """Load `monitor.toml` from the home (or the given file); no file at all means every default."""
    path = config_file or (home / CONFIG_NAME)
    if config_file is not None and not path.exists():
        raise ConfigError(f"config file {path} does not exist", "check the --config path")
    if not path.exists():
        return Config()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}",
                          "check the path and its permissions") from e
    if raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark (Windows Notepad's "UTF-8 with BOM"): not TOML, harmless
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(f"{path}:{line}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {column})",
                          "save the file as UTF-8 (TOML files must be UTF-8)") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}", "check quoting and brackets on that line") from e
    cfg = parse_config(data, str(path))
    return cfg


def env_secret(name: str | None) -> str | None:
    """Read a secret from the environment variable named in config (secrets never live in the file)."""
    return os.environ.get(name) if name else None
